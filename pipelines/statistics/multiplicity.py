"""Multiplicity: Benjamini-Hochberg false-discovery-rate q-values over a study's published p-values.

A screening study tests dozens of exposures; at p < 0.05 about one in twenty true nulls comes out "significant".
The q-value of a row (Benjamini & Hochberg, JRSS B 1995; the adjusted p-value of statsmodels' `fdr_bh`, R's
p.adjust(method = "BH")) is the smallest false-discovery rate at which its test would be declared a discovery.

The family is one **study and analysis** (`FDR_FAMILY`: study_id, analysis_id): the adjusted Cox HRs of every
exposure of a screening study are one family, the PS-matched HRs another, and the intention-to-treat and on-treatment
rows of a new-user analysis share theirs. Different analyses of the same exposure answer the same question again
(sensitivity analyses), not new ones, so they are not pooled into one family: the rows of each sensitivity
analysis (`sensitivity_analysis`) are a family of their own, beside the main analysis's, whose q-values they leave
as they are. Only **published** p-values count:
q-values are computed after small-cell suppression, over the rows whose p-value is shown, so a hidden p-value
neither enters nor can be recovered from the others' q-values. Rows without a p-value (rates, risks, not estimable,
suppressed) have no q-value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

FDR_FAMILY = ("study_id", "analysis_id", "sensitivity_analysis")
Q_VALUE = "q_value"


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) of one family, in the order given."""
    p_values = np.asarray(p_values, dtype=float)
    if len(p_values) == 0:
        return p_values
    return multipletests(p_values, method="fdr_bh")[1]


def with_false_discovery_rate(published: pd.DataFrame) -> pd.DataFrame:
    """The published rows with `q_value`: Benjamini-Hochberg over the shown p-values of each study and analysis
    (and sensitivity analysis: NULL for the main rows)."""
    frame = published.copy()
    frame[Q_VALUE] = None
    if frame.empty:
        return frame
    p_values = pd.to_numeric(frame["p_value"], errors="coerce")
    shown = p_values.notna()
    family = [frame[column] if column in frame else pd.Series(None, index=frame.index, dtype=object)
              for column in FDR_FAMILY]
    for _, rows in frame[shown].groupby([key[shown] for key in family], dropna=False, sort=False):
        frame.loc[rows.index, Q_VALUE] = benjamini_hochberg(p_values[rows.index]).tolist()
    frame[Q_VALUE] = frame[Q_VALUE].astype(object).where(frame[Q_VALUE].notna(), None)
    return frame
