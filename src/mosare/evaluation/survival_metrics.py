"""Survival (time-to-event) statistics of out-of-fold risk scores and predicted survival curves.

Every statistic comes from scikit-survival: Harrell's C (``concordance_index_censored``), Uno's C
(``concordance_index_ipcw``), the time-dependent AUC (``cumulative_dynamic_auc``), the integrated Brier score
(``integrated_brier_score``), Kaplan-Meier curves with log-log CIs (``kaplan_meier_estimator``), the log-rank test
(``compare_survival``) and the censoring weights (``CensoringDistributionEstimator``). What this module adds is the
protocol around them: which patients are compared with which, bootstrap intervals, paired tests and the horizons.

Risk scores are only on one scale within one model. Different folds' models are different models, so a pair of
patients from two test folds compares two scales, and the C-index of pooled out-of-fold risks means nothing.
Therefore:

- **Pooled C means within-fold pairs only.** Every C-index here takes an optional ``fold`` per patient and counts
  only the comparable pairs of two patients in the same test fold. For Harrell's C the pooled value is
  ``sum(concordant + tied_risk / 2) / sum(comparable)`` over folds, from scikit-survival's own per-fold counts
  (:func:`within_fold_counts`). It is valid because each of its pairs is judged by one model on one scale. It is
  not the mean of the fold C's: each fold counts by its number of comparable pairs, so a small fold with few pairs
  moves it less. :func:`per_fold_c_index` and :func:`summarise_folds` give the per-fold values and their mean and SD
  beside it.
- With ``train.repeats``, give each (repeat, fold) its own ``fold`` label and each row its ``patient``: the
  bootstrap then resamples patients, each carrying all of its rows.
- **Bootstrap.** Patients are resampled with replacement within their event status (every resample keeps the
  numbers of events and of censored patients), and the trained models are held fixed. It is vectorised: a resampled
  C-index is a weighted count over the original pairs, each pair weighted by how often both of its patients were
  drawn (two copies of one patient share time and status and are never comparable, so they add nothing). The pair
  rules are scikit-survival's, and the tests check the resampled values against scikit-survival's own functions on
  the materialised resamples. A resample without a comparable pair has no C-index: it is dropped and counted
  (``n_undefined``).
- **Uno's C** weighs each comparable pair by 1 / G(t)^2, G the Kaplan-Meier estimate of the censoring distribution
  of the *training* part (one array, or one per fold). It is truncated at ``tau``: only events before ``tau`` count.
  By default ``tau`` is the largest training time of every censoring distribution used (past it G is unknown and
  scikit-survival raises); a larger ``tau`` given is lowered to it. The censoring distribution is held fixed in the
  bootstrap.
- **Paired comparisons** resample the same patients for both models. The p-value is a normal approximation from
  the bootstrap: ``2 * sf(|difference| / SE)``, SE the standard deviation of the resampled differences. A C-index is a
  U-statistic, asymptotically normal, as the AUC of DeLong's test; the normal form gives p-values below
  ``1 / n_resamples`` that Holm's adjustment can still tell apart, where the share of resamples across 0 cannot.
  A model compared with itself has every resampled difference exactly 0, and p = 1.
- **Horizons** of the time-dependent AUC default to the 1/3 and 2/3 quantiles of the *training* event times. Each
  horizon must lie in ``[min test time, min(max test time, max training time))``: scikit-survival needs it within the
  test follow-up, and past the largest training time the censoring weights are unknown. Horizons outside are clipped
  into that range (the result keeps what was asked and what was used).
- **Administrative censoring.** scikit-survival evaluates the censoring weights at every test patient's own time,
  so one test patient followed up longer than anyone in training makes it raise, whatever the horizons. Before the
  time-dependent AUC and the Brier score, test follow-up is therefore cut at ``c = min(max test time, max training
  time)``: a patient with time >= c becomes censored at c. Every horizon is below c, so at every horizon such a
  patient is a control before and after the cut and no case or control status changes; the values equal
  scikit-survival's on the uncut data wherever that does not raise (tested).

No torch and no drawing here: the figures are in :mod:`mosare.reporting.plots.survival`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm
from sksurv.compare import compare_survival
from sksurv.exceptions import NoComparablePairException
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.nonparametric import CensoringDistributionEstimator, kaplan_meier_estimator
from sksurv.util import Surv, check_y_survival

from mosare.evaluation.evidence import CI_LEVEL, holm_adjust, percentile_interval, stratified_bootstrap_counts

EVENT_FIELD = "event"
TIME_FIELD = "time"
# scikit-survival's default: risks closer than this are tied (count one half).
TIED_TOL = 1e-8
DEFAULT_HORIZON_QUANTILES: tuple[float, ...] = (1 / 3, 2 / 3)
# Bootstrap resamples per matrix product: bounds memory at (chunk x fold size) floats.
_RESAMPLE_CHUNK = 256


# ------------------------------------------------------------------------------------------------ survival data


def survival_array(time: Sequence[float] | np.ndarray, event: Sequence[object] | np.ndarray) -> np.ndarray:
    """scikit-survival's structured outcome array (fields ``event``: bool, ``time``: float) of one row per patient.

    ``time`` must be finite and >= 0; ``event`` boolean or 0/1 (1 = event observed, 0 = censored). Every problem is
    named with the first offending positions.
    """
    time_values, event_values = _checked_outcome(time, event)
    return Surv.from_arrays(event=event_values, time=time_values, name_event=EVENT_FIELD, name_time=TIME_FIELD)


def _checked_outcome(time: object, event: object) -> tuple[np.ndarray, np.ndarray]:
    """(time float64, event bool) after the checks of :func:`survival_array`."""
    time_raw, event_raw = np.asarray(time), np.asarray(event)
    if time_raw.ndim != 1 or event_raw.ndim != 1:
        raise ValueError(f"time and event must be 1-D; got shapes {time_raw.shape} and {event_raw.shape}")
    if len(time_raw) != len(event_raw):
        raise ValueError(f"time and event differ in length: {len(time_raw)} and {len(event_raw)}")
    if len(time_raw) == 0:
        raise ValueError("no patients: time and event are empty")
    try:
        time_values = time_raw.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"time must be numeric; got dtype {time_raw.dtype}") from error
    bad_time = ~np.isfinite(time_values) | (time_values < 0)
    if bad_time.any():
        raise ValueError(
            f"time must be finite and >= 0: {int(bad_time.sum())} bad value(s), first at positions "
            f"{np.flatnonzero(bad_time)[:5].tolist()} ({time_values[bad_time][:5].tolist()})"
        )
    if event_raw.dtype == np.bool_:
        return time_values, event_raw.astype(bool)
    try:
        numeric = event_raw.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"event must be boolean or 0/1; got dtype {event_raw.dtype}") from error
    bad_event = ~np.isin(numeric, (0.0, 1.0))
    if bad_event.any():
        raise ValueError(
            f"event must be 0 (censored) or 1 (event): {int(bad_event.sum())} bad value(s), first at positions "
            f"{np.flatnonzero(bad_event)[:5].tolist()} ({event_raw[bad_event][:5].tolist()})"
        )
    return time_values, numeric == 1.0


def _outcome_of(survival: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(time, event) of a structured outcome array, whatever its field names (event first, as scikit-survival)."""
    event, time = check_y_survival(survival, allow_all_censored=True)
    return _checked_outcome(time, event)


def _checked_scores(values: object, n: int, name: str) -> np.ndarray:
    scores = np.asarray(values, dtype=np.float64)
    if scores.shape != (n,):
        raise ValueError(f"{name} must be one value per patient, shape ({n},); got {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError(f"{name} has {int((~np.isfinite(scores)).sum())} non-finite value(s)")
    return scores


def _group_codes(labels: object, n: int, name: str) -> np.ndarray:
    """Integer codes 0..G-1 of ``labels`` (one per patient); all zeros when ``labels`` is None."""
    if labels is None:
        return np.zeros(n, dtype=np.int64)
    values = np.asarray(labels)
    if values.shape != (n,):
        raise ValueError(f"{name} must be one label per patient, shape ({n},); got {values.shape}")
    return np.unique(values, return_inverse=True)[1].astype(np.int64)


# ------------------------------------------------------------------------------------------ concordance counts


@dataclass(frozen=True)
class ConcordanceCounts:
    """scikit-survival's pair counts of Harrell's C. ``tied_time`` pairs (an event and a censoring at the same time)
    are among the other three, as in scikit-survival."""

    concordant: int = 0
    discordant: int = 0
    tied_risk: int = 0
    tied_time: int = 0

    @property
    def comparable(self) -> int:
        return self.concordant + self.discordant + self.tied_risk

    @property
    def c_index(self) -> float:
        """(concordant + tied_risk / 2) / comparable; NaN without a comparable pair."""
        if self.comparable == 0:
            return float("nan")
        return (self.concordant + 0.5 * self.tied_risk) / self.comparable

    def __add__(self, other: ConcordanceCounts) -> ConcordanceCounts:
        return ConcordanceCounts(
            self.concordant + other.concordant,
            self.discordant + other.discordant,
            self.tied_risk + other.tied_risk,
            self.tied_time + other.tied_time,
        )


def harrell_counts(time: object, event: object, risk: object) -> ConcordanceCounts:
    """scikit-survival's ``concordance_index_censored`` counts for one set of patients on one risk scale; all zero
    when the set has no comparable pair (fewer than two patients, no event, or all events at the last time)."""
    time_values, event_values = _checked_outcome(time, event)
    scores = _checked_scores(risk, len(time_values), "risk")
    if len(time_values) < 2 or not event_values.any():
        return ConcordanceCounts()
    try:
        _, concordant, discordant, tied_risk, tied_time = concordance_index_censored(
            event_values, time_values, scores, tied_tol=TIED_TOL
        )
    except NoComparablePairException:
        return ConcordanceCounts()
    return ConcordanceCounts(int(concordant), int(discordant), int(tied_risk), int(tied_time))


def within_fold_counts(time: object, event: object, risk: object, fold: object = None) -> ConcordanceCounts:
    """Harrell's pair counts summed over test folds, each fold's from scikit-survival: only pairs of two patients of
    the same fold are counted, so every pair is on one model's scale. ``fold=None``: one set."""
    time_values, event_values = _checked_outcome(time, event)
    scores = _checked_scores(risk, len(time_values), "risk")
    codes = _group_codes(fold, len(time_values), "fold")
    total = ConcordanceCounts()
    for code in np.unique(codes):
        members = codes == code
        total = total + harrell_counts(time_values[members], event_values[members], scores[members])
    return total


# ------------------------------------------------------------------------------- weighted pairs (the bootstrap)


def _comparable_blocks(
    time: np.ndarray, event: np.ndarray, codes: np.ndarray, row_weight: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per fold: (patient positions, matrix D with D[i, j] = row_weight[i] when (i, j) is comparable, else 0).

    scikit-survival's rule: an event i is comparable with j when t_i < t_j, or t_i == t_j and j is censored.
    """
    blocks = []
    for code in np.unique(codes):
        members = np.flatnonzero(codes == code)
        t, e = time[members], event[members]
        comparable = e[:, None] & ((t[:, None] < t[None, :]) | ((t[:, None] == t[None, :]) & ~e[None, :]))
        blocks.append((members, comparable * row_weight[members][:, None]))
    return blocks


def _concordance_matrix(risk: np.ndarray, comparable: np.ndarray) -> np.ndarray:
    """comparable[i, j] times 1 when the event i has the higher risk, 1/2 when tied (|difference| <= TIED_TOL)."""
    tied = np.abs(risk[:, None] - risk[None, :]) <= TIED_TOL
    score = np.where(tied, 0.5, (risk[None, :] < risk[:, None]).astype(np.float64))
    return comparable * score


def _weighted_c(
    blocks: Sequence[tuple[np.ndarray, np.ndarray]], numerators: Sequence[np.ndarray], weights: np.ndarray
) -> np.ndarray:
    """C-index under each row of ``weights`` (B, N: copies of each patient): sum over pairs of w_i w_j N_ij over the
    same sum of D_ij, folds summed before the ratio. NaN where no comparable pair is drawn."""
    weights = np.atleast_2d(weights)
    numerator = np.zeros(len(weights))
    denominator = np.zeros(len(weights))
    for start in range(0, len(weights), _RESAMPLE_CHUNK):
        rows = slice(start, start + _RESAMPLE_CHUNK)
        for (members, comparable), concordance in zip(blocks, numerators):
            w = weights[rows][:, members]
            numerator[rows] += ((w @ concordance) * w).sum(axis=1)
            denominator[rows] += ((w @ comparable) * w).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def patient_bootstrap_weights(event: object, patient: object, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, rows) copies of each row's patient in each resample: patients drawn with replacement within
    their event status (so every resample keeps the counts of events and censored patients). ``patient=None``: each
    row its own patient. A patient's rows (one per repeat) must agree on the event."""
    event_values = np.asarray(event, dtype=bool)
    codes = _group_codes(patient if patient is not None else np.arange(len(event_values)), len(event_values), "patient")
    n_patients = int(codes.max()) + 1
    patient_event = np.zeros(n_patients, dtype=np.int64)
    patient_event[codes] = event_values
    if not np.array_equal(patient_event[codes].astype(bool), event_values):
        raise ValueError("a patient's rows disagree on the event: one outcome per patient")
    counts = stratified_bootstrap_counts(patient_event, n_resamples, seed)
    return counts[:, codes]


# --------------------------------------------------------------------------------------------- C-index with CI


@dataclass(frozen=True)
class ConcordanceEstimate:
    """A C-index with its patient-level bootstrap percentile CI. ``n_undefined`` resamples had no comparable pair
    and were dropped; ``tau`` is the truncation time of Uno's C (None for Harrell's)."""

    c_index: float
    ci_low: float
    ci_high: float
    n_resamples: int
    n_undefined: int
    comparable_pairs: int
    tau: float | None = None


def _interval(values: np.ndarray, level: float) -> tuple[float, float, int]:
    low, high = percentile_interval(values, level)
    return low, high, int(np.isnan(values).sum())


def harrell_c_index(
    time: object,
    event: object,
    risk: object,
    *,
    fold: object = None,
    patient: object = None,
    n_resamples: int,
    seed: int,
    level: float = CI_LEVEL,
) -> ConcordanceEstimate:
    """Harrell's C of ``risk`` (higher = earlier event), pooled over within-fold pairs when ``fold`` is given, with
    a patient-level bootstrap CI (module docstring). The point estimate is scikit-survival's, from its per-fold
    counts."""
    time_values, event_values = _checked_outcome(time, event)
    scores = _checked_scores(risk, len(time_values), "risk")
    counts = within_fold_counts(time_values, event_values, scores, fold)
    codes = _group_codes(fold, len(time_values), "fold")
    blocks = _comparable_blocks(time_values, event_values, codes, np.ones(len(time_values)))
    numerators = [_concordance_matrix(scores[members], comparable) for members, comparable in blocks]
    resampled = _weighted_c(blocks, numerators, patient_bootstrap_weights(event_values, patient, n_resamples, seed))
    low, high, undefined = _interval(resampled, level)
    return ConcordanceEstimate(counts.c_index, low, high, n_resamples, undefined, counts.comparable)


def _censoring_for(train_survival: np.ndarray | Mapping[Hashable, np.ndarray], label: Hashable) -> np.ndarray:
    if isinstance(train_survival, Mapping):
        if label not in train_survival:
            raise ValueError(f"no training survival data for fold {label!r}: Uno's C needs each fold's training part")
        return train_survival[label]
    return train_survival


def uno_tau(train_survivals: Sequence[np.ndarray], tau: float | None = None) -> float:
    """The truncation time of Uno's C: ``tau`` (default: no limit) lowered to the smallest of the largest training
    times, the last time every censoring distribution is known at."""
    limit = min(float(_outcome_of(survival)[0].max()) for survival in train_survivals)
    return limit if tau is None else min(float(tau), limit)


def _uno_row_weights(time: np.ndarray, event: np.ndarray, train_survival: np.ndarray, tau: float) -> np.ndarray:
    """1 / G(t_i)^2 of each event before ``tau``, 0 for the rest, G from scikit-survival's Kaplan-Meier censoring
    estimator of the training part, as in ``concordance_index_ipcw``."""
    test = survival_array(time, event)
    weighted = event & (time < tau)
    weights = np.zeros(len(time))
    if weighted.any():
        censoring = CensoringDistributionEstimator().fit(train_survival)
        weights[weighted] = np.square(censoring.predict_ipcw(test[weighted]))
    return weights


def uno_c_index(
    time: object,
    event: object,
    risk: object,
    train_survival: np.ndarray | Mapping[Hashable, np.ndarray],
    *,
    fold: object = None,
    patient: object = None,
    tau: float | None = None,
    n_resamples: int,
    seed: int,
    level: float = CI_LEVEL,
) -> ConcordanceEstimate:
    """Uno's C (IPCW) of ``risk``, truncated at ``tau`` (:func:`uno_tau`), with a patient-level bootstrap CI.

    ``train_survival``: the training part's outcome (:func:`survival_array`) for the censoring distribution, or one
    per fold label. Without ``fold`` the point estimate is scikit-survival's ``concordance_index_ipcw``. With folds,
    within-fold pairs are pooled as for Harrell's C: the IPCW-weighted concordant pairs of every fold over their
    IPCW-weighted comparable pairs, each fold weighted by its own training censoring distribution (each fold's part
    equals scikit-survival's on that fold; tested).
    """
    time_values, event_values = _checked_outcome(time, event)
    scores = _checked_scores(risk, len(time_values), "risk")
    if fold is None and isinstance(train_survival, Mapping):
        raise ValueError("train_survival is one array per fold: give each patient's fold too")
    labels = np.zeros(len(time_values), dtype=np.int64) if fold is None else np.asarray(fold)
    codes = _group_codes(labels, len(time_values), "fold")
    fold_labels = [labels[codes == code][0] for code in np.unique(codes)]
    censorings = [_censoring_for(train_survival, label) for label in fold_labels]
    tau_used = uno_tau(censorings, tau)
    row_weight = np.zeros(len(time_values))
    for code, censoring in zip(np.unique(codes), censorings):
        members = codes == code
        row_weight[members] = _uno_row_weights(time_values[members], event_values[members], censoring, tau_used)
    blocks = _comparable_blocks(time_values, event_values, codes, row_weight)
    numerators = [_concordance_matrix(scores[members], comparable) for members, comparable in blocks]
    if fold is None:
        test = survival_array(time_values, event_values)
        try:
            point = float(concordance_index_ipcw(censorings[0], test, scores, tau=tau_used, tied_tol=TIED_TOL)[0])
        except (NoComparablePairException, ValueError):
            point = float("nan")
    else:
        point = float(_weighted_c(blocks, numerators, np.ones((1, len(time_values))))[0])
    resampled = _weighted_c(blocks, numerators, patient_bootstrap_weights(event_values, patient, n_resamples, seed))
    low, high, undefined = _interval(resampled, level)
    comparable = int(sum(int((block > 0).sum()) for _, block in blocks))
    return ConcordanceEstimate(point, low, high, n_resamples, undefined, comparable, tau_used)


# ------------------------------------------------------------------------------------------------ per-fold values


@dataclass(frozen=True)
class SurvivalFold:
    """One test fold: its patients' outcomes and one model's risks, and its training part's outcomes (for Uno's C,
    the censoring weights and the default horizons)."""

    fold: Hashable
    time: np.ndarray
    event: np.ndarray
    risk: np.ndarray
    train_time: np.ndarray
    train_event: np.ndarray

    @property
    def train_survival(self) -> np.ndarray:
        return survival_array(self.train_time, self.train_event)


def cross_validation_folds(time: object, event: object, risk: object, fold: object) -> list[SurvivalFold]:
    """Out-of-fold predictions of one K-fold cross-validation (every patient in one test fold) as folds whose
    training part is every other fold's patients."""
    time_values, event_values = _checked_outcome(time, event)
    scores = _checked_scores(risk, len(time_values), "risk")
    labels = np.asarray(fold)
    if labels.shape != time_values.shape:
        raise ValueError(f"fold must be one label per patient, shape {time_values.shape}; got {labels.shape}")
    folds = []
    for label in np.unique(labels):
        test = labels == label
        folds.append(
            SurvivalFold(
                label.item() if hasattr(label, "item") else label,
                time_values[test],
                event_values[test],
                scores[test],
                time_values[~test],
                event_values[~test],
            )
        )
    return folds


PER_FOLD_COLUMNS: tuple[str, ...] = (
    "fold", "patients", "events", "comparable_pairs", "concordant", "discordant", "tied_risk", "tied_time",
    "harrell_c", "uno_c", "uno_tau",
)  # fmt: skip


def per_fold_c_index(folds: Sequence[SurvivalFold], *, tau: float | None = None) -> pd.DataFrame:
    """One row per fold: scikit-survival's Harrell counts and C, and Uno's C against the fold's own training
    censoring distribution (truncated at :func:`uno_tau` of that fold). NaN where a fold has no comparable pair."""
    rows = []
    for fold in folds:
        time_values, event_values = _checked_outcome(fold.time, fold.event)
        scores = _checked_scores(fold.risk, len(time_values), "risk")
        counts = harrell_counts(time_values, event_values, scores)
        train = fold.train_survival
        fold_tau = uno_tau([train], tau)
        try:
            uno = float(
                concordance_index_ipcw(
                    train, survival_array(time_values, event_values), scores, tau=fold_tau, tied_tol=TIED_TOL
                )[0]
            )
        except (NoComparablePairException, ValueError):
            uno = float("nan")
        rows.append({"fold": fold.fold, "patients": len(time_values), "events": int(event_values.sum()),
                     "comparable_pairs": counts.comparable, "concordant": counts.concordant,
                     "discordant": counts.discordant, "tied_risk": counts.tied_risk, "tied_time": counts.tied_time,
                     "harrell_c": counts.c_index, "uno_c": uno, "uno_tau": fold_tau})  # fmt: skip
    return pd.DataFrame(rows, columns=list(PER_FOLD_COLUMNS))


def pooled_c_index(per_fold: pd.DataFrame) -> float:
    """Harrell's C over within-fold pairs, from a :func:`per_fold_c_index` table: summed counts, one ratio."""
    counts = ConcordanceCounts(
        int(per_fold["concordant"].sum()),
        int(per_fold["discordant"].sum()),
        int(per_fold["tied_risk"].sum()),
        int(per_fold["tied_time"].sum()),
    )
    return counts.c_index


def summarise_folds(per_fold: pd.DataFrame) -> dict[str, float]:
    """The pooled within-fold Harrell's C beside the mean and sample SD over folds of Harrell's and Uno's C (folds
    without a value left out; ``folds_counted`` says how many count)."""
    harrell = per_fold["harrell_c"].dropna()
    uno = per_fold["uno_c"].dropna()
    return {
        "pooled_harrell_c": pooled_c_index(per_fold),
        "mean_harrell_c": float(harrell.mean()) if len(harrell) else float("nan"),
        "sd_harrell_c": float(harrell.std(ddof=1)) if len(harrell) > 1 else float("nan"),
        "mean_uno_c": float(uno.mean()) if len(uno) else float("nan"),
        "sd_uno_c": float(uno.std(ddof=1)) if len(uno) > 1 else float("nan"),
        "folds_counted": float(len(harrell)),
    }


# ------------------------------------------------------------------------------------------- paired comparisons


COMPARISON_COLUMNS: tuple[str, ...] = (
    "c_index", "c_index_compared", "c_index_difference", "ci_low", "ci_high", "p_value", "n_undefined",
)  # fmt: skip


def paired_c_index_comparison(
    time: object,
    event: object,
    risk_a: object,
    risk_b: object,
    *,
    fold: object = None,
    patient: object = None,
    n_resamples: int,
    seed: int,
    level: float = CI_LEVEL,
) -> dict[str, float]:
    """Harrell's C (within-fold pairs) of two models' risks on the same patients, and its difference a - b: a
    paired-bootstrap percentile CI (the same resampled patients for both) and the two-sided normal-approximation p
    from the bootstrap SE (module docstring). A resample where either C is undefined is dropped and counted."""
    time_values, event_values = _checked_outcome(time, event)
    scores_a = _checked_scores(risk_a, len(time_values), "risk_a")
    scores_b = _checked_scores(risk_b, len(time_values), "risk_b")
    c_a = within_fold_counts(time_values, event_values, scores_a, fold).c_index
    c_b = within_fold_counts(time_values, event_values, scores_b, fold).c_index
    codes = _group_codes(fold, len(time_values), "fold")
    blocks = _comparable_blocks(time_values, event_values, codes, np.ones(len(time_values)))
    weights = patient_bootstrap_weights(event_values, patient, n_resamples, seed)
    resampled_a = _weighted_c(blocks, [_concordance_matrix(scores_a[m], d) for m, d in blocks], weights)
    resampled_b = _weighted_c(blocks, [_concordance_matrix(scores_b[m], d) for m, d in blocks], weights)
    differences = resampled_a - resampled_b
    low, high, undefined = _interval(differences, level)
    difference = c_a - c_b
    return {"c_index": c_a, "c_index_compared": c_b, "c_index_difference": difference, "ci_low": low,
            "ci_high": high, "p_value": bootstrap_normal_p(difference, differences), "n_undefined": float(undefined)}  # fmt: skip


def bootstrap_normal_p(difference: float, resampled: np.ndarray) -> float:
    """Two-sided p of ``difference`` = 0 from the normal approximation with the bootstrap SE (sample SD of the finite
    resampled differences). Zero SE: 1 when the difference is 0 (a model against itself), else NaN (undefined)."""
    finite = np.asarray(resampled, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if not math.isfinite(difference) or finite.size < 2:
        return float("nan")
    standard_error = float(finite.std(ddof=1))
    if standard_error <= 1e-15:
        return 1.0 if abs(difference) <= 1e-15 else float("nan")
    return float(2 * norm.sf(abs(difference) / standard_error))


def c_index_comparisons(
    time: object,
    event: object,
    reference_risk: object,
    other_risks: Mapping[str, object],
    *,
    fold: object = None,
    patient: object = None,
    n_resamples: int,
    seed: int,
    level: float = CI_LEVEL,
) -> pd.DataFrame:
    """The reference model against each of ``other_risks`` (one row each, column ``compared_to``), every comparison
    on the same resampled patients, with ``p_holm``: Holm over this family
    (:func:`mosare.evaluation.evidence.holm_adjust`). A larger family (several scenarios) is adjusted again over
    all its ``p_value``s by the caller."""
    rows = [
        {"compared_to": name, **paired_c_index_comparison(time, event, reference_risk, risk, fold=fold,
                                                          patient=patient, n_resamples=n_resamples, seed=seed,
                                                          level=level)}
        for name, risk in other_risks.items()
    ]  # fmt: skip
    if not rows:
        return pd.DataFrame(columns=["compared_to", *COMPARISON_COLUMNS, "p_holm"])
    table = pd.DataFrame(rows)
    table["p_holm"] = holm_adjust(table["p_value"].to_numpy())
    return table


# -------------------------------------------------------------------------------- horizons, AUC(t), Brier score


def default_horizons(
    train_time: object, train_event: object, quantiles: Sequence[float] = DEFAULT_HORIZON_QUANTILES
) -> np.ndarray:
    """The ``quantiles`` of the training part's event times (default 1/3 and 2/3)."""
    time_values, event_values = _checked_outcome(train_time, train_event)
    if not event_values.any():
        raise ValueError("no event in the training data: the default horizons are quantiles of event times")
    return np.quantile(time_values[event_values], np.asarray(quantiles, dtype=np.float64))


def follow_up_limit(test_time: np.ndarray, train_time: np.ndarray) -> float:
    """``c`` = min(largest test time, largest training time): horizons must be below it (module docstring)."""
    return float(min(np.max(test_time), np.max(train_time)))


def clip_horizons(horizons: object, test_time: np.ndarray, train_time: np.ndarray) -> np.ndarray:
    """``horizons`` clipped into [smallest test time, :func:`follow_up_limit`), sorted, duplicates dropped."""
    low, limit = float(np.min(test_time)), follow_up_limit(test_time, train_time)
    if not low < limit:
        raise ValueError(
            f"no usable horizon: the test follow-up starts at {low} and the usable range ends at {limit} "
            "(min of the largest test and training times)"
        )
    requested = np.atleast_1d(np.asarray(horizons, dtype=np.float64))
    return np.unique(np.clip(requested, low, np.nextafter(limit, -np.inf)))


def _cut_follow_up(time: np.ndarray, event: np.ndarray, limit: float) -> np.ndarray:
    """Administrative censoring at ``limit``: a patient with time >= limit becomes censored at ``limit``."""
    beyond = time >= limit
    return survival_array(np.where(beyond, limit, time), event & ~beyond)


@dataclass(frozen=True)
class TimeDependentAuc:
    """Cumulative/dynamic AUC at each horizon used, and scikit-survival's survival-weighted mean over them."""

    requested: np.ndarray
    horizons: np.ndarray
    auc: np.ndarray
    mean_auc: float

    def at(self, horizons: object) -> np.ndarray:
        """AUC(t) at each of ``horizons``, a horizon outside the usable range read at the nearest used one (NaN where
        none was used)."""
        by_used = dict(zip(self.horizons, self.auc, strict=True))
        clipped = np.clip(
            np.atleast_1d(np.asarray(horizons, dtype=np.float64)), self.horizons.min(), self.horizons.max()
        )
        return np.array([by_used.get(h, np.nan) for h in clipped], dtype=np.float64)


def time_dependent_auc(
    time: object,
    event: object,
    risk: object,
    train_time: object,
    train_event: object,
    horizons: object = None,
) -> TimeDependentAuc:
    """scikit-survival's ``cumulative_dynamic_auc`` of ``risk`` at ``horizons`` (default :func:`default_horizons` of
    the training part), clipped into the usable range, on test follow-up cut at :func:`follow_up_limit` (module
    docstring). A horizon without a case or a control has AUC NaN."""
    time_values, event_values = _checked_outcome(time, event)
    scores = _checked_scores(risk, len(time_values), "risk")
    train_times, train_events = _checked_outcome(train_time, train_event)
    requested = default_horizons(train_times, train_events) if horizons is None else horizons
    requested = np.atleast_1d(np.asarray(requested, dtype=np.float64))
    used = clip_horizons(requested, time_values, train_times)
    limit = follow_up_limit(time_values, train_times)
    test = _cut_follow_up(time_values, event_values, limit)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc, mean_auc = cumulative_dynamic_auc(
            survival_array(train_times, train_events), test, scores, used, tied_tol=TIED_TOL
        )
    return TimeDependentAuc(requested, used, np.asarray(auc, dtype=np.float64), float(mean_auc))


def survival_at(curve_times: object, curves: object, times: object) -> np.ndarray:
    """Predicted survival (patients x ``times``) read off step curves: ``curves[:, k]`` is S(``curve_times[k]``),
    constant until the next curve time, 1 before the first."""
    grid = np.asarray(curve_times, dtype=np.float64)
    values = np.atleast_2d(np.asarray(curves, dtype=np.float64))
    if grid.ndim != 1 or values.shape[1] != len(grid) or np.any(np.diff(grid) <= 0):
        raise ValueError(f"curve_times must be increasing with one column of curves each; got {grid.shape}, {values.shape}")  # fmt: skip
    position = np.searchsorted(grid, np.atleast_1d(np.asarray(times, dtype=np.float64)), side="right") - 1
    padded = np.concatenate([np.ones((len(values), 1)), values], axis=1)
    return padded[:, position + 1]


@dataclass(frozen=True)
class IntegratedBrier:
    """scikit-survival's integrated Brier score over the grid times it used (NaN with fewer than two)."""

    ibs: float
    grid: np.ndarray


def integrated_brier(
    time: object,
    event: object,
    survival: object,
    grid: object,
    train_time: object,
    train_event: object,
) -> IntegratedBrier:
    """Integrated Brier score of predicted survival curves: ``survival[i, k]`` = S(``grid[k]``) for patient i.

    Grid times outside [smallest test time, :func:`follow_up_limit`) are left out (scikit-survival refuses them),
    and test follow-up is cut at that limit (module docstring). IPCW from the training part's censoring.
    """
    time_values, event_values = _checked_outcome(time, event)
    train_times, train_events = _checked_outcome(train_time, train_event)
    grid_values = np.asarray(grid, dtype=np.float64)
    predicted = np.asarray(survival, dtype=np.float64)
    if predicted.shape != (len(time_values), len(grid_values)):
        raise ValueError(
            f"survival must be patients x grid times, ({len(time_values)}, {len(grid_values)}); got {predicted.shape}"
        )
    limit = follow_up_limit(time_values, train_times)
    keep = (grid_values >= np.min(time_values)) & (grid_values < limit)
    if keep.sum() < 2:
        return IntegratedBrier(float("nan"), grid_values[keep])
    test = _cut_follow_up(time_values, event_values, limit)
    ibs = integrated_brier_score(survival_array(train_times, train_events), test, predicted[:, keep], grid_values[keep])
    return IntegratedBrier(float(ibs), grid_values[keep])


# ------------------------------------------------------------------------------- Kaplan-Meier, risk groups


@dataclass(frozen=True)
class KaplanMeierCurve:
    """scikit-survival's Kaplan-Meier estimate with its pointwise log-log CI, at each distinct observed time."""

    time: np.ndarray
    survival: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray

    def at(self, times: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(survival, ci_low, ci_high) at ``times``: 1 before the first time; NaN past the last time unless the
        curve has reached 0 (beyond the follow-up the survival is unknown)."""
        query = np.atleast_1d(np.asarray(times, dtype=np.float64))
        position = np.searchsorted(self.time, query, side="right") - 1
        result = []
        for values in (self.survival, self.ci_low, self.ci_high):
            padded = np.r_[1.0, values]
            picked = padded[position + 1].astype(np.float64)
            if self.survival[-1] > 0:
                picked[query > self.time[-1]] = np.nan
            result.append(picked)
        return result[0], result[1], result[2]


def kaplan_meier(time: object, event: object, level: float = CI_LEVEL) -> KaplanMeierCurve:
    """Kaplan-Meier curve of one group, CI by ``kaplan_meier_estimator(conf_type="log-log")``."""
    time_values, event_values = _checked_outcome(time, event)
    times, survival, interval = kaplan_meier_estimator(event_values, time_values, conf_level=level, conf_type="log-log")
    return KaplanMeierCurve(
        np.asarray(times, dtype=np.float64),
        np.asarray(survival, dtype=np.float64),
        np.asarray(interval[0], dtype=np.float64),
        np.asarray(interval[1], dtype=np.float64),
    )


def log_rank_test(time: object, event: object, group: object) -> tuple[float, float]:
    """(chi-square, p) of scikit-survival's log-rank test ``compare_survival`` across the groups; NaN with fewer
    than two groups or no event."""
    time_values, event_values = _checked_outcome(time, event)
    groups = np.asarray(group)
    if groups.shape != time_values.shape:
        raise ValueError(f"group must be one label per patient, shape {time_values.shape}; got {groups.shape}")
    if np.unique(groups).size < 2 or not event_values.any():
        return float("nan"), float("nan")
    chi_square, p_value = compare_survival(survival_array(time_values, event_values), groups)
    return float(chi_square), float(p_value)


def numbers_at_risk(time: object, group: object, at_times: object) -> pd.DataFrame:
    """Patients still at risk (time >= t) at each of ``at_times``, one row per group (sorted), one column per time."""
    time_values = np.asarray(time, dtype=np.float64)
    groups = np.asarray(group)
    points = np.atleast_1d(np.asarray(at_times, dtype=np.float64))
    rows = {label: [(time_values[groups == label] >= t).sum() for t in points] for label in np.unique(groups)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=points)


def training_cutoffs(train_risk: object, n_groups: int = 2) -> np.ndarray:
    """The cut-offs splitting a fold's *training* risks into ``n_groups`` equal-count groups (2: the median;
    3: tertiles)."""
    if n_groups < 2:
        raise ValueError(f"n_groups must be at least 2; got {n_groups}")
    risks = np.asarray(train_risk, dtype=np.float64)
    if risks.size == 0 or not np.isfinite(risks).all():
        raise ValueError("training risks must be non-empty and finite")
    return np.quantile(risks, np.arange(1, n_groups) / n_groups)


def risk_groups(
    test_risk: object, fold: object, cutoffs: Mapping[Hashable, Sequence[float] | np.ndarray]
) -> np.ndarray:
    """Each test patient's risk group: the number of its fold's cut-offs strictly below its risk (0 = lowest risk;
    a risk equal to a cut-off goes to the lower group).

    ``cutoffs[fold]`` come from that fold's *training* risks (:func:`training_cutoffs`). A patient's group depends on
    its own risk and its fold's cut-offs only, never on the other test patients (tested). Every fold must have the
    same number of cut-offs.
    """
    risks = np.asarray(test_risk, dtype=np.float64)
    labels = np.asarray(fold)
    if labels.shape != risks.shape or risks.ndim != 1:
        raise ValueError(f"test_risk and fold must be 1-D of one length; got {risks.shape} and {labels.shape}")
    if not np.isfinite(risks).all():
        raise ValueError("test_risk has non-finite values")
    sizes = {len(np.atleast_1d(values)) for values in cutoffs.values()}
    if len(sizes) != 1:
        raise ValueError(f"every fold needs the same number of cut-offs; got {sorted(sizes)}")
    groups = np.empty(len(risks), dtype=np.int64)
    for label in np.unique(labels):
        key = label.item() if hasattr(label, "item") else label
        if key not in cutoffs:
            raise ValueError(f"no training cut-offs for fold {key!r}")
        edges = np.sort(np.asarray(cutoffs[key], dtype=np.float64).ravel())
        members = labels == label
        groups[members] = np.searchsorted(edges, risks[members], side="left")
    return groups


def risk_group_names(n_groups: int) -> list[str]:
    """Display names, lowest risk first: low/high, low/intermediate/high, else Q1..Qn."""
    if n_groups == 2:
        return ["low risk", "high risk"]
    if n_groups == 3:
        return ["low risk", "intermediate risk", "high risk"]
    return [f"risk Q{k + 1}" for k in range(n_groups)]


# --------------------------------------------------------------------------------------------------- calibration


CALIBRATION_COLUMNS: tuple[str, ...] = (
    "group", "patients", "events", "mean_predicted", "observed", "observed_low", "observed_high",
)  # fmt: skip


def survival_calibration(
    time: object,
    event: object,
    predicted_survival: object,
    horizon: float,
    n_groups: int = 5,
    level: float = CI_LEVEL,
) -> pd.DataFrame:
    """Calibration at ``horizon``: patients in ``n_groups`` equal-count groups of predicted survival at the horizon
    (group 0: lowest predicted survival, i.e. highest risk); per group the mean predicted survival and the
    Kaplan-Meier observed survival at the horizon with its log-log CI (NaN when the group's follow-up ends before the
    horizon with survival above 0). Predicted survival probabilities share one scale across folds, so pooling
    out-of-fold patients is valid here."""
    time_values, event_values = _checked_outcome(time, event)
    predicted = _checked_scores(predicted_survival, len(time_values), "predicted_survival")
    n_groups = max(1, min(n_groups, len(time_values)))
    order = np.argsort(predicted, kind="stable")
    rows = []
    for group, members in enumerate(np.array_split(order, n_groups)):
        curve = kaplan_meier(time_values[members], event_values[members], level)
        observed, low, high = (float(v[0]) for v in curve.at(horizon))
        rows.append({"group": group, "patients": len(members), "events": int(event_values[members].sum()),
                     "mean_predicted": float(predicted[members].mean()), "observed": observed,
                     "observed_low": low, "observed_high": high})  # fmt: skip
    return pd.DataFrame(rows, columns=list(CALIBRATION_COLUMNS))
