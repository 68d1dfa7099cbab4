"""Checks and small conversions of the per-person DataFrames the estimators take.

The estimators work on one row per person (already pulled from DuckDB), never on raw events. The default
column names are below; every estimator lets you name other columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipelines.statistics.results import DAYS_PER_YEAR

# Default column names of the per-person DataFrame.
EXPOSURE = "exposure"  # 1 = exposed / target drug, 0 = unexposed / comparator
OUTCOME = "outcome"  # 1 = the person had the outcome (first cramp) during follow-up, 0 = not
FOLLOWUP_DAYS = "followup_days"  # days from cohort entry to the first outcome or censoring


def require_columns(data: pd.DataFrame, columns: Sequence[str]) -> None:
    """Raise a ValueError naming the columns that `data` lacks."""
    missing = [column for column in columns if column not in data.columns]
    if missing:
        raise ValueError(f"missing column(s) {missing}; the DataFrame has {list(data.columns)}")


def binary_column(data: pd.DataFrame, column: str) -> pd.Series:
    """The column as integers 0/1; a ValueError if it has missing values or other values."""
    values = data[column]
    if values.isna().any():
        raise ValueError(f"column {column!r} has missing values; it must be 0/1 for every person")
    values = values.astype(int)
    if not values.isin([0, 1]).all():
        raise ValueError(f"column {column!r} must hold only 0 and 1")
    return values


def followup_years(data: pd.DataFrame, column: str) -> pd.Series:
    """Follow-up in years (days / 365.25); a ValueError if any value is missing or negative."""
    days = data[column].astype(float)
    if days.isna().any() or (days < 0).any():
        raise ValueError(f"column {column!r} must be a non-negative number of days for every person")
    return days / DAYS_PER_YEAR


def covariate_matrix(data: pd.DataFrame, covariates: Sequence[str]) -> pd.DataFrame:
    """Covariates as a numeric matrix for a regression.

    Numeric and boolean columns are kept as they are; text and categorical columns become 0/1 indicator
    columns with the first category as reference (`pd.get_dummies(drop_first=True)`). Missing values raise a
    ValueError: dropping or imputing them is a decision for the analysis, not something to do silently here.
    """
    require_columns(data, covariates)
    if not covariates:
        return pd.DataFrame(index=data.index)
    selected = data[list(covariates)]
    with_missing = [column for column in covariates if selected[column].isna().any()]
    if with_missing:
        raise ValueError(f"covariate(s) {with_missing} have missing values; drop or impute them first")
    categorical = [
        column
        for column in covariates
        if not (pd.api.types.is_numeric_dtype(selected[column]) or pd.api.types.is_bool_dtype(selected[column]))
    ]
    matrix = pd.get_dummies(selected, columns=categorical, drop_first=True, dtype=float)
    return matrix.astype(float)


def to_int(value) -> int:
    """A numpy or pandas integer as a plain Python int (so results print and serialise cleanly)."""
    return int(np.asarray(value).item())
