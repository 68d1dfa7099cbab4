"""The differencing attack on a study's published counts, written as a reader would run it.

A reader has results.attrition (the cohort size), results.analysis_attrition (persons per arm along each analysis)
and results.associations (each estimate's persons and events). Every published count of a population that contains
another published population's count gives, by subtraction, the persons (or events) of the difference. The attack
forms every such difference from the published cells (NULL cells are unknown) and reports those of 1 to
threshold - 1: each is a small count the tables give away.

Populations nested in each other:
  - the cohort size contains the persons of every analysis (n_exposed + n_unexposed), and is the sum of the
    cohort's two arms (step 1 of every analysis);
  - along one exposure, an analysis's persons and events contain those of every analysis whose attrition steps
    extend its steps (the crude analyses contain the matched, the sampled, the trimmed);
  - an analysis's events over the follow-up contain its events up to the risk horizon (the km_ rows);
  - for a time at risk nested in another (on treatment within intention to treat), the outer analysis's persons
    and events contain the inner's, analysis by analysis, on the steps all analyses share;
  - the cohort's persons with the outcome (run log, cohort metadata, summary) contain every analysis's events of
    both arms.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd

ARMS = ("exposed", "unexposed")


def _paths(attrition: pd.DataFrame) -> dict[tuple[str, str], tuple[str, ...]]:
    return {(exposure, analysis_id): tuple(rows.sort_values("step_order")["step"])
            for (exposure, analysis_id), rows in attrition.groupby(["exposure", "analysis_id"])}


def _kind(analysis_id: str) -> str:
    return "horizon" if analysis_id.startswith(("km_", "aj_")) else "follow-up"


def _partition(row) -> str:
    """The main analysis, or the sensitivity analysis the row belongs to (its outcome is another count)."""
    variant = row.get("sensitivity_analysis")
    return "main" if variant is None or pd.isna(variant) else str(variant)


def _known(value) -> bool:
    return value is not None and not pd.isna(value)


def small_differences(con: duckdb.DuckDBPyConnection, study_id: str, threshold: int,
                      nested: Sequence[tuple[str, str]] = (), cohort_size: int | None = None,
                      outcome_count: int | None = None) -> list[str]:
    """Every difference of two published counts of nested populations that is a small count, described. The
    cohort size and outcome count are read from the database unless given."""
    associations = con.execute("SELECT * FROM results.associations WHERE study_id = ?", [study_id]).df()
    attrition = con.execute("SELECT * FROM results.analysis_attrition WHERE study_id = ?", [study_id]).df()
    if cohort_size is None:
        cohort_size = con.execute(
            "SELECT persons_after FROM results.attrition WHERE study_id = ? ORDER BY step_order DESC LIMIT 1",
            [study_id]).fetchone()[0]
    if outcome_count is None:
        outcome_count = published_outcome_count(con, study_id)
    paths = _paths(attrition)
    leaks: list[str] = []
    if outcome_count is None:
        # Hidden: the reader's best figure is the largest sum of one exposure's events over the follow-up (every
        # outcome is inside some exposure's follow-up, or outside it). Right, it is recomputed.
        recomputed = recomputed_outcome_count(associations)
        true_count = cohort_outcome_count(con, study_id)
        if recomputed is not None and recomputed == true_count:
            leaks.append(f"outcome count recomputed from the events of one exposure: {recomputed}")
            outcome_count = recomputed

    def compare(outer, inner, what: str) -> None:
        if _known(outer) and _known(inner) and 1 <= outer - inner < threshold:
            leaks.append(f"{what}: {outer} - {inner} = {outer - inner}")

    # Persons: a published count of a population (attrition step or estimate) and of one nested in it.
    persons = []  # (partition, exposure, path, arm, count, label)
    for _, row in attrition.iterrows():
        path = paths[(row["exposure"], row["analysis_id"])][:row["step_order"]]
        if row["step_order"] == 1:  # the cohort's two arms: one is the cohort size minus the other
            for arm, other in (ARMS, ARMS[::-1]):
                if not _known(row[f"persons_{other}"]):
                    compare(cohort_size, row[f"persons_{arm}"],
                            f"{row['exposure']} {other}: cohort size - analysis_attrition {row['analysis_id']} "
                            f"step 1 {arm}")
        for arm in ARMS:
            persons.append(("main", row["exposure"], path, arm, row[f"persons_{arm}"],
                            f"analysis_attrition {row['analysis_id']} step {row['step_order']}"))
    events = []  # (partition, exposure, path, kind, arm, count, label)
    for _, row in associations.iterrows():
        path = paths.get((row["exposure"], row["analysis_id"]))
        if path is None:
            continue
        partition = _partition(row)
        label = f"associations {partition} {row['analysis_id']} {row['estimand']}"
        compare(cohort_size, (row["n_exposed"] + row["n_unexposed"])
                if _known(row["n_exposed"]) and _known(row["n_unexposed"]) else None,
                f"{row['exposure']}: cohort size - persons of {label}")
        if outcome_count is not None and _kind(row["analysis_id"]) == "follow-up" and partition == "main":
            compare(outcome_count, (row["events_exposed"] + row["events_unexposed"])
                    if _known(row["events_exposed"]) and _known(row["events_unexposed"]) else None,
                    f"{row['exposure']}: outcome count - events of {label}")
            # One arm hidden: the outcome count less the other arm bounds it (with the outcomes outside).
            for arm, other in (ARMS, ARMS[::-1]):
                if _known(row[f"events_{arm}"]) and not _known(row[f"events_{other}"]):
                    compare(outcome_count, row[f"events_{arm}"],
                            f"{row['exposure']}: outcome count - {arm} events of {label} (bounds the {other})")
        for arm in ARMS:
            persons.append((partition, row["exposure"], path, arm, row[f"n_{arm}"], label))
            events.append((partition, row["exposure"], path, _kind(row["analysis_id"]), arm, row[f"events_{arm}"],
                           label))
    for partition, exposure, path, arm, count, label in persons:
        for other_partition, other_exposure, other_path, other_arm, other, other_label in persons:
            if other_exposure != exposure or other_arm != arm:
                continue
            if (other_partition == partition and len(other_path) < len(path)
                    and path[:len(other_path)] == other_path):
                compare(other, count, f"{exposure} {arm}: {other_label} - {label}")
            # A sensitivity analysis's persons are the main analysis's less those with a prior variant outcome.
            if other_partition == "main" != partition and other_path == path:
                compare(other, count, f"{exposure} {arm}: {other_label} - {label}")
    for partition, exposure, path, kind, arm, count, label in events:
        for other_partition, other_exposure, other_path, other_kind, other_arm, other, other_label in events:
            if other_exposure != exposure or other_arm != arm or path[:len(other_path)] != other_path:
                continue
            if other_partition == partition and ((kind == other_kind and len(other_path) < len(path)) or (
                    other_path == path and other_kind == "follow-up" and kind == "horizon")):
                compare(other, count, f"{exposure} {arm} events: {other_label} - {label}")
            # The variant outcome's events and the main outcome's, in the same population: nested code lists.
            if other_partition == "main" != partition and other_path == path and other_kind == kind \
                    and _known(other) and _known(count):
                compare(max(other, count), min(other, count), f"{exposure} {arm} events: {other_label} vs {label}")

    # A time at risk nested in another: the same analysis on the steps every analysis of both shares.
    for outer, inner in nested:
        def shared(exposure: str) -> tuple[str, ...]:
            own = [path for (e, _), path in paths.items() if e == exposure]
            return min(own, key=len) if own else ()

        common = shared(outer)
        for which, rows in (("persons", persons), ("events", events)):
            for entry in rows:
                if entry[1] != inner or entry[2] != common[:len(entry[2])] or len(entry[2]) < 2:
                    continue
                for other in rows:
                    if other[0] == entry[0] and other[1] == outer and other[2:-2] == entry[2:-2] \
                            and other[-1] == entry[-1]:
                        compare(other[-2], entry[-2], f"{which} {outer} - {inner}: {entry[-1]}")
    return sorted(set(leaks))


def published_outcome_count(con: duckdb.DuckDBPyConnection, study_id: str) -> int | None:
    """The cohort's persons with the outcome as the run publishes it (results.outcome_counts; None when hidden)."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'results' "
                       "AND table_name = 'outcome_counts'").fetchone()[0]:
        return None
    row = con.execute("SELECT persons_with_outcome FROM results.outcome_counts WHERE study_id = ?",
                      [study_id]).fetchone()
    return None if row is None else row[0]


def cohort_outcome_count(con: duckdb.DuckDBPyConnection, study_id: str) -> int | None:
    """The true count (cohort.study_population, inside the site): what an attack must not recover."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'cohort' "
                       "AND table_name = 'study_population'").fetchone()[0]:
        return None
    return con.execute("SELECT count(outcome_date) FROM cohort.study_population WHERE study_id = ?",
                       [study_id]).fetchone()[0]


def recomputed_outcome_count(associations: pd.DataFrame) -> int | None:
    """The largest published sum of both arms' events over the follow-up in one main-analysis row: a lower bound of
    the cohort's outcome count, equal to it when one exposure's follow-up holds every outcome."""
    sums = [row["events_exposed"] + row["events_unexposed"] for _, row in associations.iterrows()
            if _partition(row) == "main" and _kind(str(row["analysis_id"])) == "follow-up"
            and _known(row["events_exposed"]) and _known(row["events_unexposed"])]
    return int(max(sums)) if sums else None


# ---------------------------------------------------------------------------------------------------------------
# Table 1: every count a reader can solve for from the printed cells
# ---------------------------------------------------------------------------------------------------------------

def equation_system(equations: list[tuple[dict, float]], unknowns: list) -> tuple[np.ndarray, np.ndarray, dict]:
    """The reader's equations ({unknown: coefficient}, constant) as a coefficient matrix, its right-hand side and
    each unknown's column."""
    position = {name: i for i, name in enumerate(unknowns)}
    matrix = np.zeros((len(equations), len(unknowns)))
    right = np.zeros(len(equations))
    for row, (coefficients, constant) in enumerate(equations):
        for name, coefficient in coefficients.items():
            matrix[row, position[name]] += coefficient
        right[row] = constant
    return matrix, right, position


def _solved(equations: list[tuple[dict, float]], unknowns: list) -> dict:
    """The unknowns a linear system determines (each with its value): an unknown is determined when its unit
    vector lies in the row space of the coefficient matrix (rank unchanged by adding it)."""
    if not equations or not unknowns:
        return {}
    matrix, right, position = equation_system(equations, unknowns)
    rank = np.linalg.matrix_rank(matrix)
    solution = np.linalg.lstsq(matrix, right, rcond=None)[0]
    determined = {}
    for name, i in position.items():
        unit = np.zeros((1, len(unknowns)))
        unit[0, i] = 1
        if np.linalg.matrix_rank(np.vstack([matrix, unit])) == rank:
            determined[name] = round(float(solution[i]))
    return determined


def table1_small_solutions(con: duckdb.DuckDBPyConnection, study_id: str, threshold: int) -> list[str]:
    """Every count of results.table1 that a reader determines exactly from its printed cells and is 1 to
    threshold - 1: hidden cells and the never-printed ones ('false' persons of a yes/no variable, persons with a
    value of a continuous one). The reader's equations: per group, n = its levels + missing (+ the 'false' count,
    + the persons with a value); per cell, overall = the two groups."""
    equations, unknown, _ = _table1_system(con, study_id)
    return sorted(f"{key}: {value}" for key, value in _solved(equations, unknown).items() if 1 <= value < threshold)


COHORT_STEP = "in the study population"


def table1_cross_table_solutions(con: duckdb.DuckDBPyConnection, study_id: str, threshold: int) -> list[str]:
    """Table 1 read beside results.analysis_attrition, as a reader holding both reads them: each exposure's
    cohort per arm (the first attrition step, persons with the exposure at index and the rest) is Table 1's count
    of the exposure's holders overall and the overall n less it, and, when Table 1 is split by that exposure (or by
    treatment, for a new-user study's comparison), its two groups' n. Returns every count the two tables together
    determine that is small, and every count Table 1 hides that they determine (printed there, or recomputed):
    Table 1's hidden counts must stay hidden wherever else they are printed."""
    equations, unknown, hidden = _table1_system(con, study_id)
    table = con.execute('SELECT DISTINCT by_variable, "group" FROM results.table1 WHERE study_id = ?',
                        [study_id]).fetchall()
    by_variable = next((by for by, _ in table if by is not None), None)
    groups = [group for _, group in table if group != "overall"]
    arms = con.execute(
        "SELECT DISTINCT exposure, persons_exposed, persons_unexposed FROM results.analysis_attrition "
        "WHERE study_id = ? AND step_order = 1 AND step = ?", [study_id, COHORT_STEP]).fetchall()
    known = _table1_known(con, study_id)
    for exposure, exposed, unexposed in arms:
        arm_keys = [("arm", exposure, "exposed"), ("arm", exposure, "unexposed")]
        for key, value in zip(arm_keys, (exposed, unexposed)):
            unknown.append(key)
            if _known(value):
                equations.append(({key: 1.0}, float(value)))
        # the cohort per arm: Table 1's holders of the exposure overall, and everyone else
        holders = ("n_pct", exposure, "true", "overall")
        if holders in known or holders in unknown:
            equations.append(({arm_keys[0]: 1.0, holders: -1.0}, 0.0))
            equations.append(({arm_keys[1]: 1.0, holders: 1.0, ("n", "overall"): -1.0}, 0.0))
        if len(groups) == 2 and (by_variable == exposure or (by_variable == "treatment" and " vs " in exposure)):
            order = ["exposed", "target", "unexposed", "comparator"]
            for arm_key, group in zip(arm_keys, sorted(groups, key=order.index)):
                equations.append(({arm_key: 1.0, ("n", group): -1.0}, 0.0))
    # Table 1's printed cells these ties name are constants of _table1_system's equations: state them here too.
    named = {key for coefficients, _ in equations for key in coefficients}
    for key in named & set(known):
        equations.append(({key: 1.0}, known[key]))
        unknown.append(key)
    solved = _solved(equations, list(dict.fromkeys(unknown)))
    return sorted({*(f"{key}: {value}" for key, value in solved.items() if 1 <= value < threshold),
                   *(f"hidden in Table 1, determined beside the attrition: {key}: {solved[key]}"
                     for key in hidden if key in solved)})


def _table1_known(con: duckdb.DuckDBPyConnection, study_id: str) -> dict[tuple, float]:
    rows = con.execute('SELECT variable, level, "group", statistic, count FROM results.table1 WHERE study_id = ? '
                       "AND count IS NOT NULL AND statistic IN ('n', 'n_pct', 'missing')", [study_id]).fetchall()
    return {(("n", group) if statistic == "n" else (statistic, variable, level, group)): float(count)
            for variable, level, group, statistic, count in rows}


def _table1_system(con: duckdb.DuckDBPyConnection, study_id: str) -> tuple[list, list, list]:
    """Table 1's equations (known cells as constants), its unknown counts, and the counts it hides."""
    table = con.execute('SELECT variable, level, "group", statistic, count FROM results.table1 WHERE study_id = ?',
                        [study_id]).df()
    groups = list(dict.fromkeys(table["group"]))
    known: dict[tuple, float] = {}
    unknown: list[tuple] = []

    def cell(key: tuple, value=None) -> None:
        if key in known or key in unknown:
            return
        if _known(value):
            known[key] = float(value)
        else:
            unknown.append(key)

    parts: dict[tuple[str, str], list[tuple]] = {}
    for _, row in table.iterrows():
        variable, group, statistic = row["variable"], row["group"], row["statistic"]
        if statistic == "n":
            cell(("n", group), row["count"])
            continue
        if statistic in ("n_pct", "missing"):
            key = (statistic, variable, row["level"], group)
            cell(key, row["count"])
            parts.setdefault((variable, group), []).append(key)
            if statistic == "n_pct" and row["level"] == "true":
                parts[(variable, group)].append(("false", variable, None, group))
                cell(("false", variable, None, group))
        elif statistic == "mean_sd":
            key = ("with a value", variable, None, group)
            cell(key)
            parts.setdefault((variable, group), []).append(key)
    relations = [(("n", group), list(dict.fromkeys(keys))) for (variable, group), keys in parts.items()]
    if len(groups) == 3:
        overall, first, second = groups
        for key in [*known, *unknown]:
            if key[-1] == overall:
                relations.append((key, [(*key[:-1], first), (*key[:-1], second)]))
    equations = []
    for total, summands in relations:
        coefficients: dict = {}
        constant = 0.0
        for key, sign in ((total, 1.0), *((part, -1.0) for part in summands)):
            if key in known:
                constant -= sign * known[key]
            else:
                coefficients[key] = coefficients.get(key, 0.0) + sign
        if coefficients:
            equations.append((coefficients, constant))
    hidden = [key for key in unknown if key[0] in ("n", "n_pct", "missing")]
    return equations, unknown, hidden


def km_curve_events(figure) -> dict[str, int]:
    """What each drawn Kaplan-Meier curve gives away, read off the figure as a reader reads it: the number of
    steps up of the cumulative incidence, i.e. the days with an event (the events themselves when no two share a
    day), by the curve's legend label. Curves without data (a legend entry only) give nothing."""
    steps = {}
    for axes in figure.axes:
        for line in axes.get_lines():
            heights = np.asarray(line.get_ydata(), dtype=float)
            if len(heights) and not line.get_label().startswith("_"):
                steps[line.get_label()] = int((np.diff(heights) > 0).sum())
    return steps
