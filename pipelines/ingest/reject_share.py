"""The blocking check that a run never publishes a database that lost more than a small share of its input.

One threshold, `max_reject_share` (default `DEFAULT_MAX_REJECT_SHARE`, 1%), applies to two shares:

- per table: rejected records / input records (every reason, the malformed lines included);
- the unknown_person cascade: event records rejected as unknown_person / input records, over every table that
  refers to persons. When persons are lost (a person file cut short, ids written differently in two files), their
  events are rejected in every table at once; this names the cause on the person table.

The allowed number of rejects is the threshold times the input records rounded up to a whole record, so a small
table may always lose one record: with generated extracts of 50 patients, one planted reject in a 2-row death table
or a 51-row person table is 2-50% of it, and would otherwise stop every run of a small site. A table with no input
records has no share. Each share is reported as a Dagster asset check of the ingest asset,
blocking: a share above the threshold fails the run before anything downstream (publishing included) runs.

The threshold is a share from 0 to 1, both included (`max_reject_share_problem`, the one rule): 0 lets no table lose
a record beyond the rounding above, and 1 never stops a run for its rejects (every record of a table may be
rejected; the rejects are still kept and counted in ingest.rejects and ingest.load_counts), a legitimate choice for
an extract known to be poor that is loaded to be looked at. A value outside the range is refused when the run's
configuration is checked, before any step (`legcramp-run --max-reject-share` when its arguments are read,
`MAX_REJECT_SHARE_SETTING` by pipelines/operations/run_config.py), naming the setting and the value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipelines import extract_spec as spec
from pipelines.ingest.loader import TableLoad

DEFAULT_MAX_REJECT_SHARE = 0.01
# Where a user sets the threshold: the study job's run configuration (the Launchpad, a schedule's or the sensor's
# run config), which `legcramp-run --max-reject-share` writes too (pipelines/operations/run_config.py).
MAX_REJECT_SHARE_SETTING = "resources.extract.config.max_reject_share"


def max_reject_share_problem(value: object) -> str | None:
    """Why `value` cannot be the reject-share threshold (the message names no setting: the caller says where the
    value came from), or None when it can: a number from 0 to 1, both included."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number from 0 to 1, not {value!r}"
    if not 0 <= value <= 1:  # NaN fails both comparisons
        return (f"must be a share from 0 to 1, both included (0.01 = 1%; 1 = never stop the run for rejects), "
                f"not {value!r}")
    return None

TABLE_CHECK = "reject_share_within_threshold"
CASCADE_CHECK = "unknown_person_share_within_threshold"
CASCADE_TABLE = spec.PERSON.name  # the cascade is reported on the table whose lost rows cause it


@dataclass(frozen=True)
class ShareVerdict:
    table: str  # the staging table the verdict is reported on
    check: str  # TABLE_CHECK or CASCADE_CHECK
    rejected: int
    input_records: int
    max_share: float

    @property
    def share(self) -> float:
        return self.rejected / self.input_records if self.input_records else 0.0

    @property
    def allowed(self) -> int:
        """The threshold in records, rounded up (round() first: 0.01 * 2100 is 21.000000000000004)."""
        return math.ceil(round(self.max_share * self.input_records, 9))

    @property
    def passed(self) -> bool:
        return self.rejected <= self.allowed

    @property
    def description(self) -> str:
        what = (f"{self.table}: {self.rejected:,} of {self.input_records:,} records rejected"
                if self.check == TABLE_CHECK else
                f"{self.rejected:,} of {self.input_records:,} event records rejected as unknown_person (their "
                "person is not in staging.person)")
        allowed = f"the {self.max_share:.2%} allowed ({self.allowed:,} records)"
        verdict = (f"{what} ({self.share:.2%}), within {allowed}" if self.passed else
                   f"{what} ({self.share:.2%}), more than {allowed}: the run stops before publishing. See "
                   "ingest.rejects for the reasons and lines"
                   + ("; are persons missing from the person file, or their ids written differently?"
                      if self.check == CASCADE_CHECK else "")
                   + ". Fix the file and load it again, or, if these losses are acceptable for the study, raise "
                     f"the limit (legcramp-run --max-reject-share, or {MAX_REJECT_SHARE_SETTING} in the run "
                     "configuration).")
        return verdict


def reject_share_verdicts(loads: dict[str, TableLoad], max_share: float) -> list[ShareVerdict]:
    """One verdict per table with its reject share, and one for the unknown_person cascade."""
    problem = max_reject_share_problem(max_share)
    if problem:  # the run's configuration check refuses it before any step; this guards other callers
        raise ValueError(f"max_reject_share {problem}")
    verdicts = [ShareVerdict(load.table, TABLE_CHECK, load.rejected, load.input_records, max_share)
                for load in loads.values()]
    referring = [loads[table.name] for table in spec.TABLES if table.references_person and table.name in loads]
    verdicts.append(ShareVerdict(
        CASCADE_TABLE, CASCADE_CHECK,
        sum(load.rejected_by_reason.get("unknown_person", 0) for load in referring),
        sum(load.input_records for load in referring), max_share,
    ))
    return verdicts
