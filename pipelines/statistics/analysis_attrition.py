"""results.analysis_attrition: every analysis's persons per arm, from the cohort to the persons its estimator used.

CohortMethod publishes an attrition table per analysis (getAttritionTable: the study population, then the persons
each step removes, e.g. "Have at least 1 days at risk", "Matched on propensity score"); this is that table, with the
reason the excluded persons left. Counts go through the small-cell rule (pipelines/disclosure.py): each arm's steps
chain by subtraction (persons before = persons after + excluded) and the first step's two arms add up to the
published cohort size, so those sums are the relations of its complementary suppression. The analyses of one
exposure share their first steps; a shared step is one set of cells, so it is hidden alike in every analysis.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from pipelines import tables
from pipelines.disclosure import COMPLEMENTARY, SMALL_CELL, Cell, SumRelation, suppress_cells

ANALYSIS_ATTRITION_TABLE = tables.ANALYSIS_ATTRITION
ARMS = ("exposed", "unexposed")
COUNT_COLUMNS = ("persons_exposed", "persons_unexposed", "excluded_exposed", "excluded_unexposed")


def suppress_analysis_attrition(frame: pd.DataFrame, threshold: int) -> pd.DataFrame:
    """A copy of the attrition frame (pipelines.statistics.study_analysis.attrition_frame) with every small count,
    and every count that would give one away, set to NULL and listed in suppressed_columns/complementary_columns."""
    published = frame.copy()
    for column in COUNT_COLUMNS:
        published[column] = published[column].astype(object)
    published["suppressed_columns"] = None
    published["complementary_columns"] = None
    published["suppressed"] = False
    if published.empty:
        return published
    cells: dict[tuple, Cell] = {}
    relations: set[SumRelation] = set()
    keys: list[dict[str, tuple]] = []
    for (_, exposure), rows in published.groupby(["analysis_id", "exposure"], sort=False):
        path: tuple[str, ...] = ()
        previous: dict[str, tuple] = {}
        for index, row in rows.sort_values("step_order").iterrows():
            path = (*path, row["step"])
            row_keys = {}
            for arm in ARMS:
                remaining = (exposure, path, "persons", arm)
                cells.setdefault(remaining, Cell(int(row[f"persons_{arm}"])))
                row_keys[f"persons_{arm}"] = remaining
                if previous:
                    excluded = (exposure, path, "excluded", arm)
                    cells.setdefault(excluded, Cell(int(row[f"excluded_{arm}"])))
                    row_keys[f"excluded_{arm}"] = excluded
                    relations.add(SumRelation(previous[f"persons_{arm}"], (remaining, excluded)))
            if not previous:  # the cohort: its size is published in results.attrition
                total = (exposure, path, "persons", "both")
                cells.setdefault(total, Cell(int(row["persons_exposed"]) + int(row["persons_unexposed"])))
                relations.add(SumRelation(total, (row_keys["persons_exposed"], row_keys["persons_unexposed"])))
            previous = row_keys
            keys.append((index, row_keys))
    suppress_cells(cells, sorted(relations, key=repr), threshold)
    for index, row_keys in keys:
        small = [c for c in COUNT_COLUMNS if c in row_keys and cells[row_keys[c]].suppression == SMALL_CELL]
        complementary = [c for c in COUNT_COLUMNS if c in row_keys
                         and cells[row_keys[c]].suppression == COMPLEMENTARY]
        for column in (*small, *complementary):
            published.at[index, column] = None
        published.at[index, "suppressed_columns"] = ",".join(small) or None
        published.at[index, "complementary_columns"] = ",".join(complementary) or None
        published.at[index, "suppressed"] = bool(small or complementary)
    return published


def create_analysis_attrition_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS results")
    con.execute(f"""CREATE TABLE IF NOT EXISTS {ANALYSIS_ATTRITION_TABLE} (
        study_id VARCHAR, analysis_id VARCHAR, exposure VARCHAR, step_order INTEGER, step VARCHAR, reason VARCHAR,
        persons_exposed BIGINT, persons_unexposed BIGINT, excluded_exposed BIGINT, excluded_unexposed BIGINT,
        suppressed BOOLEAN, suppressed_columns VARCHAR, complementary_columns VARCHAR)""")


def publish_analysis_attrition(con: duckdb.DuckDBPyConnection, study_id: str, frame: pd.DataFrame,
                               threshold: int) -> pd.DataFrame:
    """Replace the study's rows of results.analysis_attrition, small cells and their complements hidden."""
    create_analysis_attrition_table(con)
    published = suppress_analysis_attrition(frame, threshold)
    con.execute(f"DELETE FROM {ANALYSIS_ATTRITION_TABLE} WHERE study_id = ?", [study_id])
    if not published.empty:
        con.register("new_analysis_attrition", published.astype(object).where(published.notna(), None))
        con.execute(f"INSERT INTO {ANALYSIS_ATTRITION_TABLE} BY NAME SELECT * FROM new_analysis_attrition")
        con.unregister("new_analysis_attrition")
    return published
