"""Survival statistics (mosare.evaluation.survival_metrics) against hand-worked examples, a brute-force pair count,
scikit-survival's own functions, and a Cox model on a real cohort (WHAS500, shipped in scikit-survival's wheel)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold
from sksurv.datasets import load_whas500
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.nonparametric import kaplan_meier_estimator
from sksurv.preprocessing import OneHotEncoder

from mosare.evaluation import survival_metrics as sm
from mosare.reporting.plots.survival import plot_risk_group_kaplan_meier, plot_survival_calibration


def synthetic(n: int, seed: int, folds: int = 4, coarse: bool = True):
    """Exponential times whose rate grows with a noisy copy of the risk, independent censoring; coarse values give
    many tied times and tied risks."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    event_time = rng.exponential(10 * np.exp(-0.8 * signal))
    censor_time = rng.exponential(15, n)
    time = np.minimum(event_time, censor_time)
    event = event_time <= censor_time
    risk = signal + rng.normal(0, 0.8, n)
    if coarse:
        time, risk = np.ceil(time), np.round(risk, 1)
    return time, event, risk, rng.integers(0, folds, n)


def brute_force_counts(time, event, risk, fold):
    """Harrell's pair rules written out pair by pair, over pairs of one fold only: (concordant, discordant,
    tied_risk). An event i is comparable with j when t_i < t_j, or t_i == t_j and j is censored."""
    concordant = discordant = tied = 0
    for i in range(len(time)):
        for j in range(len(time)):
            if i == j or fold[i] != fold[j] or not event[i]:
                continue
            if not (time[i] < time[j] or (time[i] == time[j] and not event[j])):
                continue
            if abs(risk[i] - risk[j]) <= 1e-8:
                tied += 1
            elif risk[i] > risk[j]:
                concordant += 1
            else:
                discordant += 1
    return concordant, discordant, tied


# ------------------------------------------------------------------------------------------ hand-worked examples


def test_a_pair_whose_shorter_time_is_censored_is_not_comparable():
    # A(2, event, 0.9) B(4, censored, 0.5) C(3, event, 0.2) D(5, event, 0.7).
    # Comparable: A-B, A-C, A-D (concordant: A has the highest risk), C-B, C-D (discordant: C's risk is the lowest).
    # B-D is not: B, the shorter, is censored (counting it, discordant, would give 3/6).
    time, event, risk = [2, 4, 3, 5], [1, 0, 1, 1], [0.9, 0.5, 0.2, 0.7]

    counts = sm.harrell_counts(time, event, risk)

    assert (counts.concordant, counts.discordant, counts.tied_risk, counts.comparable) == (3, 2, 0, 5)
    assert counts.c_index == pytest.approx(3 / 5, abs=1e-15)
    estimate = sm.harrell_c_index(time, event, risk, n_resamples=50, seed=0)
    assert estimate.c_index == pytest.approx(3 / 5, abs=1e-15)


def test_tied_times_and_tied_risks_follow_scikit_survivals_rules():
    # scikit-survival: two events at one time are not comparable; an event and a censoring at one time are (the
    # event first: a "tied_time" pair); tied risks count one half.
    # A(1, E, .5) B(1, E, .1) C(1, censored, .5) D(2, E, .5) E(3, censored, 0).
    # A-B: not comparable. A-C: tied risk (tied time). B-C: discordant (tied time). A-D: tied risk. B-D: discordant.
    # A-E, B-E, D-E: concordant. C-D, C-E: C censored first, not comparable.
    # C = (3 + 2/2) / 7.
    time, event, risk = [1, 1, 1, 2, 3], [1, 1, 0, 1, 0], [0.5, 0.1, 0.5, 0.5, 0.0]

    counts = sm.harrell_counts(time, event, risk)

    assert (counts.concordant, counts.discordant, counts.tied_risk, counts.tied_time) == (3, 2, 2, 2)
    assert counts.c_index == pytest.approx(4 / 7, abs=1e-15)
    assert counts.c_index == pytest.approx(concordance_index_censored(np.array(event, bool), time, risk)[0])
    # The bootstrap's pair weights follow the same rules: its unit-weight value is the same 4/7.
    blocks = sm._comparable_blocks(np.array(time, float), np.array(event, bool), np.zeros(5, int), np.ones(5))
    numerators = [sm._concordance_matrix(np.array(risk)[members], d) for members, d in blocks]
    assert sm._weighted_c(blocks, numerators, np.ones((1, 5)))[0] == pytest.approx(4 / 7, abs=1e-15)


def test_survival_array_names_every_kind_of_bad_input():
    assert sm.survival_array([1.0, 2.0], [1, 0]).dtype.names == ("event", "time")
    assert sm.survival_array([1.0, 2.0], [0, 0])["event"].tolist() == [False, False]  # all censored is data too
    with pytest.raises(ValueError, match="finite and >= 0.*positions \\[1\\]"):
        sm.survival_array([1.0, -2.0], [1, 0])
    with pytest.raises(ValueError, match="finite and >= 0"):
        sm.survival_array([1.0, np.nan], [1, 0])
    with pytest.raises(ValueError, match="0 \\(censored\\) or 1.*positions \\[0\\]"):
        sm.survival_array([1.0, 2.0], [2, 0])
    with pytest.raises(ValueError, match="differ in length"):
        sm.survival_array([1.0, 2.0], [1])
    with pytest.raises(ValueError, match="empty"):
        sm.survival_array([], [])


# ------------------------------------------------------------------------------------- pooled within folds


def test_within_fold_pooled_c_equals_a_brute_force_count_of_within_fold_pairs():
    time, event, risk, fold = synthetic(160, seed=3)
    concordant, discordant, tied = brute_force_counts(time, event, risk, fold)
    expected = (concordant + 0.5 * tied) / (concordant + discordant + tied)

    counts = sm.within_fold_counts(time, event, risk, fold)
    per_fold = sm.per_fold_c_index(sm.cross_validation_folds(time, event, risk, fold))
    estimate = sm.harrell_c_index(time, event, risk, fold=fold, n_resamples=200, seed=0)

    assert tied > 0 and (counts.concordant, counts.discordant, counts.tied_risk) == (concordant, discordant, tied)
    assert sm.pooled_c_index(per_fold) == pytest.approx(expected, abs=1e-15)
    assert estimate.c_index == pytest.approx(expected, abs=1e-15)
    # Cross-fold pairs are left out: the all-pairs C differs.
    assert sm.within_fold_counts(time, event, risk).comparable > counts.comparable
    summary = sm.summarise_folds(per_fold)
    assert summary["mean_harrell_c"] == pytest.approx(per_fold["harrell_c"].mean())
    assert summary["folds_counted"] == 4


def test_bootstrapped_c_indices_equal_scikit_survival_on_the_materialised_resamples():
    time, event, risk, fold = synthetic(90, seed=5)
    weights = sm.patient_bootstrap_weights(event, None, 4, seed=7)
    train = sm.survival_array(*synthetic(120, seed=6)[:2])
    tau = sm.uno_tau([train], 20.0)
    harrell_blocks = sm._comparable_blocks(time, event, np.zeros(90, int), np.ones(90))
    uno_blocks = sm._comparable_blocks(time, event, np.zeros(90, int), sm._uno_row_weights(time, event, train, tau))
    harrell = sm._weighted_c(harrell_blocks, [sm._concordance_matrix(risk, d) for _, d in harrell_blocks], weights)
    uno = sm._weighted_c(uno_blocks, [sm._concordance_matrix(risk, d) for _, d in uno_blocks], weights)
    within_folds = sm._weighted_c(
        *(lambda b: (b, [sm._concordance_matrix(risk[m], d) for m, d in b]))(
            sm._comparable_blocks(time, event, fold, np.ones(90))
        ),
        weights,
    )
    for row in range(4):
        drawn = np.repeat(np.arange(90), weights[row].astype(int))
        # Stratified by event: each resample keeps the numbers of events and censored patients.
        assert event[drawn].sum() == event.sum()
        assert harrell[row] == pytest.approx(concordance_index_censored(event[drawn], time[drawn], risk[drawn])[0])
        test = sm.survival_array(time[drawn], event[drawn])
        assert uno[row] == pytest.approx(concordance_index_ipcw(train, test, risk[drawn], tau=tau)[0])
        expected = sm.within_fold_counts(time[drawn], event[drawn], risk[drawn], fold[drawn]).c_index
        assert within_folds[row] == pytest.approx(expected, abs=1e-12)


def test_a_patients_rows_over_repeats_are_resampled_together():
    time, event, risk, _ = synthetic(40, seed=8)
    rng = np.random.default_rng(0)
    # Two repeats: each patient once per repeat, in a different fold and with another model's risk.
    rows = np.r_[np.arange(40), np.arange(40)]
    fold = np.r_[rng.integers(0, 3, 40), 10 + rng.integers(0, 3, 40)]
    repeat_risk = np.r_[risk, risk + rng.normal(0, 0.5, 40)]

    weights = sm.patient_bootstrap_weights(event[rows], rows, 3, seed=1)
    estimate = sm.harrell_c_index(time[rows], event[rows], repeat_risk, fold=fold, patient=rows, n_resamples=3, seed=1)

    assert np.array_equal(weights[:, :40], weights[:, 40:])
    blocks = sm._comparable_blocks(time[rows], event[rows], np.unique(fold, return_inverse=True)[1], np.ones(80))
    resampled = sm._weighted_c(blocks, [sm._concordance_matrix(repeat_risk[m], d) for m, d in blocks], weights)
    for row in range(3):
        drawn = np.repeat(np.arange(80), weights[row].astype(int))
        expected = sm.within_fold_counts(time[rows][drawn], event[rows][drawn], repeat_risk[drawn], fold[drawn])
        assert resampled[row] == pytest.approx(expected.c_index, abs=1e-12)
    assert estimate.ci_low <= estimate.ci_high
    with pytest.raises(ValueError, match="disagree on the event"):
        sm.patient_bootstrap_weights(np.r_[event, ~event], rows, 3, seed=1)


# ------------------------------------------------------------------------------------ intervals and comparisons


def test_bootstrap_intervals_contain_the_point_estimate():
    time, event, risk, fold = synthetic(150, seed=11)
    train = sm.survival_array(*synthetic(300, seed=12)[:2])

    harrell = sm.harrell_c_index(time, event, risk, fold=fold, n_resamples=400, seed=0)
    uno = sm.uno_c_index(time, event, risk, train, n_resamples=400, seed=0)
    uno_folds = sm.uno_c_index(time, event, risk, {k: train for k in range(4)}, fold=fold, n_resamples=400, seed=0)

    for estimate in (harrell, uno, uno_folds):
        assert estimate.ci_low < estimate.c_index < estimate.ci_high
        assert estimate.n_undefined == 0 and estimate.n_resamples == 400
    assert uno.tau == float(train["time"].max())
    assert uno.c_index == pytest.approx(concordance_index_ipcw(train, sm.survival_array(time, event), risk,
                                                               tau=uno.tau)[0])  # fmt: skip


def test_a_resample_without_a_comparable_pair_is_dropped_and_counted():
    # One event and one censored patient: a resample drawing the censored patient before the event has no pair.
    estimate = sm.harrell_c_index([5.0, 2.0, 1.0], [1, 0, 0], [1.0, 0.0, 0.5], n_resamples=300, seed=0)

    assert np.isnan(estimate.c_index)  # the event is last: no comparable pair at all
    assert estimate.n_undefined == 300 and np.isnan(estimate.ci_low)
    estimate = sm.harrell_c_index([1.0, 2.0, 3.0], [1, 0, 0], [1.0, 0.0, 0.5], n_resamples=300, seed=0)
    assert estimate.c_index == 1.0 and estimate.n_undefined == 0


def test_a_model_paired_with_itself_differs_by_exactly_zero_with_p_one():
    time, event, risk, fold = synthetic(120, seed=13)

    same = sm.paired_c_index_comparison(time, event, risk, risk.copy(), fold=fold, n_resamples=300, seed=2)

    assert same["c_index_difference"] == 0.0 and same["ci_low"] == 0.0 and same["ci_high"] == 0.0
    assert same["p_value"] == 1.0


def test_paired_comparisons_find_a_better_model_and_adjust_by_holm():
    rng = np.random.default_rng(114)  # not the cohort's seed: its noise must not be the cohort's signal
    time, event, risk, fold = synthetic(300, seed=14, coarse=False)
    others = {"noisy": risk + rng.normal(0, 2.0, 300), "random": rng.normal(size=300)}

    table = sm.c_index_comparisons(time, event, risk, others, fold=fold, n_resamples=500, seed=3)

    assert list(table["compared_to"]) == ["noisy", "random"]
    assert (table["c_index_difference"] > 0).all() and (table["ci_low"] > 0).all()
    assert table.loc[0, "p_value"] < 0.05 and table.loc[1, "p_value"] < 1e-6
    expected_holm = np.minimum(1, np.maximum.accumulate(np.sort(table["p_value"]) * [2, 1]))
    assert np.sort(table["p_holm"]) == pytest.approx(expected_holm)
    # The p is the normal approximation from the bootstrap SE of the difference.
    row = sm.paired_c_index_comparison(time, event, risk, others["noisy"], fold=fold, n_resamples=500, seed=3)
    assert row["p_value"] == table.loc[0, "p_value"]
    assert sm.bootstrap_normal_p(0.1, np.array([0.0, 0.1, 0.2])) == pytest.approx(2 * 0.15865525393145707)
    assert sm.c_index_comparisons(time, event, risk, {}, n_resamples=10, seed=0).empty


def test_minus_time_on_uncensored_data_gives_one_and_random_risks_about_a_half():
    rng = np.random.default_rng(15)
    time = rng.exponential(5, 2000)
    event = np.ones(2000, bool)

    assert sm.harrell_c_index(time, event, -time, n_resamples=20, seed=0).c_index == 1.0
    random = sm.harrell_c_index(time, event, rng.normal(size=2000), n_resamples=200, seed=0)
    assert random.c_index == pytest.approx(0.5, abs=0.03)
    assert random.ci_low < 0.5 < random.ci_high


# --------------------------------------------------------------------------------- horizons, AUC(t), Brier score


def test_default_horizons_are_training_event_time_tertiles_clipped_to_the_test_follow_up():
    train_time = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 30])
    train_event = np.array([1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0])
    events = train_time[train_event == 1]
    assert sm.default_horizons(train_time, train_event) == pytest.approx(np.quantile(events, [1 / 3, 2 / 3]))
    # Test follow-up 4.5..8: horizons below 4.5 rise to it, those at or past 8 fall just below it.
    clipped = sm.clip_horizons([1.0, 6.0, 9.0], np.array([4.5, 6.0, 8.0]), train_time)
    assert clipped[:2].tolist() == [4.5, 6.0] and 7.999 < clipped[2] < 8.0
    # The training follow-up caps them too (the censoring weights are unknown past its end).
    assert sm.clip_horizons([25.0], np.array([1.0, 40.0]), train_time)[0] < 30.0
    with pytest.raises(ValueError, match="no usable horizon"):
        sm.clip_horizons([1.0], np.array([5.0, 5.0]), train_time)


def test_time_dependent_auc_and_brier_equal_scikit_survival_and_ignore_how_long_controls_were_followed():
    time, event, risk, _ = synthetic(200, seed=16, coarse=False)
    train_time, train_event, _, _ = synthetic(400, seed=17, coarse=False)
    train_event[np.argmax(train_time)] = True  # the censoring distribution stays above 0 to its end
    train = sm.survival_array(train_time, train_event)
    inside = time < 0.9 * train_time.max()  # test follow-up within training's: scikit-survival accepts it uncut
    time, event, risk = time[inside], event[inside], risk[inside]
    test = sm.survival_array(time, event)

    result = sm.time_dependent_auc(time, event, risk, train_time, train_event)

    assert result.horizons == pytest.approx(sm.default_horizons(train_time, train_event))
    expected_auc, expected_mean = cumulative_dynamic_auc(train, test, risk, result.horizons)
    assert result.auc == pytest.approx(expected_auc, abs=1e-12)
    assert result.mean_auc == pytest.approx(expected_mean, abs=1e-12)
    assert (result.auc > 0.6).all()

    # Brier: exponential survival curves of the risk on a grid.
    grid = np.linspace(np.percentile(time, 5), np.percentile(time, 90), 25)
    curves = np.exp(-np.exp(0.8 * risk)[:, None] * grid[None, :] / 10)
    brier = sm.integrated_brier(time, event, curves, grid, train_time, train_event)
    assert brier.grid == pytest.approx(grid)
    assert brier.ibs == pytest.approx(integrated_brier_score(train, test, curves, grid), abs=1e-12)

    # The longest-followed test patient outlives the training follow-up: scikit-survival refuses the uncut data.
    # Cut at the limit, it is a control at every horizon whatever its time: the values do not move.
    longest = np.argmax(time)
    later = time.copy()
    later[longest] = train_time.max() * 2
    with pytest.raises(ValueError):
        integrated_brier_score(train, sm.survival_array(later, event), curves, grid)
    moved = sm.time_dependent_auc(later, event, risk, train_time, train_event, horizons=result.horizons)
    assert moved.auc == pytest.approx(result.auc, abs=1e-12)
    moved_brier = sm.integrated_brier(later, event, curves, grid, train_time, train_event)
    assert moved_brier.ibs == pytest.approx(brier.ibs, abs=1e-12)


def test_survival_at_reads_step_curves():
    curves = np.array([[0.9, 0.5, 0.2], [1.0, 0.8, 0.6]])
    values = sm.survival_at([1.0, 2.0, 4.0], curves, [0.5, 1.0, 3.9, 4.0, 10.0])
    assert values.tolist() == [[1.0, 0.9, 0.5, 0.2, 0.2], [1.0, 1.0, 0.8, 0.6, 0.6]]


# ---------------------------------------------------------------------------------------------- real data


def test_cox_on_whas500_out_of_fold_is_well_above_chance_and_every_metric_agrees_with_scikit_survival():
    features, outcome = load_whas500()
    x = OneHotEncoder().fit_transform(features).to_numpy(np.float64)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    event, time = outcome["fstat"], outcome["lenfol"]
    risk = np.zeros(len(time))
    fold = np.zeros(len(time), dtype=int)
    models = {}
    for k, (train, test) in enumerate(StratifiedKFold(5, shuffle=True, random_state=0).split(x, event)):
        models[k] = CoxPHSurvivalAnalysis(alpha=1e-4).fit(x[train], outcome[train])
        risk[test], fold[test] = models[k].predict(x[test]), k

    pooled = sm.harrell_c_index(time, event, risk, fold=fold, n_resamples=300, seed=0)
    per_fold = sm.per_fold_c_index(sm.cross_validation_folds(time, event, risk, fold))

    assert pooled.c_index > 0.7 and pooled.ci_low > 0.65
    assert (per_fold["harrell_c"] > 0.6).all()
    for k in range(5):
        test, train = fold == k, fold != k
        train_outcome = sm.survival_array(time[train], event[train])
        test_outcome = sm.survival_array(time[test], event[test])
        row = per_fold.iloc[k]
        assert row["harrell_c"] == pytest.approx(concordance_index_censored(event[test], time[test], risk[test])[0])
        assert row["uno_c"] == pytest.approx(
            concordance_index_ipcw(train_outcome, test_outcome, risk[test], tau=row["uno_tau"])[0]
        )
        uno = sm.uno_c_index(time[test], event[test], risk[test], train_outcome, n_resamples=0, seed=0)
        assert uno.c_index == pytest.approx(row["uno_c"])
        # The weighted pair count that pools folds gives scikit-survival's value on one fold.
        one_fold = sm.uno_c_index(
            time[test], event[test], risk[test], {k: train_outcome}, fold=fold[test], n_resamples=0, seed=0
        )
        assert one_fold.c_index == pytest.approx(row["uno_c"], abs=1e-12)
        auc = sm.time_dependent_auc(time[test], event[test], risk[test], time[train], event[train])
        grid = np.linspace(np.percentile(time[test], 10), np.percentile(time[test], 80), 20)
        curves = np.stack([fn(grid) for fn in models[k].predict_survival_function(x[test])])
        brier = sm.integrated_brier(time[test], event[test], curves, grid, time[train], event[train])
        if time[test].max() < time[train].max():  # scikit-survival accepts the uncut data
            expected_auc = cumulative_dynamic_auc(train_outcome, test_outcome, risk[test], auc.horizons)[0]
            assert auc.auc == pytest.approx(expected_auc, abs=1e-12)
            assert brier.ibs == pytest.approx(
                integrated_brier_score(train_outcome, test_outcome, curves, grid), abs=1e-12
            )
        assert (auc.auc > 0.6).all() and 0 < brier.ibs < 0.25
    # Uno's C pooled within folds, each fold against its own training censoring, agrees fold by fold.
    trains = {k: sm.survival_array(time[fold != k], event[fold != k]) for k in range(5)}
    pooled_uno = sm.uno_c_index(time, event, risk, trains, fold=fold, n_resamples=200, seed=0)
    assert pooled_uno.ci_low < pooled_uno.c_index < pooled_uno.ci_high and pooled_uno.c_index > 0.7


# ------------------------------------------------------------------------------------- risk groups and figures


def test_risk_groups_use_each_folds_training_cut_offs_and_never_the_other_test_patients():
    cutoffs = {0: sm.training_cutoffs([0.1, 0.2, 0.5, 0.9, 1.0]), 1: [2.0]}
    risk = np.array([0.4, 0.5, 0.6, 1.9, 2.0, 2.1])
    fold = np.array([0, 0, 0, 1, 1, 1])

    groups = sm.risk_groups(risk, fold, cutoffs)

    assert cutoffs[0].tolist() == [0.5]  # the training median
    assert groups.tolist() == [0, 0, 1, 0, 0, 1]  # a risk equal to the cut-off goes to the lower group
    rng = np.random.default_rng(0)
    for _ in range(20):  # every other test patient's risk moved, even to extremes: patient 2's group stays
        moved = rng.normal(0, 100, len(risk))
        moved[2] = risk[2]
        assert sm.risk_groups(moved, fold, cutoffs)[2] == groups[2]
        # and a patient's group is the same alone as among any others
        assert sm.risk_groups(moved[[2]], fold[[2]], cutoffs)[0] == groups[2]
    tertiles = {0: sm.training_cutoffs(np.arange(9.0), 3)}
    assert sm.risk_groups(np.array([0.0, 4.0, 8.0]), np.zeros(3, int), tertiles).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="no training cut-offs for fold 1"):
        sm.risk_groups(risk, fold, {0: [0.5]})


def test_kaplan_meier_log_rank_and_numbers_at_risk_come_from_scikit_survival():
    time, event, risk, _ = synthetic(100, seed=18)
    group = (risk > 0).astype(int)

    curve = sm.kaplan_meier(time, event)
    expected = kaplan_meier_estimator(event, time, conf_type="log-log")
    chi_square, p_value = sm.log_rank_test(time, event, group)
    at_risk = sm.numbers_at_risk(time, group, [0.0, 5.0])

    assert curve.survival == pytest.approx(expected[1]) and curve.ci_low == pytest.approx(expected[2][0])
    assert p_value < 0.05 and chi_square > 3.84
    assert at_risk.loc[1, 0.0] == (group == 1).sum() and at_risk.loc[0, 5.0] == ((group == 0) & (time >= 5)).sum()
    assert curve.at([-1.0])[0][0] == 1.0
    assert np.isnan(sm.kaplan_meier([1.0, 2.0], [1, 0]).at([3.0])[0][0])  # past the follow-up, not at 0


def test_survival_calibration_of_the_true_model_is_close_to_kaplan_meier():
    rng = np.random.default_rng(19)
    rate = np.exp(rng.normal(size=2000)) / 10
    event_time = rng.exponential(1 / rate)
    censor_time = rng.exponential(30, 2000)
    time, event = np.minimum(event_time, censor_time), event_time <= censor_time

    table = sm.survival_calibration(time, event, np.exp(-rate * 8.0), 8.0, n_groups=5)

    assert table["patients"].sum() == 2000 and list(table["group"]) == [0, 1, 2, 3, 4]
    assert table["mean_predicted"].is_monotonic_increasing
    assert (table["observed"] - table["mean_predicted"]).abs().max() < 0.06
    assert ((table["observed_low"] <= table["observed"]) & (table["observed"] <= table["observed_high"])).all()


def test_the_figures_write_png_files(tmp_path):
    time, event, risk, fold = synthetic(80, seed=20, folds=3)
    cutoffs = {k: sm.training_cutoffs(risk[fold != k], 2) for k in range(3)}  # stand-in training risks
    plot_risk_group_kaplan_meier(time, event, risk, fold, cutoffs, tmp_path / "km.png", time_unit="months",
                                 title="demo")  # fmt: skip
    tertiles = {k: sm.training_cutoffs(risk[fold != k], 3) for k in range(3)}
    plot_risk_group_kaplan_meier(time, event, risk, fold, tertiles, tmp_path / "km3.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no empty-slice or division warnings from an all-NaN group
        table = sm.survival_calibration(time, event, np.exp(-np.exp(risk) * 5 / 10), 5.0, n_groups=4)
    plot_survival_calibration(table, 5.0, tmp_path / "calibration.png", time_unit="months")

    for name in ("km.png", "km3.png", "calibration.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
