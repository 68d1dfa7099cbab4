"""How published estimates are named and printed: analysis ids, short method names, adjustment sets, phenotype
labels and the text of a (possibly suppressed) cell. Shared by the report, the plots and the results browser, so
each of these facts is decided here once.

Analysis ids follow OHDSI CohortMethod's practice of a short, stable analysis id per estimator (its `analysisId`
and `description`), so a reader filters on `cox_adjusted` rather than on a method text that embeds a covariate
list.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from pipelines.disclosure import SUPPRESSED_TEXT, small_cell_text
from pipelines.statistics.results import ANALYSES

# The estimate a study leads with when it names none, by design: the adjusted Cox HR for the screening design,
# the PS-matched Cox HR for the active-comparator new-user design (CohortMethod's primary analysis).
PRIMARY_ANALYSIS_BY_DESIGN = {"first_visit": "cox_adjusted", "new_user": "ps_matched_cox"}
# Rows that are one group's rate, not a comparison: never drawn on a forest plot.
RATE_ANALYSES = ("incidence_rate",)


def analysis_identity(row: Mapping) -> tuple[str, str]:
    """(analysis_id, method_name) of a results.associations or pooled row: its own columns, the name from
    results.ANALYSES where the row has none. Nothing is read from the `method` text: a row without an analysis id
    (a database published before analysis ids) is shown under an empty id with its method text as the name."""
    def text(column: str) -> str:  # NULL arrives as None or NaN
        value = row.get(column)
        return value if isinstance(value, str) else ""

    analysis_id = text("analysis_id")
    return analysis_id, text("method_name") or ANALYSES.get(analysis_id) or text("method")


def adjustment_set(row: Mapping) -> tuple[str, ...]:
    """The covariates an adjusted row's model used (empty for an unadjusted one): its `covariates` from
    results.analysis_covariates (pipelines.statistics.report.with_covariate_sets)."""
    return tuple(row.get("covariates") or ())


def adjustment_note(rows: Iterable[Mapping], label=lambda name: name) -> str | None:
    """One sentence naming what an analysis adjusted for, over all its rows: the covariates every row used, and
    those only some used (a co-medication is left out of its own exposure's model, or one nested in it)."""
    sets = [set(adjustment_set(row)) for row in rows]
    sets = [s for s in sets if s]
    if not sets:
        return None
    common = set.intersection(*sets)
    varying = set.union(*sets) - common
    order = list(dict.fromkeys(name for row in rows for name in adjustment_set(row)))
    text = "adjusted for " + ", ".join(label(n) for n in order if n in common)
    if varying:
        text += ("; and, except where it is the exposure itself, nested in it, or has no outcome in one of its "
                 "groups: " + ", ".join(label(n) for n in order if n in varying))
    return text


# ---------------------------------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------------------------------

def present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def cell_text(row: Mapping, column: str, threshold: int, formatter) -> str:
    """A published cell as printed: "<threshold" where the count was small, "suppressed" where it would give a
    small count away (pipelines/disclosure.py), "–" where there is none, else `formatter(value)`."""
    if column in (row.get("suppressed_columns") or "").split(","):
        return small_cell_text(threshold)
    if column in (row.get("complementary_columns") or "").split(","):
        return SUPPRESSED_TEXT
    value = row.get(column)
    return formatter(value) if present(value) else "–"


def ratio_text(value: float) -> str:
    return f"{value:,.2f}"


def count_text(value) -> str:
    return f"{int(value):,}"


def p_value_text(value: float) -> str:
    """p-values as journals print them: "<0.001" below 0.001, else three decimals."""
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def estimate_text(row: Mapping, threshold: int) -> str:
    """ "1.23 (0.98–1.55)", "not estimable", or the suppression mark of a hidden estimate."""
    if present(row.get("not_estimable_reason")):
        return "not estimable"
    estimate = cell_text(row, "estimate", threshold, ratio_text)
    if estimate in (SUPPRESSED_TEXT, "–"):
        return estimate
    return (f"{estimate} ({cell_text(row, 'ci_lower', threshold, ratio_text)}–"
            f"{cell_text(row, 'ci_upper', threshold, ratio_text)})")


# ---------------------------------------------------------------------------------------------------------------
# Phenotype names
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VariableLabel:
    """How a phenotype or a cohort column is named in reports: its name, the seed category it belongs to (the
    phenotype library's folder), and its definition."""

    id: str
    name: str
    category: str
    description: str = ""
    source_file: str = ""
    version: int | None = None
    domain: str = ""


# Model covariates that are not phenotypes (the cohort columns' names live with Table 1).
MODEL_COLUMN_LABELS = {"age": "Age", "female": "Female sex"}


def variable_labels() -> dict[str, VariableLabel]:
    """Every phenotype of the library and the cohort's own columns, by id."""
    from pipelines.phenotypes.reference_page import FOLDER_TITLES
    from pipelines.phenotypes.loader import phenotype_library

    from pipelines.cohorts.table1 import COLUMN_LABELS

    labels = {key: VariableLabel(key, name, "Demographics and follow-up")
              for key, name in {**COLUMN_LABELS, **MODEL_COLUMN_LABELS}.items()}
    for phenotype in phenotype_library():
        folder = Path(phenotype.source_file).parent.name
        d = phenotype.definition
        labels[d.id] = VariableLabel(d.id, d.name, FOLDER_TITLES.get(folder, folder), d.description.strip(),
                                     phenotype.source_file, d.version, d.domain)
    return labels


def category_order() -> list[str]:
    """Seed categories in the order the phenotype reference lists them (docs/phenotypes.md)."""
    from pipelines.phenotypes.reference_page import FOLDER_TITLES

    return list(FOLDER_TITLES.values())


def label_of(labels: Mapping[str, VariableLabel], variable_id: str) -> str:
    """The name of a phenotype or column; a "target vs comparator" exposure of a new-user study by both names."""
    if variable_id in labels:
        return labels[variable_id].name
    if " vs " in variable_id:
        return " vs ".join(label_of(labels, part) for part in variable_id.split(" vs "))
    return variable_id


# ---------------------------------------------------------------------------------------------------------------
# The results browser's address (pipelines/results_browser serves it; the study assets link to it)
# ---------------------------------------------------------------------------------------------------------------

RESULTS_BROWSER_VARIABLE = "LEGCRAMP_RESULTS_URL"
DEFAULT_RESULTS_BROWSER_URL = "http://127.0.0.1:8050"


def results_browser_base_url() -> str:
    """Where `make results` serves the results browser (LEGCRAMP_RESULTS_URL, default http://127.0.0.1:8050)."""
    return (os.environ.get(RESULTS_BROWSER_VARIABLE) or DEFAULT_RESULTS_BROWSER_URL).rstrip("/")


def results_browser_url(study_id: str) -> str:
    """The results browser's page of one study."""
    return f"{results_browser_base_url()}/?study={quote(study_id)}"
