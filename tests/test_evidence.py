"""Bootstrap intervals, DeLong's test, Holm's adjustment and calibration, each against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import brier_score_loss, roc_auc_score

from mosare.evaluation.evidence import (
    auc_with_interval,
    brier_score,
    delong_test,
    expected_calibration_error,
    holm_adjust,
    stratified_bootstrap_counts,
    weighted_auc,
    weighted_binary_auc,
)


def scored(n: int, seed: int, tie_step: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    a = rng.random(n) + 0.4 * labels
    b = rng.random(n) + 0.2 * labels + 0.3 * a
    if tie_step:  # coarse scores: many ties, within and across classes
        a, b = np.round(a / tie_step) * tie_step, np.round(b / tie_step) * tie_step
    return labels, a, b


def structural_components_delong(labels, a, b):
    """DeLong et al. (1988) as written: the Mann-Whitney kernel over every (positive, negative) pair."""
    positive = labels == 1
    aucs, v10, v01 = [], [], []
    for scores in (a, b):
        x, y = scores[positive], scores[~positive]
        kernel = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
        aucs.append(kernel.mean())
        v10.append(kernel.mean(axis=1))
        v01.append(kernel.mean(axis=0))
    s = np.cov(np.array(v10)) / positive.sum() + np.cov(np.array(v01)) / (~positive).sum()
    se = np.sqrt(s[0, 0] + s[1, 1] - 2 * s[0, 1])
    return aucs[0], aucs[1], se, 2 * norm.sf(abs(aucs[0] - aucs[1]) / se)


@pytest.mark.parametrize("n, seed, tie_step", [(12, 0, None), (40, 1, 0.1), (97, 2, None), (150, 3, 0.25)])
def test_fast_delong_equals_the_structural_components_form(n, seed, tie_step):
    labels, a, b = scored(n, seed, tie_step)
    fast = delong_test(labels, a, b)
    np.testing.assert_allclose(fast, structural_components_delong(labels, a, b), rtol=1e-9, atol=1e-12)
    assert fast[0] == pytest.approx(roc_auc_score(labels, a)) and fast[1] == pytest.approx(roc_auc_score(labels, b))


def test_delong_of_a_model_against_itself_has_p_one():
    labels, a, _ = scored(30, 4)
    assert delong_test(labels, a, a)[3] == 1.0


def test_weighted_auc_equals_sklearn_on_the_resampled_patients():
    labels, a, _ = scored(60, 5, tie_step=0.1)
    counts = stratified_bootstrap_counts(labels, 25, seed=0)
    for row, auc in zip(counts, weighted_binary_auc(labels == 1, a, counts)):
        drawn = np.repeat(np.arange(60), row.astype(int))
        assert auc == pytest.approx(roc_auc_score(labels[drawn], a[drawn]))


def test_multiclass_weighted_auc_is_sklearns_one_vs_rest_macro():
    rng = np.random.default_rng(6)
    labels = np.arange(90) % 3
    probabilities = rng.dirichlet(np.ones(3), 90) + np.eye(3)[labels] * 0.3
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    expected = roc_auc_score(labels, probabilities, multi_class="ovr", average="macro")
    assert weighted_auc(labels, probabilities, np.ones((1, 90)))[0] == pytest.approx(expected)


def test_stratified_bootstrap_keeps_every_class_size_and_is_seeded():
    labels = np.array([0] * 7 + [1] * 13)
    counts = stratified_bootstrap_counts(labels, 500, seed=3)
    assert np.all(counts[:, labels == 0].sum(axis=1) == 7) and np.all(counts[:, labels == 1].sum(axis=1) == 13)
    assert np.array_equal(counts, stratified_bootstrap_counts(labels, 500, seed=3))


def test_bootstrap_interval_covers_the_truth_at_about_its_level():
    # Scores drawn so the population AUC is known: positives ~ N(1, 1), negatives ~ N(0, 1) -> AUC = Phi(1/sqrt 2).
    truth = norm.cdf(1 / np.sqrt(2))
    covered = 0
    for seed in range(60):
        rng = np.random.default_rng(seed)
        labels = np.r_[np.zeros(60, int), np.ones(60, int)]
        scores = rng.normal(size=120) + labels
        auc, low, high = auc_with_interval(labels, np.c_[1 - scores, scores], 1000, seed)
        assert low <= auc <= high
        covered += low <= truth <= high
    assert covered >= 52  # 95% nominal; 60 draws -> at least ~87% allowed for chance


def test_holm_matches_the_step_down_definition_and_skips_nan():
    p = [0.01, 0.04, 0.03, np.nan, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, max(0.04*1, 0.06)=0.06
    np.testing.assert_allclose(holm_adjust(p), [0.03, 0.06, 0.06, np.nan, 0.02])
    assert np.all(holm_adjust([0.5, 0.9]) == [1.0, 1.0])


def test_brier_and_ece_against_sklearn_and_a_hand_computation():
    labels = np.array([0, 1, 1, 0, 1])
    p1 = np.array([0.1, 0.8, 0.65, 0.45, 0.3])
    probabilities = np.c_[1 - p1, p1]
    assert brier_score(labels, probabilities) == pytest.approx(brier_score_loss(labels, p1))
    # confidences 0.9, 0.8, 0.65, 0.55, 0.7 (all but the last correct), 15 bins of width 1/15:
    # bins 13 (0.9): |1-0.9|; 12 (0.8): |1-0.8|; 9 (0.65): |1-0.65|; 8 (0.55): |1-0.55|; 10 (0.7): |0-0.7|
    expected = (0.1 + 0.2 + 0.35 + 0.45 + 0.7) / 5
    assert expected_calibration_error(labels, probabilities) == pytest.approx(expected)
    perfect = np.c_[1 - labels, labels].astype(float)
    assert expected_calibration_error(labels, perfect) == 0 and brier_score(labels, perfect) == 0
