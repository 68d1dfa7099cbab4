"""Table 1 (results.table1): study population characteristics overall and by group, laid out like the `tableone`
package, with small cells suppressed.

The aggregates (counts, means, SDs, quantiles) come from the warehouse (sql/cohorts/table1_aggregates.sql). This
module only works on those few hundred aggregate rows: it computes the SMDs from them (`aggregate_smds`, and
`categorical_smd` for variables with more than two levels), applies suppression (pipelines/disclosure.py) and formats
the printed values:

    n                     1,234
    n (%)                 1,234 (12.3%)      percent of all persons in the group; missing has its own row
    mean (SD)             50.1 (10.2)        sample SD; one decimal, thousands separated (2,496.0)
    median [Q1, Q3]       50.0 [40.0, 60.0]  linear-interpolation quantiles
    missing               0
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import duckdb
import numpy as np

from pipelines import tables
from pipelines.cohorts.study import StudyDefinition
from pipelines.disclosure import (
    COMPLEMENTARY,
    SMALL_CELL,
    SUPPRESSED_TEXT,
    Cell,
    SumRelation,
    disclosing_sums,
    is_small,
    repair_until_undisclosed,
    site_floor,
    small_cell_text,
    suppress_cells,
)

STATISTIC_ORDER = {"n": 0, "mean_sd": 1, "median_iqr": 2, "n_pct": 3, "missing": 4}
STATISTIC_LABELS = {"n": "", "mean_sd": "mean (SD)", "median_iqr": "median [Q1, Q3]", "missing": "missing"}


@dataclass(frozen=True)
class Table1Row:
    """One row of results.table1."""

    study_id: str
    by_variable: str | None
    row_order: int
    variable: str
    level: str | None
    group: str
    statistic: str
    value: str
    count: int | None
    denominator: int | None
    percent: float | None
    mean: float | None
    sd: float | None
    median: float | None
    q1: float | None
    q3: float | None
    smd: float | None
    suppressed: bool
    suppression: str | None

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


def categorical_smd(counts_1: dict[str, int], counts_0: dict[str, int]) -> float | None:
    """Absolute SMD of a categorical variable (Yang and Dalton 2012): sqrt(d' S^-1 d) with d the difference in level
    proportions and S the mean of the two groups' multinomial covariance matrices, over all levels but the first.
    With two levels this is the binary formula |p1 - p0| / sqrt((p1(1-p1) + p0(1-p0)) / 2)."""
    levels = sorted(set(counts_1) | set(counts_0))
    total_1, total_0 = sum(counts_1.values()), sum(counts_0.values())
    if total_1 == 0 or total_0 == 0 or len(levels) < 2:
        return None
    p1 = np.array([counts_1.get(level, 0) / total_1 for level in levels[1:]])
    p0 = np.array([counts_0.get(level, 0) / total_0 for level in levels[1:]])
    covariance = ((np.diag(p1) - np.outer(p1, p1)) + (np.diag(p0) - np.outer(p0, p0))) / 2
    difference = p1 - p0
    if not difference.any():
        return 0.0
    if np.linalg.matrix_rank(covariance) < len(difference):
        return None
    return float(math.sqrt(difference @ np.linalg.solve(covariance, difference)))


def standardized_difference(difference: float | None, spread: float | None) -> float | None:
    """difference / spread; with a zero or unknown spread, 0 when the groups are equal and None otherwise."""
    if difference is None:
        return None
    if spread is not None and spread > 0:
        return difference / spread
    return 0.0 if difference == 0 else None


def aggregate_smds(aggregates: list[dict[str, Any]], group_1: str, group_0: str) -> dict[str, float | None]:
    """Absolute standardized mean differences between two Table 1 groups (group_1 compared with group_0), as the
    tableone package prints them, for every binary and continuous variable of the aggregates:
        binary      |p1 - p0| / sqrt((p1 (1 - p1) + p0 (1 - p0)) / 2), p = persons with the level / persons with a
                    value (no p for a group whose persons all lack a value)
        continuous  |mean1 - mean0| / sqrt((sd1^2 + sd0^2) / 2)
    Computed here, from the few aggregate rows already read, rather than by a query of them: on Spark that query
    cost six jobs per study (docs/scaling.md)."""
    by_key = {(a["variable"], a["group_name"], a["statistic"]): a for a in aggregates}

    def proportion(variable: str, group: str) -> float | None:
        level, missing = by_key.get((variable, group, "n_pct")), by_key.get((variable, group, "missing"))
        if level is None or missing is None or level["denominator"] <= missing["count"]:
            return None
        return level["count"] / (level["denominator"] - missing["count"])

    smds: dict[str, float | None] = {}
    for variable in dict.fromkeys(a["variable"] for a in aggregates if a["variable_type"] == "binary"):
        p1, p0 = proportion(variable, group_1), proportion(variable, group_0)
        if p1 is not None and p0 is not None:
            smds[variable] = standardized_difference(abs(p1 - p0), math.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2))
        else:
            smds[variable] = None
    for variable in dict.fromkeys(a["variable"] for a in aggregates if a["variable_type"] == "continuous"):
        moments = [by_key.get((variable, group, "mean_sd")) or {} for group in (group_1, group_0)]
        (mean1, sd1), (mean0, sd0) = ((m.get("mean"), m.get("sd")) for m in moments)
        difference = abs(mean1 - mean0) if mean1 is not None and mean0 is not None else None
        spread = math.sqrt((sd1 * sd1 + sd0 * sd0) / 2) if sd1 is not None and sd0 is not None else None
        smds[variable] = standardized_difference(difference, spread)
    return smds


def _line_key(aggregate: dict[str, Any]) -> tuple:
    """Sort key of a printed line: variable, then statistic, then level."""
    return (aggregate["variable_order"], aggregate["variable"], STATISTIC_ORDER[aggregate["statistic"]],
            aggregate["level"] or "")


def build_table1(study: StudyDefinition, aggregates: list[dict[str, Any]], threshold: int,
                 warnings: list[str] | None = None) -> list[Table1Row]:
    """Suppressed, formatted Table 1 rows from the SQL aggregates (one dict per table1_aggregates row), with the
    SMDs between the two groups. `warnings` receives a line per sum that still gives a small count away with nothing
    left to hide in it."""
    group_pair = study.table1_groups
    groups = ["overall", *(group_pair or ())]
    by_variable = {"treatment": "treatment", "variable": study.table1_by, "none": None}[study.table1_split]
    by_key = {(a["variable"], a["level"], a["group_name"], a["statistic"]): a for a in aggregates}
    group_sizes = {g: by_key[("n", None, g, "n")]["count"] for g in groups}

    cells, relations = table1_cells(aggregates, groups, threshold)
    left = protect_table1(cells, relations, threshold, cohort_arm_cells(study, groups))
    if left and warnings is not None:
        warnings.append(f"Table 1: {len(left)} sum(s) of its counts bound a small count and have no other count to "
                        "hide; the blocking check no_small_count_derivable stops the run")

    if group_pair:
        g1, g0 = group_pair
        smd = aggregate_smds(aggregates, g1, g0)
        for variable in {a["variable"] for a in aggregates if a["variable_type"] == "categorical"}:
            counts = {g: {a["level"]: a["count"] for a in aggregates if a["variable"] == variable
                          and a["group_name"] == g and a["statistic"] == "n_pct"} for g in group_pair}
            smd[variable] = categorical_smd(counts[g1], counts[g0])
        # An SMD computed from a hidden count would let a reader solve for it.
        for key, cell in cells.items():
            if cell.protected and key[-1] in group_pair and key[0] != "n":
                smd[key[1]] = None
        if any(cells[("n", g)].protected for g in group_pair):
            smd = {variable: None for variable in smd}
    else:
        smd = {}

    lines = sorted({_line_key(a): a for a in aggregates}.items())
    rows = []
    for row_order, (_, line) in enumerate(lines, start=1):
        for group in groups:
            aggregate = by_key[(line["variable"], line["level"], group, line["statistic"])]
            rows.append(_row(study, by_variable, row_order, aggregate, cells, smd.get(line["variable"]), threshold))
    return rows


def table1_cells(aggregates: list[dict[str, Any]], groups: list[str],
                 threshold: int) -> tuple[dict[tuple, Cell], list[SumRelation]]:
    """Table 1's counts (the SQL aggregates) with the suppression Table 1 prints, and the sums that tie them
    (`_cells_and_relations`): a small group hides its columns, then the greedy complementary choice
    (suppress_cells). The statistics stage reads the same cells into its audit (statistics.disclosure_audit)."""
    group_sizes = {a["group_name"]: a["count"] for a in aggregates if a["statistic"] == "n"}
    cells, relations = _cells_and_relations(aggregates, groups)
    _suppress_small_groups(cells, groups, group_sizes, threshold)
    suppress_cells(cells, relations, threshold)
    return cells, relations


def _cells_and_relations(aggregates: list[dict[str, Any]],
                         groups: list[str]) -> tuple[dict[tuple, Cell], list[SumRelation]]:
    """The counts tied by sums: per group, n = levels + missing (+ the unprinted 'false' count of a yes/no variable,
    + the unprinted non-missing count of a continuous one); per cell, overall = group 1 + group 0. The overall n is
    the cohort size, which results.attrition and the run log print whatever Table 1 hides: fixed."""
    cells: dict[tuple, Cell] = {}
    parts_per_variable_group: dict[tuple[str, str], list[tuple]] = {}
    for a in aggregates:
        variable, group, statistic = a["variable"], a["group_name"], a["statistic"]
        if statistic == "n":
            cells[("n", group)] = Cell(a["count"], fixed=group == "overall")
            continue
        parts = parts_per_variable_group.setdefault((variable, group), [])
        if statistic == "n_pct":
            key = ("level", variable, a["level"], group)
            cells[key] = Cell(a["count"])
            parts.append(key)
        elif statistic == "missing":
            key = ("missing", variable, group)
            cells[key] = Cell(a["count"])
            parts.append(key)
        elif statistic == "mean_sd":
            key = ("non_missing", variable, group)
            cells[key] = Cell(a["count"], published=False)
            parts.append(key)
    for a in aggregates:
        if a["variable_type"] == "binary" and a["statistic"] == "n_pct":
            variable, group = a["variable"], a["group_name"]
            missing = cells[("missing", variable, group)].value
            key = ("not", variable, group)
            cells[key] = Cell(a["denominator"] - missing - a["count"], published=False)
            parts_per_variable_group[(variable, group)].append(key)

    relations = [SumRelation(("n", group), tuple(parts))
                 for (variable, group), parts in parts_per_variable_group.items()]
    if len(groups) == 3:
        overall, g1, g0 = groups
        for key in list(cells):
            if key[-1] == overall:
                stem = key[:-1]
                relations.append(SumRelation(key, ((*stem, g1), (*stem, g0))))
    return cells, relations


# Rounds of Table 1's repair before giving up (each round hides one more count, or withholds one more variable of a
# group, per disclosed count).
PROTECTION_ROUNDS = 20
PRINTED_KINDS = ("level", "missing")  # the cells Table 1 prints besides the group sizes


def _variable_sum(relation: SumRelation) -> bool:
    """A sum of one variable in one group (group n = its levels + missing + unprinted counts), not the sum of the
    group sizes."""
    return relation.total[0] == "n" and relation.parts[0][0] != "n"


def opaque_cells(cells: dict[tuple, Cell], relations: list[SumRelation]) -> set[tuple]:
    """The hidden cells whose "suppressed" label tells a reader nothing (disclosure.label_bounds):
    - those of a variable withheld whole in a group: every printed count of it hidden, none printed "<t", beside
      the group's printed n. It may hold small counts printed "suppressed" (protect_table1);
    - those of a group whose n is hidden (a small group's column, and the other group's with it): its zeros print
      "suppressed" too (_suppress_small_groups), so a "suppressed" count there may be 0.
    Everywhere else a "suppressed" count is a complement: at least t."""
    opaque: set[tuple] = set()
    for relation in relations:
        if not _variable_sum(relation):
            continue
        printed = [key for key in relation.parts if key[0] in PRINTED_KINDS]
        if cells[relation.total].protected:
            opaque.update(key for key in printed if cells[key].suppression == COMPLEMENTARY)
        elif printed and all(cells[key].suppression == COMPLEMENTARY for key in printed):
            opaque.update(printed)
    return opaque


def told_small(cells: dict[tuple, Cell]) -> set[tuple]:
    """The counts a printed label already says are small: every count of a group whose n is printed "<t" (the
    unprinted ones too). They are disclosed only when pinned to one value, like a "<t" count."""
    small_groups = {key[1] for key, cell in cells.items() if key[0] == "n" and cell.suppression == SMALL_CELL}
    return {key for key in cells if key[-1] in small_groups}


def cohort_arm_cells(study: StudyDefinition, groups: list[str]) -> set[tuple]:
    """Table 1's counts that are cohort arms the statistics stage prints again (the first step of every analysis's
    attrition): each exposure's holders overall, and the groups of a split by an exposure or by treatment."""
    exposures = {reference.phenotype for reference in study.exposures}
    arms = {("level", exposure, "true", "overall") for exposure in exposures}
    if study.table1_split == "treatment" or study.table1_by in exposures:
        arms |= {("n", group) for group in groups[1:]}
    return arms


def protect_table1(cells: dict[tuple, Cell], relations: list[SumRelation], threshold: int,
                   arms: set[tuple] = frozenset()) -> list[SumRelation]:
    """Table 1's suppression repaired until no small count is disclosed, in place (docs/disclosure.md, "Table 1").

    The greedy choice (suppress_cells) sees one sum at a time and ignores what the labels say; a reader solves
    them all and knows that a count printed "suppressed" beside a printed one is a complement, at least t. So a
    group of 15 of whom 12 have a condition prints the 12 "suppressed" to protect the 3 without it, and 15 - 12
    at most 15 - 11 = 4 gives the 3 away; a level printed "<11" beside a "suppressed" one pinned by their printed
    total is recomputed. The audit (disclosure.disclosing_sums, the same LP audit as the statistics stage's) finds
    each disclosed count and the sums that bind it; for each, complementary suppression inside Table 1: the
    smallest printed non-zero count (level or missing) of those sums is hidden; when they hold none, the variable
    is withheld whole in that group (every printed count of it "suppressed", its small and zero ones too, so that
    no label tells one from another: opaque_cells), else one holding a printed zero of those sums (a zero is no
    complement, but withheld it bounds nothing). `arms`: the cohort arms the statistics tables print again
    (cohort_arm_cells): hidden, they are complements there (at least t) whatever Table 1 prints, so their labels
    always count. The overall n (the cohort size) is never hidden. Returns the binding sums of counts left
    disclosed (nothing left to hide in them)."""
    variable_sum = {part: relation for relation in relations if _variable_sum(relation) for part in relation.parts}
    audited: dict[str, set] = {}  # what the latest audit saw: opaque cells, variables withheld before it

    def disclosed() -> dict[tuple, list[SumRelation]]:
        hidden = {key for key, cell in cells.items() if cell.hidden}
        audited["opaque"] = opaque_cells(cells, relations) - set(arms)
        audited["withheld"] = {relation for relation in set(variable_sum.values())
                               if all(cells[part].suppression == COMPLEMENTARY for part in relation.parts
                                      if part[0] in PRINTED_KINDS)}
        return disclosing_sums(cells, relations, threshold, hidden, opaque=audited["opaque"], small_labels=cells,
                               told_small=told_small(cells))

    def choose(key: tuple, binding: list[SumRelation], chosen: set) -> tuple | SumRelation | None:
        """The smallest printed non-zero count of the binding sums (a count or variable chosen this round
        covers it), else the variable to withhold whole."""
        candidates = {cell for relation in binding for cell in relation.keys
                      if cell[0] in PRINTED_KINDS and not cells[cell].hidden and cells[cell].value > 0}
        if candidates:
            return min(candidates & chosen, key=repr, default=None) or min(
                candidates, key=lambda cell: (cells[cell].value, repr(cell)))
        # What binds it is the labels: its own, or those of the hidden counts of the binding sums ("<t": 1 ..
        # t-1; a complement: at least t). The variable holding it is withheld whole in that group, so that its
        # labels tell nothing.
        labelled = [key, *(cell for relation in binding for cell in relation.keys
                           if cells[cell].protected and cells[cell].published and cell not in audited["opaque"]),
                    *(cell for relation in binding for cell in relation.keys
                      if not cells[cell].hidden and cells[cell].value == 0)]
        sums = [variable_sum[cell] for cell in dict.fromkeys(labelled)
                if cell in variable_sum and variable_sum[cell] not in audited["withheld"]]
        return sums[0] if sums else None

    def hide(chosen: set) -> None:
        for change in chosen:
            for part in change.parts if isinstance(change, SumRelation) else (change,):
                if part[0] in PRINTED_KINDS:
                    cells[part].suppression = COMPLEMENTARY

    return repair_until_undisclosed(disclosed, choose, hide, PROTECTION_ROUNDS)


def _suppress_small_groups(cells: dict[tuple, Cell], groups: list[str], group_sizes: dict[str, int],
                           threshold: int) -> None:
    """A group of 1..t-1 persons hides its whole column, and the other group's too (overall - small group = the
    other group); when the overall n is small, everything is hidden."""
    if is_small(group_sizes["overall"], threshold):
        hidden_groups = set(groups)
    elif any(is_small(group_sizes[g], threshold) for g in groups[1:]):
        hidden_groups = set(groups[1:])
    else:
        return
    for key, cell in cells.items():
        if key[-1] in hidden_groups:
            cell.suppression = SMALL_CELL if is_small(cell.value, threshold) else COMPLEMENTARY


def _format_count(count: int) -> str:
    return f"{count:,}"


def _row(study: StudyDefinition, by_variable: str | None, row_order: int, a: dict[str, Any],
         cells: dict[tuple, Cell], smd: float | None, threshold: int) -> Table1Row:
    variable, group, statistic, level = a["variable"], a["group_name"], a["statistic"], a["level"]
    base = dict(study_id=study.id, by_variable=by_variable, row_order=row_order, variable=variable, level=level,
                group=group, statistic=statistic, smd=smd)
    empty = dict(count=None, denominator=None, percent=None, mean=None, sd=None, median=None, q1=None, q3=None)

    if statistic in ("mean_sd", "median_iqr"):
        # Means and quantiles are hidden with their group, or when they describe a protected handful of persons, or
        # when the count of persons they describe is hidden: a mean is a whole sum over those persons (ages, days),
        # so its exact value admits few denominators, and the overall mean is the groups' means weighted by them.
        cell = cells[("non_missing", variable, group)]
        if cells[("n", group)].protected or cell.protected or cells[("missing", variable, group)].protected:
            return Table1Row(**base, **empty, value=SUPPRESSED_TEXT, suppressed=True, suppression=COMPLEMENTARY)
        values = dict(empty, denominator=a["denominator"])
        if statistic == "mean_sd":
            values.update(mean=a["mean"], sd=a["sd"])
            text = "NA" if a["mean"] is None else \
                f"{a['mean']:,.1f} ({'NA' if a['sd'] is None else format(a['sd'], ',.1f')})"
        else:
            values.update(median=a["median"], q1=a["q1"], q3=a["q3"])
            text = "NA" if a["median"] is None else f"{a['median']:,.1f} [{a['q1']:,.1f}, {a['q3']:,.1f}]"
        return Table1Row(**base, **values, value=text, suppressed=False, suppression=None)

    key = {"n": ("n", group), "n_pct": ("level", variable, level, group),
           "missing": ("missing", variable, group)}[statistic]
    cell = cells[key]
    if cell.protected:
        text = small_cell_text(threshold) if cell.suppression == SMALL_CELL else SUPPRESSED_TEXT
        return Table1Row(**base, **empty, value=text, suppressed=True, suppression=cell.suppression)
    count, denominator = a["count"], a["denominator"]
    values = dict(empty, count=count, denominator=denominator)
    if statistic == "n_pct" and denominator:
        percent = 100.0 * count / denominator
        values["percent"] = percent
        text = f"{_format_count(count)} ({percent:.1f}%)"
    else:
        text = _format_count(count)
    return Table1Row(**base, **values, value=text, suppressed=False, suppression=None)


def hidden_cohort_arms(con: duckdb.DuckDBPyConnection, study: StudyDefinition) -> dict[tuple[str, str], str]:
    """The cohort per arm as published Table 1 hides it: (variable, arm) -> SMALL_CELL or COMPLEMENTARY, arm
    "exposed" or "unexposed". A yes/no variable's persons with it (overall) are the exposed arm of the analyses of
    that variable; Table 1's two groups are the arms of the variable it is split by ("treatment" for a new-user
    study). The statistics stage prints these arms again (the first step of every analysis's attrition), so it
    hides there what Table 1 hides (pipelines/statistics/analysis_attrition.py). Empty before Table 1 exists."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name || '.' || table_name = ?",
                       [tables.TABLE1]).fetchall()[0][0]:
        return {}
    rows = con.execute(
        f"""SELECT variable, "group", statistic, suppression FROM {tables.TABLE1}
            WHERE study_id = ? AND suppression IS NOT NULL
              AND ((statistic = 'n_pct' AND level = 'true' AND "group" = 'overall')
                   OR (statistic = 'n' AND "group" <> 'overall'))""", [study.id]).fetchall()
    groups = dict(zip(study.table1_groups or (), ("exposed", "unexposed")))
    by_variable = {"treatment": "treatment", "variable": study.table1_by, "none": None}[study.table1_split]
    hidden: dict[tuple[str, str], str] = {}
    for variable, group, statistic, suppression in rows:
        key = (variable, "exposed") if statistic == "n_pct" else (by_variable, groups.get(group))
        if key[0] and key[1]:  # printed as small in one place: small
            hidden[key] = SMALL_CELL if SMALL_CELL in (hidden.get(key), suppression) else suppression
    return hidden


# Cohort columns that are not phenotypes, as Table 1 and the reports name them (phenotypes carry their own names).
COLUMN_LABELS = {
    "n": "n",
    "age_at_index": "Age at index, years",
    "sex": "Sex",
    "outcome_flag": "Incident leg cramps during follow-up",
    "followup_days": "Follow-up, days",
}
# How a count hidden only because it would give a small one away is printed; the footnote says why.
COMPLEMENTARY_MARK = "hidden\u2020"


def default_labels() -> dict[str, str]:
    """Names of Table 1's variables: the cohort columns' and every phenotype's (its `name` in the library)."""
    from pipelines.phenotypes.loader import phenotype_library

    return {**{p.id: p.definition.name for p in phenotype_library()}, **COLUMN_LABELS}


@dataclass(frozen=True)
class Table1Line:
    """One printed line of Table 1: a label (indented for a level or a missing count), a value per group and the
    SMD, printed once per variable on its first line."""

    variable: str
    label: str
    indent: bool
    values: dict[str, str]
    smd: str


def _field(row, name):
    return row[name] if isinstance(row, dict) else getattr(row, name)


def _shown(row) -> str:
    """A cell as printed: a small count as its "<threshold" text, a complementary cell with the footnote mark."""
    return COMPLEMENTARY_MARK if _field(row, "suppression") == COMPLEMENTARY else _field(row, "value")


def table1_lines(rows, labels: dict[str, str] | None = None) -> tuple[list[str], list[Table1Line]]:
    """Table 1 as tableone prints it: (groups, lines). A variable is named by its label; a yes/no variable is one
    "name, n (%)" line; a variable with levels is a header line and one indented line per level; a missing line
    only where something is missing (or hidden); the SMD once per variable. `rows`: Table1Row objects or
    results.table1 records."""
    labels = default_labels() if labels is None else labels
    groups = list(dict.fromkeys(_field(row, "group") for row in rows))
    by_order: dict[int, dict[str, object]] = {}
    for row in rows:
        by_order.setdefault(_field(row, "row_order"), {})[_field(row, "group")] = row
    variables: dict[str, list[dict[str, object]]] = {}
    for order in sorted(by_order):
        line = by_order[order]
        variables.setdefault(_field(next(iter(line.values())), "variable"), []).append(line)

    out: list[Table1Line] = []
    for variable, variable_lines in variables.items():
        name = labels.get(variable, variable)
        first = next(iter(variable_lines[0].values()))
        smd_value = _field(first, "smd")
        smd = "" if smd_value is None or smd_value != smd_value else f"{smd_value:.3f}"
        printed: list[Table1Line] = []
        levels = [line for line in variable_lines if _field(next(iter(line.values())), "statistic") == "n_pct"]
        level_names = [_field(next(iter(line.values())), "level") for line in levels]
        for line in variable_lines:
            head = next(iter(line.values()))
            statistic = _field(head, "statistic")
            values = {group: _shown(line[group]) for group in groups if group in line}
            if statistic == "n":
                printed.append(Table1Line(variable, "n", False, values, ""))
            elif statistic in ("mean_sd", "median_iqr"):
                printed.append(Table1Line(variable, f"{name}, {STATISTIC_LABELS[statistic]}", False, values, ""))
            elif statistic == "n_pct" and level_names == ["true"]:
                printed.append(Table1Line(variable, f"{name}, n (%)", False, values, ""))
            elif statistic == "n_pct":
                if not any(p.label == f"{name}, n (%)" for p in printed):
                    printed.append(Table1Line(variable, f"{name}, n (%)", False, {g: "" for g in groups}, ""))
                printed.append(Table1Line(variable, _field(head, "level"), True, values, ""))
            elif statistic == "missing":
                something_missing = any(_field(row, "suppression") is not None or (_field(row, "count") or 0) > 0
                                        for row in line.values())
                if something_missing:
                    printed.append(Table1Line(variable, "missing, n", True, values, ""))
        if printed and variable != "n":
            printed[0] = Table1Line(variable, printed[0].label, printed[0].indent, printed[0].values, smd)
        out += printed
    return groups, out


def table1_footnote(threshold: int) -> str:
    """What the suppression marks mean, and how the complementary cells were chosen (pipelines/disclosure.py)."""
    return (f"{small_cell_text(threshold)}: a count of 1 to {threshold - 1} persons, not published. "
            f"{COMPLEMENTARY_MARK}: a count that is not small but, with the totals shown, would give a small one away "
            "(group n = its levels + missing; overall = the two groups). In every such sum with one hidden count, "
            "the smallest other non-zero count was hidden too (the least information lost), else the total; a group "
            "smaller than the threshold hides both group columns. A variable whose every count in a group is "
            f"{COMPLEMENTARY_MARK} beside the group's n is withheld whole there: its counts may be small or zero "
            "(the group's n less a count known to be at least the threshold would give a small one away). An SMD "
            "that would recompute a hidden count is left blank.")


def table1_markdown(rows, threshold: int | None = None, labels: dict[str, str] | None = None) -> str:
    """Table 1 as a Markdown table in tableone's layout (`table1_lines`), one column per group, then the SMD, with
    the suppression footnote when a cell is hidden. `threshold`: the study's (default the site floor)."""
    groups, lines = table1_lines(rows, labels)
    show_smd = len(groups) == 3
    header = ["", *groups] + (["SMD"] if show_smd else [])
    out = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for line in lines:
        label = ("&nbsp;&nbsp;" if line.indent else "") + line.label
        cells = [label, *(line.values.get(g, "") for g in groups)] + ([line.smd] if show_smd else [])
        out.append("| " + " | ".join(cells) + " |")
    if any(_field(row, "suppression") is not None for row in rows):
        out += ["", table1_footnote(site_floor() if threshold is None else threshold)]
    return "\n".join(out)
