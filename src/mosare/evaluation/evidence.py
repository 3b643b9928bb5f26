"""Statistics that turn out-of-fold predictions into evidence: bootstrap confidence intervals of the pooled AUC,
paired comparisons (paired bootstrap and DeLong's test, Holm-adjusted), and calibration (Brier score, ECE).

Everything works on pooled out-of-fold predictions: each patient's test-fold probabilities, one row per patient. The
bootstrap resamples patients within each class (so every resample holds both classes) and is vectorised: one
(resamples x patients) matrix of counts, and every AUC over it comes from one sort of the scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import norm
from sklearn.metrics import brier_score_loss

CI_LEVEL = 0.95
ECE_BINS = 15


def stratified_bootstrap_counts(labels: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, N) how often each patient is drawn when every class is resampled with replacement to its size."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_resamples, len(labels)), dtype=np.float64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        counts[:, members] = rng.multinomial(len(members), np.full(len(members), 1.0 / len(members)), size=n_resamples)
    return counts


def weighted_binary_auc(positive: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC of ``scores`` for the boolean ``positive`` under each row of ``weights`` (B, N): the weighted
    Mann-Whitney statistic, ties counted one half. A row with no positive or no negative weight gives NaN."""
    positive = np.asarray(positive, dtype=bool)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    order = np.argsort(scores, kind="stable")
    sorted_scores = np.asarray(scores, dtype=np.float64)[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    sorted_weights = weights[:, order]
    sorted_positive = positive[order]
    positive_per_score = np.add.reduceat(sorted_weights * sorted_positive, starts, axis=1)
    negative_per_score = np.add.reduceat(sorted_weights * ~sorted_positive, starts, axis=1)
    negatives_below = np.cumsum(negative_per_score, axis=1) - negative_per_score
    wins = (positive_per_score * (negatives_below + 0.5 * negative_per_score)).sum(axis=1)
    pairs = positive_per_score.sum(axis=1) * negative_per_score.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, wins / np.where(pairs > 0, pairs, 1.0), np.nan)


def weighted_auc(labels: np.ndarray, probabilities: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC under each row of ``weights``: of the last class's probability for two classes, else the one-vs-rest
    macro average (as :func:`mosare.evaluation.metrics.auc_score`)."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape[1] == 2:
        return weighted_binary_auc(labels == 1, probabilities[:, 1], weights)
    per_class = [weighted_binary_auc(labels == k, probabilities[:, k], weights) for k in range(probabilities.shape[1])]
    return np.mean(per_class, axis=0)


def percentile_interval(values: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval of the finite ``values`` (NaN, NaN when none is finite)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def auc_with_interval(
    labels: np.ndarray, probabilities: np.ndarray, n_resamples: int, seed: int
) -> tuple[float, float, float]:
    """Pooled AUC and its percentile CI from a patient-level, class-stratified bootstrap."""
    labels = np.asarray(labels)
    point = float(weighted_auc(labels, probabilities, np.ones((1, len(labels))))[0])
    resampled = weighted_auc(labels, probabilities, stratified_bootstrap_counts(labels, n_resamples, seed))
    return (point, *percentile_interval(resampled))


def paired_auc_comparison(
    labels: np.ndarray, probabilities_a: np.ndarray, probabilities_b: np.ndarray, n_resamples: int, seed: int
) -> dict[str, float]:
    """Two models' AUCs on the same patients and their difference (a - b): a paired-bootstrap percentile CI (the same
    resampled patients for both) and, for two classes, DeLong's two-sided p (NaN otherwise)."""
    labels = np.asarray(labels)
    counts = stratified_bootstrap_counts(labels, n_resamples, seed)
    differences = weighted_auc(labels, probabilities_a, counts) - weighted_auc(labels, probabilities_b, counts)
    auc_a = float(weighted_auc(labels, probabilities_a, np.ones((1, len(labels))))[0])
    auc_b = float(weighted_auc(labels, probabilities_b, np.ones((1, len(labels))))[0])
    two_classes = probabilities_a.shape[1] == 2
    p_value = delong_test(labels, probabilities_a[:, 1], probabilities_b[:, 1])[3] if two_classes else np.nan
    low, high = percentile_interval(differences)
    return {"auc": auc_a, "auc_compared": auc_b, "auc_difference": auc_a - auc_b, "ci_low": low, "ci_high": high,
            "p_delong": p_value}  # fmt: skip


def _midranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values`` along the last axis, ties sharing their mean rank."""
    order = np.argsort(values, axis=-1, kind="stable")
    ranks = np.empty_like(values, dtype=np.float64)
    for row in range(values.shape[0]):
        sorted_row = values[row, order[row]]
        starts = np.flatnonzero(np.r_[True, sorted_row[1:] != sorted_row[:-1]])
        ends = np.r_[starts[1:], len(sorted_row)]
        mean_rank = (starts + ends + 1) / 2.0  # positions start..end-1 hold ranks start+1..end
        ranks[row, order[row]] = np.repeat(mean_rank, ends - starts)
    return ranks


def delong_test(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> tuple[float, float, float, float]:
    """DeLong's test of two correlated AUCs on the same patients, by the fast midrank algorithm (Sun & Xu, 2014).

    ``labels`` are 0/1, the scores are each model's probability of class 1. Returns (auc_a, auc_b, standard error
    of the difference, two-sided p-value). With identical scores the difference has no variance: p is 1.
    """
    positive = np.asarray(labels) == 1
    scores = np.stack([np.asarray(scores_a, np.float64), np.asarray(scores_b, np.float64)])
    x, y = scores[:, positive], scores[:, ~positive]
    m, n = x.shape[1], y.shape[1]
    if m < 2 or n < 2:
        return float("nan"), float("nan"), float("nan"), float("nan")
    within_x, within_y = _midranks(x), _midranks(y)
    overall = _midranks(np.concatenate([x, y], axis=1))
    aucs = (overall[:, :m].sum(axis=1) / m - (m + 1) / 2.0) / n
    components_x = (overall[:, :m] - within_x) / n  # each positive's share of negatives it beats (V10)
    components_y = 1.0 - (overall[:, m:] - within_y) / m  # each negative's share of positives beating it (V01)
    covariance = np.cov(components_x) / m + np.cov(components_y) / n
    contrast = np.array([1.0, -1.0])
    variance = float(contrast @ covariance @ contrast)
    difference = float(aucs[0] - aucs[1])
    if variance <= 1e-15:
        return float(aucs[0]), float(aucs[1]), 0.0, 1.0
    standard_error = math.sqrt(variance)
    return float(aucs[0]), float(aucs[1]), standard_error, float(2 * norm.sf(abs(difference) / standard_error))


def holm_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), NaN entries left out of the family and kept NaN."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full_like(p, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    family = len(order)
    running = 0.0
    for position, index in enumerate(order):
        running = max(running, min(1.0, (family - position) * p[index]))
        adjusted[index] = running
    return adjusted


def brier_score(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Brier score: scikit-learn's for two classes (last class positive); the multi-class form (mean over patients
    of the summed squared error over classes) otherwise."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape[1] == 2:
        return float(brier_score_loss(labels == 1, probabilities[:, 1]))
    one_hot = np.eye(probabilities.shape[1])[labels]
    return float(np.mean(np.sum((probabilities - one_hot) ** 2, axis=1)))


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: the patient-weighted mean gap between accuracy and confidence (highest class probability) over
    ``bins`` equal-width confidence bins on [0, 1]."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(labels) == 0:
        return float("nan")
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, correct, bins) - np.bincount(which, confidence, bins))
    return float(gap.sum() / count.sum())


def reliability_curve(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = ECE_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per non-empty bin of the last class's probability: mean predicted probability, observed frequency, count."""
    predicted = np.asarray(probabilities, dtype=np.float64)[:, -1]
    observed = (np.asarray(labels) == probabilities.shape[1] - 1).astype(np.float64)
    which = np.minimum((predicted * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    filled = count > 0
    mean_predicted = np.bincount(which, predicted, bins)[filled] / count[filled]
    frequency = np.bincount(which, observed, bins)[filled] / count[filled]
    return mean_predicted, frequency, count[filled]
