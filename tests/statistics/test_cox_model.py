"""The numpy Cox fit (pipelines/statistics/cox_model.py) against what it did not write: R survival's published fit of
the Rossi recidivism data, R survival's coxph on seeded data with heavy ties (strata, case weights, robust and
clustered variance: R's output pinned below with the script that made it), and lifelines' CoxPHFitter on the same
data (its robust SE only without ties, as it ignores them there); and the fits that must fail, through
`cox_hazard_ratio`, as "not estimable" with a reason."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter
from lifelines.datasets import load_rossi

from pipelines.statistics.cox_model import fit_cox
from pipelines.statistics.survival import cox_hazard_ratio

ROSSI_COVARIATES = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
# R: coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio, data = Rossi), Efron ties, as printed in
# Fox & Weisberg, "Cox Proportional-Hazards Regression for Survival Data in R", appendix to An R Companion to
# Applied Regression (2nd ed., 2011), p. 5 (checked 2026-12-06).
ROSSI_COEFFICIENTS = [-0.37942, -0.05744, 0.31390, -0.14980, -0.43370, -0.08487, 0.09150]
ROSSI_STANDARD_ERRORS = [0.19138, 0.02200, 0.30799, 0.21222, 0.38187, 0.19576, 0.02865]

# R survival's robust SEs of the same model (not printed by Fox & Weisberg): coxph(..., robust = TRUE, control =
# coxph.control(eps = 1e-14, iter.max = 100)), R 4.2.2 with survival 3.5-3 (Debian 12's r-base-core and
# r-cran-survival), run 2026-12-06 by the script of R_SCRIPT on rossi.csv = load_rossi().to_csv(index=False).
ROSSI_ROBUST_STANDARD_ERRORS = [0.195541778881, 0.0253361463208, 0.292328555109, 0.218060315186, 0.380244465386,
                                0.199200829566, 0.0289745948116]

COVARIATES = ["exposure", "age", "female", "score"]
# R survival on seeded_cohort() (heavy ties), written with to_csv(index=False, float_format="%.17g") and fitted by
# R_SCRIPT (R 4.2.2, survival 3.5-3, run 2026-12-06): coefficients, model-based SEs (naive.var when robust) and
# robust SEs, 12 significant digits as R printed them.
R_SCRIPT = """
library(survival)
d <- read.csv("seeded_cohort_tied.csv")
ctl <- coxph.control(eps = 1e-14, iter.max = 100, toler.inf = 1)
f <- Surv(time, event) ~ exposure + age + female + score
coxph(f, data = d, robust = TRUE, control = ctl)                                       # robust
coxph(update(f, . ~ . + strata(stratum)), data = d, robust = TRUE, control = ctl)      # strata
coxph(f, data = d, weights = weight, robust = TRUE, control = ctl)                     # weights
coxph(f, data = d, cluster = cluster, control = ctl)                                   # clusters
coxph(update(f, . ~ . + strata(stratum)), data = d, weights = weight, cluster = cluster, control = ctl)  # all
# each printed as sprintf("%.12g", coef(fit)), sqrt(diag(fit$naive.var or fit$var)), sqrt(diag(fit$var))
r <- read.csv("rossi.csv")
coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio, data = r, robust = TRUE, control = ctl)
"""
R_SEEDED = {
    "robust": ([0.379103235416, 0.0259042792582, -0.054729133342, 0.46485441378],
               [0.0692258229704, 0.00306866386949, 0.0687747408655, 0.0605758188989],
               [0.0689075521541, 0.00297510543039, 0.0683740899605, 0.0613314593911]),
    "strata": ([0.382448328545, 0.0256409026529, -0.0507607229553, 0.461902744872],
               [0.0695879155012, 0.00307760563442, 0.0689438400155, 0.0607128256899],
               [0.0691950405775, 0.00296509801998, 0.0684188357625, 0.0613161759665]),
    "weights": ([0.363392223401, 0.0270611366184, -0.0241239067419, 0.478110766856],
                [0.0561462086316, 0.00250370951124, 0.0558714331423, 0.0492233198917],
                [0.0730420395412, 0.00314082834407, 0.0726289853571, 0.0653210009987]),
    "clusters": ([0.379103235416, 0.0259042792582, -0.054729133342, 0.46485441378],
                 [0.0692258229704, 0.00306866386949, 0.0687747408655, 0.0605758188989],
                 [0.0692197455722, 0.00297870170353, 0.0691984029628, 0.0584308704418]),
    "all": ([0.371347534543, 0.0267822368753, -0.0218838392436, 0.471976107079],
            [0.0564632271534, 0.00251076553238, 0.055960798022, 0.0493238983105],
            [0.0738725524264, 0.00311473143828, 0.0741191269799, 0.0627425470383]),
}
R_OPTIONS = {"robust": {}, "strata": {"strata": True}, "weights": {"weights": True}, "clusters": {"clusters": True},
             "all": {"strata": True, "weights": True, "clusters": True}}
# lifelines run to its tightest convergence, so that the comparison tests the estimate, not where it stopped.
LIFELINES_EXACT = {"precision": 1e-14, "r_precision": 1e-18}


def seeded_cohort(n: int = 1500, seed: int = 20261206, tied: bool = True) -> pd.DataFrame:
    """Persons with four covariates and exponential times (hazard ratio 1.6 for the exposure), censored uniformly in
    1-10 years. `tied`: times in whole months (about 110 distinct event times for 800 events: heavy ties); otherwise
    continuous years (no ties). Also a stratum (4 values), a non-integer weight in 0.5-2.5 and clusters of three.
    Built from uniform draws only (PCG64's doubles), so R reads the same rows (`to_csv`)."""
    u = np.random.Generator(np.random.PCG64(seed)).random((n, 8))
    exposure = (u[:, 0] < 0.4).astype(float)
    age = np.floor(40 + 40 * u[:, 1])
    female = (u[:, 2] < 0.5).astype(float)
    score = 2 * u[:, 3] - 1
    rate = 0.15 * np.exp(np.log(1.6) * exposure + 0.03 * (age - 60) - 0.2 * female + 0.4 * score)
    event_time = -np.log(u[:, 4]) / rate
    censoring = 1 + 9 * u[:, 5]
    years = np.minimum(event_time, censoring)
    return pd.DataFrame({
        "exposure": exposure, "age": age, "female": female, "score": score,
        "time": np.ceil(years * 12) if tied else years,
        "event": (event_time <= censoring).astype(float),
        "stratum": np.floor(4 * u[:, 6]).astype(int),
        "weight": 0.5 + 2 * u[:, 7],
        "cluster": np.arange(n) // 3,
    })


def _fit(frame: pd.DataFrame, strata: bool = False, weights: bool = False, clusters: bool = False):
    return fit_cox(frame[COVARIATES].to_numpy(), frame["time"].to_numpy(), frame["event"].to_numpy(),
                   strata=frame["stratum"].to_numpy() if strata else None,
                   weights=frame["weight"].to_numpy() if weights else None,
                   clusters=frame["cluster"].to_numpy() if clusters else None, names=COVARIATES)


def _lifelines(frame: pd.DataFrame, strata: bool = False, weights: bool = False, clusters: bool = False,
               robust: bool = False) -> CoxPHFitter:
    columns = [*COVARIATES, "time", "event"] + ["stratum"] * strata + ["weight"] * weights + ["cluster"] * clusters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines' advice on non-integer weights
        return CoxPHFitter().fit(frame[columns], "time", "event", strata=["stratum"] if strata else None,
                                 weights_col="weight" if weights else None,
                                 cluster_col="cluster" if clusters else None, robust=robust or weights,
                                 fit_options=LIFELINES_EXACT)


def _standard_errors(covariance: np.ndarray) -> np.ndarray:
    return np.sqrt(np.diag(covariance))


def test_rossi_equals_r_survival_published_fit_and_lifelines():
    rossi = load_rossi()
    fit = fit_cox(rossi[ROSSI_COVARIATES].to_numpy(), rossi["week"].to_numpy(), rossi["arrest"].to_numpy(),
                  names=ROSSI_COVARIATES)
    assert fit.problems == ()
    # To the printed digits (5 decimals).
    assert np.round(fit.coefficients, 5).tolist() == ROSSI_COEFFICIENTS
    assert np.round(_standard_errors(fit.covariance), 5).tolist() == ROSSI_STANDARD_ERRORS
    assert _standard_errors(fit.robust_covariance) == pytest.approx(ROSSI_ROBUST_STANDARD_ERRORS, rel=1e-8)
    lifelines = CoxPHFitter().fit(rossi, "week", "arrest", fit_options=LIFELINES_EXACT)
    assert fit.log_likelihood == pytest.approx(lifelines.log_likelihood_, rel=1e-12)
    assert fit.coefficients == pytest.approx(lifelines.params_[ROSSI_COVARIATES].to_numpy(), rel=1e-6)
    assert _standard_errors(fit.covariance) == pytest.approx(
        np.sqrt(np.diag(lifelines.variance_matrix_.loc[ROSSI_COVARIATES, ROSSI_COVARIATES])), rel=1e-6)


@pytest.mark.parametrize("case", list(R_SEEDED))
def test_coefficients_and_robust_standard_errors_equal_r_survival_with_heavy_ties(case):
    """R's robust variance uses Efron's score residuals, as this fit does; lifelines' does not (next tests)."""
    coefficients, standard_errors, robust_standard_errors = R_SEEDED[case]
    fit = _fit(seeded_cohort(), **R_OPTIONS[case])
    assert fit.coefficients == pytest.approx(coefficients, rel=1e-8)
    assert _standard_errors(fit.covariance) == pytest.approx(standard_errors, rel=1e-8)
    assert _standard_errors(fit.robust_covariance) == pytest.approx(robust_standard_errors, rel=1e-8)


@pytest.mark.parametrize("options", [{}, {"strata": True}, {"weights": True}, {"clusters": True},
                                     {"strata": True, "weights": True, "clusters": True}],
                         ids=["plain", "strata", "weights", "clusters", "all"])
def test_coefficients_and_model_standard_errors_equal_lifelines_with_heavy_ties(options):
    frame = seeded_cohort()
    assert frame.loc[frame.event == 1, "time"].nunique() < frame.event.sum() / 5  # heavy ties indeed
    fit = _fit(frame, **options)
    lifelines = _lifelines(frame, **options)
    assert fit.problems == ()
    assert fit.coefficients == pytest.approx(lifelines.params_[COVARIATES].to_numpy(), rel=1e-8)
    assert _standard_errors(fit.covariance) == pytest.approx(
        np.sqrt(np.diag(lifelines.variance_matrix_.loc[COVARIATES, COVARIATES])), rel=1e-8)
    assert fit.log_likelihood == pytest.approx(lifelines.log_likelihood_, rel=1e-12)


@pytest.mark.parametrize("options", [{}, {"strata": True}, {"weights": True}, {"clusters": True},
                                     {"strata": True, "weights": True, "clusters": True}],
                         ids=["plain", "strata", "weights", "clusters", "all"])
def test_robust_standard_errors_equal_lifelines_without_ties(options):
    """Without tied times lifelines' score residuals are Efron's too, so its robust SE must be the same."""
    frame = seeded_cohort(tied=False)
    fit = _fit(frame, **options)
    lifelines = _lifelines(frame, robust=True, **options)
    assert fit.coefficients == pytest.approx(lifelines.params_[COVARIATES].to_numpy(), rel=1e-8)
    assert _standard_errors(fit.robust_covariance) == pytest.approx(
        lifelines.standard_errors_[COVARIATES].to_numpy(), rel=1e-8)


def test_the_fit_does_not_depend_on_the_order_of_the_rows():
    frame = seeded_cohort()
    shuffled = frame.sample(frac=1.0, random_state=1)
    for options in ({}, {"strata": True, "weights": True, "clusters": True}):
        first, second = _fit(frame, **options), _fit(shuffled, **options)
        assert second.coefficients == pytest.approx(first.coefficients, rel=1e-10)
        assert second.robust_covariance == pytest.approx(first.robust_covariance, rel=1e-8)


# --- fits that must fail, and say why -----------------------------------------------------------------------------

def _person_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """`seeded_cohort` as cox_hazard_ratio reads it: outcome and follow-up in days."""
    return frame.assign(outcome=frame.event.astype(int), followup_days=frame.time * 30)


def test_no_events_in_one_arm_is_an_infinite_estimate_when_fitted_and_not_estimable_through_cox_hazard_ratio():
    frame = seeded_cohort()
    frame.loc[frame.exposure == 1, "event"] = 0.0
    forced = _fit(frame)
    assert forced.problems == ("the log-likelihood levelled off while the coefficient(s) of 'exposure' kept moving: "
                               "an infinite estimate (separation)",)
    assert np.isnan(forced.coefficients).all() and np.isnan(forced.covariance).all()
    result = cox_hazard_ratio(_person_frame(frame), ["age", "female", "score"])
    assert result.estimate is None and result.ci_lower is None and result.p_value is None
    assert result.not_estimable_reason == "no events among the exposed: the ratio is 0 or infinite"


def test_a_covariate_whose_holders_have_no_events_makes_the_hazard_ratio_not_estimable():
    """The forced fit: the counts of exposure arms allow a model, a covariate separates."""
    frame = seeded_cohort()
    frame["marker"] = ((frame.event == 0) & (frame.index % 7 == 0)).astype(float)  # holders never have the event
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing passes as a warning: the problem becomes the reason
        result = cox_hazard_ratio(_person_frame(frame), ["age", "female", "marker"])
    assert result.estimate is None and result.ci_lower is None and result.ci_upper is None
    assert result.not_estimable_reason == (
        "the model did not converge: the log-likelihood levelled off while the coefficient(s) of 'marker' kept "
        "moving: an infinite estimate (separation)")
    assert cox_hazard_ratio(_person_frame(frame), ["age", "female"]).estimate is not None


def test_a_covariate_that_predicts_the_outcome_perfectly_is_not_estimable():
    frame = seeded_cohort()
    frame["marker"] = frame.event  # the outcome itself
    result = cox_hazard_ratio(_person_frame(frame), ["age", "marker"])
    assert result.estimate is None
    assert result.not_estimable_reason.startswith("the model did not converge: ")
    assert "'marker'" in result.not_estimable_reason and "infinite estimate" in result.not_estimable_reason


def test_collinear_and_constant_covariates_are_not_estimable_with_the_column_named():
    frame = seeded_cohort()
    collinear = cox_hazard_ratio(_person_frame(frame.assign(older=frame.age - 40)), ["age", "older"])
    assert collinear.estimate is None
    assert collinear.not_estimable_reason == (
        "the model did not converge: the information matrix is singular at 'older': collinear covariates, or a "
        "covariate constant within strata")
    constant = cox_hazard_ratio(_person_frame(frame.assign(country=1.0)), ["age", "country"])
    assert constant.not_estimable_reason == (
        "the model did not converge: covariate(s) 'country' take one value only: no coefficient is identifiable")


def test_cox_hazard_ratio_reports_the_fit_and_its_chosen_variance():
    frame = _person_frame(seeded_cohort())
    plain = cox_hazard_ratio(frame, ["age", "female", "score"])
    fit = _fit(seeded_cohort())
    assert plain.estimate == pytest.approx(np.exp(fit.coefficients[0]), rel=1e-12)
    assert plain.se_log_estimate == pytest.approx(np.sqrt(fit.covariance[0, 0]), rel=1e-12)
    assert plain.method == ("Cox proportional hazards (adjusted for 3 covariates; model-based variance; Efron ties, "
                            "Newton-Raphson)")
    clustered = cox_hazard_ratio(frame, ["age", "female", "score"], cluster="cluster")
    assert clustered.estimate == pytest.approx(plain.estimate, rel=1e-12)
    assert clustered.se_log_estimate == pytest.approx(
        np.sqrt(_fit(seeded_cohort(), clusters=True).robust_covariance[0, 0]), rel=1e-12)
    assert clustered.proportional_hazards_p_value is not None
