"""The reject-share threshold (`max_reject_share`): a share from 0 to 1, both included (1 = never stop a run for its
rejects), refused outside that range when the run's configuration is read, before any step, with the setting and
the value named (pipelines/ingest/reject_share.py)."""

from __future__ import annotations

import math
import re

import pytest

from pipelines import extract_spec as spec
from pipelines.ingest.loader import TableLoad
from pipelines.ingest.reject_share import CASCADE_CHECK, max_reject_share_problem, reject_share_verdicts
from pipelines.operations.run_config import config_problems, study_run_config
from pipelines.run import main

RANGE = "must be a share from 0 to 1, both included (0.01 = 1%; 1 = never stop the run for rejects), not "


@pytest.mark.parametrize("value", [0, 0.0, 0.01, 0.5, 1, 1.0])
def test_a_share_from_0_to_1_is_accepted(value):
    assert max_reject_share_problem(value) is None


@pytest.mark.parametrize("value, expected", [
    (1.5, RANGE + "1.5"),
    (-0.01, RANGE + "-0.01"),
    (math.nan, RANGE + "nan"),
    (math.inf, RANGE + "inf"),
    ("1%", "must be a number from 0 to 1, not '1%'"),
    (True, "must be a number from 0 to 1, not True"),
])
def test_anything_else_is_refused_with_the_value(value, expected):
    assert max_reject_share_problem(value) == expected


def test_a_threshold_of_1_never_stops_the_run_even_when_every_record_is_rejected():
    loads = {table.name: TableLoad(table.name, f"{table.name}.csv", 40, 0, {"unknown_person": 40})
             for table in spec.TABLES}
    verdicts = reject_share_verdicts(loads, 1.0)
    assert all(v.passed for v in verdicts) and len(verdicts) == len(spec.TABLES) + 1
    [cascade] = [v for v in verdicts if v.check == CASCADE_CHECK]
    assert (cascade.share, cascade.allowed) == (1.0, cascade.input_records)
    # Just below 1, losing everything stops the run.
    assert not all(v.passed for v in reject_share_verdicts(loads, 0.99))
    with pytest.raises(ValueError, match=re.escape(f"max_reject_share {RANGE}1.01")):
        reject_share_verdicts(loads, 1.01)


def test_the_run_config_check_names_the_setting_and_the_value(tmp_path):
    extract = tmp_path / "extract"
    extract.mkdir()
    database = tmp_path / "out" / "site.duckdb"
    assert config_problems(study_run_config(extract, database, max_reject_share=1.0)) == []
    assert config_problems(study_run_config(extract, database, max_reject_share=1.5)) == [
        "resources.extract.config.max_reject_share " + RANGE + "1.5"]


@pytest.mark.parametrize("value, message", [("1.5", RANGE + "1.5"), ("1%", "must be a number from 0 to 1, not '1%'")])
def test_the_command_line_refuses_it_before_anything_runs(tmp_path, capsys, value, message):
    extract = tmp_path / "extract"
    extract.mkdir()
    database = tmp_path / "site.duckdb"
    with pytest.raises(SystemExit) as stopped:
        main(["--extract", str(extract), "--db", str(database), "--max-reject-share", value])
    assert stopped.value.code == 2
    # argparse's "<program>: error: ..." line (the program name is pytest's here).
    assert capsys.readouterr().err.splitlines()[-1].endswith(": error: argument --max-reject-share: " + message)
    assert not database.exists()
