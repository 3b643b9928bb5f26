"""The cross-validation protocol: folds, validation split, masks, normalisation, batches, outputs, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic_cohort import StandInModel, small_train_config, stand_in_factory, write_synthetic_cohort

from mosare.cohort.data import CohortData, merge_slide_components
from mosare.evaluation.metrics import KEY_COLUMNS
from mosare.evaluation.repeats import repeat_auc_spread
from mosare.evaluation.results import evaluation_tables, write_results
from mosare.evaluation.scenarios import (
    MNARSetting,
    Scenario,
    draw_missing_masks,
    mnar_masks,
    realised_missing_rates,
    scenario_presence,
    scenarios,
)
from mosare.evaluation.splits import check_cohort_splits, fold_validation_split, make_folds, validation_split
from mosare.reporting.plots.training import draw_model_curves
from mosare.training.cross_validation import cross_validate
from mosare.training.fold_inputs import eval_patch_rows, fit_normalisation, fold_tensors, make_batch
from mosare.training.loop import lr_factor, train_model

CLASSES = ["A", "B"]
DIMS = (16, 24, 12)


@pytest.fixture
def cohort(tmp_path) -> CohortData:
    paths = write_synthetic_cohort(tmp_path, n_patients=24)
    return paths.load(CLASSES)


def test_folds_are_patient_level_stratified_and_cover_every_patient_once():
    labels = np.array([0] * 30 + [1] * 20)
    ids = np.array([f"P{i}" for i in range(50)])
    folds = make_folds(ids, labels, 5, seed=3)
    assert sorted(np.unique(folds)) == [0, 1, 2, 3, 4]
    for fold in range(5):
        assert np.bincount(labels[folds == fold]).tolist() == [6, 4]
    assert np.array_equal(folds, make_folds(ids, labels, 5, seed=3))
    assert not np.array_equal(folds, make_folds(ids, labels, 5, seed=4))


def test_folds_refuse_a_class_smaller_than_the_number_of_folds():
    with pytest.raises(ValueError, match="lower train.folds"):
        make_folds(np.array(["a", "b", "c", "d", "e", "f"]), np.array([0, 0, 0, 0, 1, 1]), 3, seed=0)


def test_validation_split_is_stratified_and_never_touches_the_test_fold():
    labels = np.array([0, 1] * 20)
    folds = make_folds(np.arange(40).astype(str), labels, 5, seed=0)
    train = np.flatnonzero(folds != 0)
    fit, val = validation_split(train, labels, 0.25, seed=1)
    assert set(fit) | set(val) == set(train)
    assert not set(fit) & set(val)
    assert not set(val) & set(np.flatnonzero(folds == 0))
    assert np.bincount(labels[val]).tolist() == [4, 4]


def test_split_check_names_the_cohort_and_fold_when_a_validation_split_cannot_hold_every_class():
    ids, labels = np.array([f"P{i}" for i in range(8)]), np.array([0, 1] * 4)

    with pytest.raises(ValueError) as raised:
        check_cohort_splits("tiny", ids, labels, small_train_config(folds=2, val_fraction=0.2))

    message = str(raised.value)
    assert message.startswith("cohort 'tiny', test fold 0 (train.folds 2, train.val_fraction 0.2, 8 patients")
    assert "20% of 4 training patients cannot hold every class" in message
    assert "raise train.val_fraction or add patients" in message


def test_split_check_names_the_cohort_when_a_class_has_fewer_patients_than_folds():
    ids, labels = np.array([f"P{i}" for i in range(12)]), np.array([0] * 10 + [1] * 2)

    with pytest.raises(
        ValueError, match=r"^cohort 'tiny' \(train.folds 3, .*class counts \[10, 2\]\).*lower train.folds"
    ):
        check_cohort_splits("tiny", ids, labels, small_train_config(folds=3))


def test_split_check_names_the_fold_whose_fit_part_would_lose_a_class():
    ids, labels = np.array([f"P{i}" for i in range(12)]), np.array([0, 1] * 6)

    with pytest.raises(ValueError, match=r"^cohort 'tiny', test fold 0 .*train.val_fraction 0.9"):
        check_cohort_splits("tiny", ids, labels, small_train_config(folds=2, val_fraction=0.9))


def test_split_check_returns_the_folds_training_uses_and_every_fold_splits_like_training():
    ids, labels = np.array([f"P{i}" for i in range(20)]), np.array([0] * 12 + [1] * 8)
    config = small_train_config(folds=4, val_fraction=0.25, seed=5)

    folds = check_cohort_splits("c", ids, labels, config)

    assert np.array_equal(folds, make_folds(ids, labels, 4, seed=5))
    for fold in range(4):
        fit, val = fold_validation_split(folds, fold, labels, config)
        assert set(np.bincount(labels[val]).nonzero()[0]) == {0, 1}
        assert not set(fit) & set(val) and not set(val) & set(np.flatnonzero(folds == fold))


def test_cross_validation_stops_with_the_cohort_named_before_training_a_model(cohort, tmp_path):
    with pytest.raises(ValueError, match="^cohort 'small', test fold 0 .*raise train.val_fraction"):
        cross_validate(
            cohort, small_train_config(folds=2, val_fraction=0.01), "small", tmp_path / "train",
            torch.device("cpu"), build=stand_in_factory(DIMS),
        )  # fmt: skip
    assert not (tmp_path / "train").exists()


def test_masks_keep_one_modality_and_never_drop_wsi_and_rna_together():
    available = np.ones((4000, 3), dtype=bool)
    shown = draw_missing_masks(available, 0.5, np.random.default_rng(0))
    assert shown.any(axis=1).all()
    assert (shown[:, 0] | shown[:, 1]).all()
    assert 0.2 < 1 - shown.mean() < 0.5  # dropped about as often as the rule allows
    assert np.array_equal(shown, draw_missing_masks(available, 0.5, np.random.default_rng(0)))


def test_really_missing_modalities_stay_masked_and_wsi_stays_when_rna_is_really_missing():
    available = np.array([[True, False, True], [True, True, False], [False, True, True]] * 500)
    shown = draw_missing_masks(available, 0.5, np.random.default_rng(1))
    assert not (shown & ~available).any()
    assert shown[0::3, 0].all()  # no RNA: WSI can never be dropped
    assert shown[2::3, 1].all()  # no WSI: RNA can never be dropped


def test_scenario_masks_are_fixed_per_fold_and_complete_shows_only_what_exists():
    rng = np.random.default_rng(0)
    available = rng.random((60, 3)) > 0.2
    available[:, 0] = True
    labels = np.arange(60) % 2
    folds = np.arange(60) % 3
    scenario_list = scenarios([0.3, 0.5])
    presence = scenario_presence(available, labels, folds, 1, scenario_list, seed=0)
    again = scenario_presence(available, labels, folds, 1, scenario_list, seed=0)
    assert list(presence) == scenario_list
    assert all(np.array_equal(presence[s][0], again[s][0]) for s in presence)
    assert np.array_equal(presence[Scenario("complete", 0, 0)][0], available)
    test = folds == 1
    masked_train = presence[Scenario("masked_train", 0.5, 0.0)][0]
    masked_both = presence[Scenario("masked_train_test", 0.5, 0.5)][0]
    assert np.array_equal(masked_train[test], available[test])
    assert np.array_equal(masked_train[~test], masked_both[~test])
    assert (masked_both[test] != available[test]).any()
    assert not (masked_both & ~available).any()


def test_masks_are_nested_across_rates_in_every_fold_and_draw():
    rng = np.random.default_rng(3)
    available = rng.random((300, 3)) > 0.15
    available[::7, :2] = [True, False]
    labels, folds = np.arange(300) % 2, np.arange(300) % 5
    rates = [0.1, 0.3, 0.5, 0.7]
    for fold in range(5):
        presence = scenario_presence(available, labels, folds, fold, scenarios(rates), seed=4, mask_draws=3)
        for draw in range(3):
            hidden = [available & ~presence[Scenario("masked_train_test", r, r)][draw] for r in rates]
            for lower, higher in zip(hidden, hidden[1:]):
                assert not (lower & ~higher).any(), "a pair dropped at a lower rate is kept at a higher one"
        draws = presence[Scenario("masked_train_test", 0.5, 0.5)]
        assert not np.array_equal(draws[0], draws[1]), "mask draws differ"


def test_realised_missing_rates_fall_short_of_the_nominal_rate_as_measured():
    available = np.ones((20000, 3), dtype=bool)
    shown = draw_missing_masks(available, 0.5, np.random.default_rng(0))
    realised = realised_missing_rates(available, shown)
    # WSI and RNA: dropped with 0.5, brought back in half the cases where both went (0.25) -> 0.375; reports: 0.5.
    np.testing.assert_allclose(realised, [0.375, 0.375, 0.5], atol=0.015)


def test_mnar_masks_drop_the_modality_by_class_and_keep_the_rules():
    rng = np.random.default_rng(0)
    available = np.ones((20000, 3), dtype=bool)
    available[::4, 0] = False  # a quarter without slides: their RNA can never go
    labels = np.arange(20000) % 2
    setting = MNARSetting(modality=1, rate=0.3, delta=0.2)
    shown = mnar_masks(available, labels, setting, 2, rng.random(20000))
    assert not (shown & ~available).any() and shown.any(axis=1).all() and (shown[:, 0] | shown[:, 1]).all()
    assert np.array_equal(shown[:, [0, 2]], available[:, [0, 2]]), "only the MNAR modality is ever hidden"
    with_slide = available[:, 0]
    for label, expected in ((0, 0.1), (1, 0.5)):
        rows = with_slide & (labels == label)
        assert abs((~shown[rows, 1]).mean() - expected) < 0.02
    assert shown[~with_slide, 1].all()


def test_merged_local_tokens_keep_the_heaviest_components_weighted_by_patch_share():
    weights = [np.array([0.6, 0.4]), np.array([0.9, 0.1])]
    means = [np.array([[1.0], [2.0]]), np.array([[3.0], [4.0]])]
    tokens = merge_slide_components(weights, means, patch_counts=[300, 100], n_components=3)
    # effective weights: 0.45, 0.30 (slide 1); 0.225, 0.025 (slide 2)
    assert tokens[:, 0].tolist() == [1.0, 2.0, 3.0]


def test_loading_pools_a_patients_slides_and_flags_missing_modalities(tmp_path):
    paths = write_synthetic_cohort(tmp_path, n_patients=12, two_slide_fraction=0.5, missing_rna=0.3)
    table = pd.read_csv(paths.cohort_table, sep="\t")
    data = paths.load(CLASSES)
    two = table.index[table["slide_ids"].str.contains(",")][0]
    expected = sum(
        len(np.asarray(__import__("zarr").open_group(str(paths.features_dir / f"{s}.zarr"))["features"]))
        for s in table.loc[two, "slide_ids"].split(",")
    )
    assert data.patch_counts[two] == expected
    assert np.array_equal(data.available[:, 1], table["has_rna"].to_numpy())
    assert data.labels.tolist() == [CLASSES.index(x) for x in table["label"]]
    assert data.wsi_local.shape == (12, 4, 16)


def test_loading_names_the_file_when_a_label_is_not_a_cohort_class(tmp_path):
    paths = write_synthetic_cohort(tmp_path, n_patients=6)
    with pytest.raises(ValueError, match="cohort.tsv.*not among the cohort's classes"):
        paths.load(["A", "C"])


def test_normalisation_statistics_come_from_the_training_part_only(cohort):
    fit = np.arange(0, 16)
    before = fit_normalisation(cohort, fit)
    for i in range(16, cohort.n_patients):  # change every other patient's inputs wildly
        start, stop = cohort.patch_offsets[i], cohort.patch_offsets[i + 1]
        cohort.patches[start:stop] *= 50
        cohort.rna[i] += 100
        cohort.text_global[i] -= 100
        cohort.text_local[i] -= 100
        cohort.wsi_local[i] *= 50
    after = fit_normalisation(cohort, fit)
    for name in ("patches", "wsi_local", "rna", "text_global", "text_local"):
        np.testing.assert_array_equal(getattr(before, name)[0], getattr(after, name)[0])
        np.testing.assert_array_equal(getattr(before, name)[1], getattr(after, name)[1])
    rna_fit = cohort.rna[fit[cohort.available[fit, 1]]]
    np.testing.assert_allclose(before.rna[0], rna_fit.mean(0), atol=1e-5)


def test_batches_hide_masked_modalities_with_zeros_and_sample_only_the_patients_patches(cohort):
    tensors = fold_tensors(cohort, fit_normalisation(cohort, np.arange(16)), eval_patch_rows(cohort, 10, seed=0))
    shown = torch.ones(cohort.n_patients, 3, dtype=torch.bool)
    shown[0, 1] = False
    shown[1, 0] = False
    index = torch.tensor([0, 1, 2])
    batch = make_batch(tensors, index, shown, patches_per_step=5, generator=torch.Generator().manual_seed(0))
    assert batch["wsi_patches"].shape == (3, 5, 16)
    assert batch["present"][:2].tolist() == [[True, False, True], [False, True, True]]
    assert torch.all(batch["rna"][0] == 0)
    assert torch.all(batch["wsi_patches"][1] == 0) and not batch["wsi_patch_mask"][1].any()
    assert torch.all(batch["wsi_local"][1] == 0)
    assert batch["wsi_patch_mask"][[0, 2]].all()
    # patient 2's sampled patches are rows of its own slides, normalised
    own = (
        tensors.patches[cohort.patch_offsets[2] : cohort.patch_offsets[3]].float() - tensors.patch_mean
    ) / tensors.patch_std
    for patch in batch["wsi_patches"][2]:
        assert torch.isclose(own, patch).all(dim=1).any()
    evaluation = make_batch(tensors, index, shown, patches_per_step=None, generator=None)
    assert evaluation["wsi_patches"].shape[1] == 10
    assert torch.equal(evaluation["wsi_patches"], make_batch(tensors, index, shown, None, None)["wsi_patches"])


def test_learning_rate_warms_up_linearly_then_decays_by_cosine():
    factors = [lr_factor(step, warmup_steps=4, total_steps=12) for step in range(12)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and factors[8] == pytest.approx(0.5)
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))


def test_early_stopping_keeps_the_first_best_epoch_and_stops_after_patience(cohort):
    tensors = fold_tensors(cohort, fit_normalisation(cohort, np.arange(16)), eval_patch_rows(cohort, 8, seed=0))
    shown = torch.from_numpy(cohort.available)
    model = StandInModel("late_fusion", DIMS, 2)
    config = small_train_config(lr=0.0, epochs=10, patience=2)  # nothing improves after epoch 0
    result = train_model(
        model,
        tensors,
        np.arange(12),
        np.arange(12, 18),
        shown,
        config,
        torch.device("cpu"),
        seed=0,
        prior=np.array([0.5, 0.5]),
    )
    assert result.best_epoch == 0
    assert result.history["epoch"].tolist() == [0, 1, 2]
    assert result.history["selected"].tolist() == [True, False, False]


@pytest.fixture(scope="module")
def cross_validated(tmp_path_factory):
    """One small cross-validation shared by the output tests (it is the slow part)."""
    tmp_path = tmp_path_factory.mktemp("cv")
    paths = write_synthetic_cohort(tmp_path, n_patients=24)
    cohort = paths.load(CLASSES)
    built = []
    config = small_train_config()
    run = cross_validate(
        cohort, config, "toy", tmp_path / "train", torch.device("cpu"), stand_in_factory(DIMS, built), dims=DIMS
    )
    outputs = {name: tmp_path / file for name, file in [
        ("splits", "splits.tsv"), ("metrics", "metrics.tsv"), ("summary", "metrics.md"), ("comparisons", "comparisons.tsv"),
        ("predictions", "predictions.tsv"),
    ]}  # fmt: skip
    tables = evaluation_tables(run.fold_metrics, run.predictions, config, CLASSES, run.realised_rates)
    write_results(run.splits, tables, run.predictions, config, outputs)
    draw_model_curves(tmp_path / "train", config)
    return config, built, tables.metrics, run.predictions, tmp_path, cohort


def test_every_model_and_scenario_is_tested_on_every_patient_once(cross_validated):
    config, _, _, predictions, tmp_path, cohort = cross_validated
    splits = pd.read_csv(tmp_path / "splits.tsv", sep="\t", dtype={"patient_id": str})
    assert sorted(splits["patient_id"]) == sorted(cohort.patient_ids)
    for (model, scenario, rate), rows in predictions.groupby(["model", "scenario", "train_missing_rate"]):
        assert sorted(rows["patient_id"]) == sorted(cohort.patient_ids), (model, scenario, rate)
        fold_of = dict(zip(splits["patient_id"], splits["fold"]))
        assert (rows["fold"] == rows["patient_id"].map(fold_of)).all()
        np.testing.assert_allclose(rows[["prob_A", "prob_B"]].sum(axis=1), 1.0, atol=1e-6)


def test_metrics_table_has_one_row_per_model_scenario_and_metric_with_fold_columns(cross_validated):
    config, _, table, _, tmp_path, _ = cross_validated
    written = pd.read_csv(tmp_path / "metrics.tsv", sep="\t")
    realised = [f"realised_{side}_missing_{m}" for side in ("train", "test") for m in ("wsi", "rna", "text")]
    assert list(written.columns) == [
        "cohort", "model", "scenario", "train_missing_rate", "test_missing_rate", "metric", "pooled", "ci_low",
        "ci_high", "mean", "std", *realised, "fold0", "fold1", "fold2",
    ]  # fmt: skip
    assert len(written) == len(config["models"]) * 3 * 6
    assert set(written["scenario"]) == {"complete", "masked_train", "masked_train_test"}
    assert set(written["metric"]) == {"auc", "f1_macro", "accuracy", "balanced_accuracy", "brier", "ece"}
    row = written[
        (written["model"] == "late_fusion") & (written["scenario"] == "complete") & (written["metric"] == "auc")
    ]
    folds = row[["fold0", "fold1", "fold2"]].to_numpy()[0]
    assert row["mean"].iloc[0] == pytest.approx(folds.mean())
    assert row["std"].iloc[0] == pytest.approx(folds.std(ddof=1))
    assert row["ci_low"].iloc[0] <= row["pooled"].iloc[0] <= row["ci_high"].iloc[0]
    complete = written[written["scenario"] == "complete"]
    assert (complete[realised] == 0).all().all(), "nothing is hidden beyond what is really missing"
    masked = written[written["scenario"] == "masked_train_test"]
    assert ((masked[realised] > 0.1) & (masked[realised] < 0.75)).all().all()  # 24 patients: rates are coarse
    summary = (tmp_path / "metrics.md").read_text()
    assert "| late_fusion |" in summary and "±" in summary and "[" in summary and "Realised missing rates" in summary
    written_predictions = pd.read_csv(tmp_path / "predictions.tsv", sep="\t", dtype={"patient_id": str})
    assert len(written_predictions) == len(cross_validated[3]) and set(KEY_COLUMNS) <= set(written_predictions.columns)


def test_fold_outputs_hold_a_checkpoint_that_loads_with_weights_only(cross_validated):
    config, _, _, _, tmp_path, _ = cross_validated
    fold_dir = tmp_path / "train" / "late_fusion" / "masked_train_test-0.5" / "fold1"
    state = torch.load(fold_dir / "checkpoint.pt", weights_only=True)
    fresh = StandInModel("late_fusion", DIMS, 2)
    fresh.load_state_dict(state)
    history = pd.read_csv(fold_dir / "history.tsv", sep="\t")
    assert {"epoch", "loss", "ce", "val_auc", "val_loss", "selected"} <= set(history.columns)
    assert history["selected"].sum() == 1
    assert (tmp_path / "train" / "late_fusion" / "curves.png").exists()


def test_every_model_sees_the_same_masks_in_a_scenario(cross_validated):
    _, built, _, _, _, _ = cross_validated
    evaluations = {}
    for name, model in built:
        evaluations.setdefault(name, []).append([present for training, present in model.calls if not training])
    reference = evaluations["late_fusion"]
    for name in ("abmil", "rna_mlp"):
        assert len(evaluations[name]) == len(reference)
        for ours, theirs in zip(evaluations[name], reference):
            assert all(torch.equal(a, b) for a, b in zip(ours, theirs))


def test_single_modality_model_predicts_the_training_prior_for_patients_without_its_input(cross_validated):
    _, _, _, predictions, tmp_path, cohort = cross_validated
    splits = pd.read_csv(tmp_path / "splits.tsv", sep="\t", dtype={"patient_id": str})
    rows = predictions[(predictions["model"] == "rna_mlp") & (predictions["scenario"] == "complete")]
    without_rna = set(cohort.patient_ids[~cohort.available[:, 1]])
    assert without_rna
    for _, row in rows[rows["patient_id"].isin(without_rna)].iterrows():
        training = splits[splits["fold"] != row["fold"]]
        assert row["prob_B"] == pytest.approx((training["label"] == "B").mean())


def test_cross_validation_is_deterministic_given_the_seed(tmp_path, cohort):
    config = small_train_config(models=["late_fusion"], missing_rates=[])
    runs = [
        cross_validate(
            cohort, config, "toy", tmp_path / f"run{i}", torch.device("cpu"), stand_in_factory(DIMS), dims=DIMS
        ).predictions
        for i in range(2)
    ]
    pd.testing.assert_frame_equal(runs[0], runs[1])


@pytest.mark.parametrize("without_wsi", [(0,), (11,), (23,), (0, 11, 23)], ids=["first", "middle", "last", "all-three"])
def test_patients_without_slides_anywhere_in_the_table_train_and_are_predicted(tmp_path, without_wsi):
    paths = write_synthetic_cohort(tmp_path, n_patients=24, without_wsi=without_wsi)
    cohort = paths.load(CLASSES)
    assert not cohort.available[list(without_wsi), 0].any() and cohort.patch_counts[list(without_wsi)].sum() == 0
    tensors = fold_tensors(cohort, fit_normalisation(cohort, np.arange(24)), eval_patch_rows(cohort, 8, seed=0))
    shown = torch.from_numpy(cohort.available)
    index = torch.tensor(without_wsi)
    for patches_per_step in (8, None):  # training draws and the fixed evaluation patches
        batch = make_batch(tensors, index, shown, patches_per_step, torch.Generator().manual_seed(0))
        assert not batch["wsi_patch_mask"].any() and torch.all(batch["wsi_patches"] == 0)
        assert torch.all(batch["wsi_local"] == 0) and not batch["present"][:, 0].any()
    config = small_train_config(models=["late_fusion", "abmil"], epochs=2)
    _, fold_metrics, predictions, _ = cross_validate(
        cohort, config, "toy", tmp_path / "train", torch.device("cpu"), stand_in_factory(DIMS), dims=DIMS
    )
    for _, rows in predictions.groupby(["model", "scenario", "train_missing_rate"]):
        assert sorted(rows["patient_id"]) == sorted(cohort.patient_ids)
    assert fold_metrics["auc"].notna().all()


def test_rna_genes_are_chosen_by_variance_among_the_fit_patients_only(tmp_path):
    paths = write_synthetic_cohort(tmp_path, n_patients=24, missing_rna=0.0)
    cohort = paths.load(CLASSES)
    fit, others = np.arange(12), np.arange(12, 24)
    # Gene 5 varies only among the patients outside the fit part; gene 7 only inside it.
    cohort.rna[:, 5] = 0.0
    cohort.rna[others, 5] = np.random.default_rng(0).normal(scale=50.0, size=12)
    cohort.rna[:, 7] = 0.0
    cohort.rna[fit, 7] = np.random.default_rng(1).normal(scale=50.0, size=12)
    stats = fit_normalisation(cohort, fit, rna_top_genes=4)
    assert 7 in stats.rna_genes and 5 not in stats.rna_genes
    assert len(stats.rna_genes) == 4 and np.all(np.diff(stats.rna_genes) > 0)
    tensors = fold_tensors(cohort, stats, eval_patch_rows(cohort, 8, seed=0))
    assert tensors.rna.shape == (24, 4)
    expected = (cohort.rna[:, stats.rna_genes] - stats.rna[0]) / stats.rna[1]
    np.testing.assert_allclose(tensors.rna.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert len(fit_normalisation(cohort, fit).rna_genes) == cohort.rna.shape[1], "None keeps every stored gene"


def test_repeated_cross_validation_draws_new_folds_and_keeps_every_repeats_predictions(tmp_path, cohort):
    config = small_train_config(models=["late_fusion"], missing_rates=[0.5], repeats=2, mask_repeats=2)
    run = cross_validate(
        cohort, config, "toy", tmp_path / "train", torch.device("cpu"), stand_in_factory(DIMS), dims=DIMS
    )
    assert list(run.splits.columns) == ["patient_id", "label", "fold", "fold_repeat1"]
    assert not np.array_equal(run.splits["fold"], run.splits["fold_repeat1"])
    for (repeat, scenario), rows in run.predictions.groupby(["repeat", "scenario"]):
        assert sorted(rows["patient_id"]) == sorted(cohort.patient_ids), (repeat, scenario)
    unit = tmp_path / "train" / "late_fusion" / "masked_train_test-0.5"
    assert (unit / "fold0" / "checkpoint-draw1.pt").exists() and (
        unit / "repeat1" / "fold2" / "history-draw1.tsv"
    ).exists()
    assert not (tmp_path / "train" / "late_fusion" / "complete" / "fold0" / "checkpoint-draw1.pt").exists()
    tables = evaluation_tables(run.fold_metrics, run.predictions, config, CLASSES, run.realised_rates)
    assert [c for c in tables.metrics.columns if "fold" in c] == [
        "fold0", "fold1", "fold2", "repeat1_fold0", "repeat1_fold1", "repeat1_fold2",
    ]  # fmt: skip
    assert len(tables.pooled) == 3 * cohort.n_patients, "one pooled row per patient and scenario, averaged over repeats"
    spread = repeat_auc_spread(run.predictions)  # metrics.md's spread across repeats: one AUC per repeat
    assert len(spread) == 3 and (spread["repeats"] == 2).all()
    assert spread[["auc_repeat0", "auc_repeat1"]].notna().all().all()
