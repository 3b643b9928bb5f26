"""Survival cohorts through cross-validation (issue 22, step 2): every model with a SurvivalHead, bins from the fit
part only, risk and survival at the horizons, per-fold C-index, AUC(t) and IBS."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic_cohort import small_train_config, write_synthetic_cohort

from mosare.cohort.data import CohortInputs
from mosare.core.config_schema import schema_defaults
from mosare.model.factory import ModelDims, build_model
from mosare.model.survival import SurvivalHead, SurvivalSetup
from mosare.training.cross_validation import cross_validate, plan_cross_validation, run_unit
from mosare.training.survival import survival_columns, survival_horizons, survival_metric_names

ALL_MODELS = list(schema_defaults("train")["models"])


def write_survival_cohort(root, n_patients: int = 36, seed: int = 0) -> CohortInputs:
    """The synthetic classification cohort with its label turned into an outcome: class B (the shifted one) dies
    sooner; about a quarter of the patients censored."""
    inputs = write_synthetic_cohort(root, n_patients=n_patients, seed=seed)
    table = pd.read_csv(inputs.cohort_table, sep="\t", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed + 1)
    risk = np.where(table["label"] == "B", 1.0, -1.0) + rng.normal(scale=0.5, size=len(table))
    event_time = rng.exponential(24.0 * np.exp(-risk))
    censor_time = rng.uniform(6.0, 80.0, size=len(table))
    table["label"] = ""
    table["time"] = np.round(np.maximum(np.minimum(event_time, censor_time), 0.1), 1)
    table["event"] = (event_time <= censor_time).astype(int)
    table.to_csv(inputs.cohort_table, sep="\t", index=False)
    return inputs


def survival_config(**overrides) -> dict:
    config = small_train_config(
        models=ALL_MODELS, epochs=2, prototypes_per_class=2, survival={"head": "hazard", "bins": 3, "alpha": 0.0},
        horizons=None, task="survival",
    )  # fmt: skip
    config.update(overrides)
    return config


def test_survival_cross_validation_runs_every_model(tmp_path) -> None:
    data = write_survival_cohort(tmp_path).load([])
    assert data.is_survival and data.classes == []
    config = survival_config(folds=2, epochs=1, missing_rates=[])
    cv = cross_validate(data, config, "surv", tmp_path / "train", torch.device("cpu"), workers=2)
    horizons = survival_horizons(data, config)
    assert len(horizons) == 2 and horizons[0] < horizons[1]
    assert set(cv.fold_metrics["model"]) == {*ALL_MODELS, "coxnet_rna"}  # the reference row runs beside them
    for metric in survival_metric_names(horizons):
        assert metric in cv.fold_metrics.columns
    c = cv.fold_metrics["harrell_c"].dropna()
    assert len(c) and ((c >= 0) & (c <= 1)).all()
    columns = survival_columns(horizons)
    assert {"patient_id", "time", "event", "risk", *columns} <= set(cv.predictions.columns)
    survival = cv.predictions[columns].to_numpy()
    assert ((survival >= 0) & (survival <= 1)).all()
    assert (np.diff(survival, axis=1) <= 1e-12).all(), "S(t) never rises"
    assert {"time", "event", "fold"} <= set(cv.splits.columns) and "label" not in cv.splits.columns
    history = pd.read_csv(tmp_path / "train" / "mosare" / "complete" / "fold0" / "history.tsv", sep="\t")
    assert {"val_c_index", "val_loss", "survival", "mcl"} <= set(history.columns)


def test_cox_head_gives_breslow_survival(tmp_path) -> None:
    data = write_survival_cohort(tmp_path).load([])
    config = survival_config(
        models=["mosare", "rna_mlp"], folds=2, missing_rates=[], survival={"head": "cox", "bins": 3, "alpha": 0.0}
    )
    cv = cross_validate(data, config, "surv", tmp_path / "train", torch.device("cpu"))
    survival = cv.predictions[survival_columns(survival_horizons(data, config))].to_numpy()
    assert ((survival >= 0) & (survival <= 1)).all() and (survival < 1).any()
    # Breslow: S(t | r) = S0(t) ** exp(r), so within one fold's model a higher risk never survives longer
    for _, fold in cv.predictions.groupby(["model", "scenario", "fold"]):
        order = np.argsort(fold["risk"].to_numpy())
        assert (np.diff(fold.iloc[order][survival_columns(survival_horizons(data, config))[0]]) <= 1e-12).all()


def test_test_patients_outcomes_never_reach_their_predictions(tmp_path) -> None:
    """Changing the test fold's times and events changes nothing predicted for it: the bins, the normalisation and
    the validation come from the training part only."""
    data = write_survival_cohort(tmp_path).load([])
    # fixed horizons: the default ones are quantiles of the whole cohort's event times (evaluation times only)
    config = survival_config(models=["mosare", "abmil"], missing_rates=[], epochs=1, horizons=[10.0, 20.0])
    cv = plan_cross_validation(data, config, "surv", tmp_path / "a", torch.device("cpu"))
    repeat, fold, group = cv.units(0, 0)[0]
    test = cv.folds[0] == fold
    rng = np.random.default_rng(5)
    times = data.times.copy()
    times[test] = rng.permutation(times[test]) * 3.0 + 1.0
    events = data.events.copy()
    events[test] = ~events[test]
    shuffled = dataclasses.replace(data, times=times, events=events, labels=events.astype(np.int64))
    before = run_unit(data, cv.context, repeat, fold, group, progress=False)
    context = dataclasses.replace(cv.context, train_dir=tmp_path / "b")
    after = run_unit(shuffled, context, repeat, fold, group, progress=False)
    for scenario in group:
        a = pd.concat(before[scenario][1], ignore_index=True)
        b = pd.concat(after[scenario][1], ignore_index=True)
        pd.testing.assert_series_equal(a["risk"], b["risk"])
        columns = [c for c in a.columns if c.startswith("survival@")]
        pd.testing.assert_frame_equal(a[columns], b[columns])


def test_models_take_a_survival_head() -> None:
    dims = ModelDims(wsi_dim=8, rna_genes=10, text_dim=6, local_tokens=2, hidden=16)
    setup = SurvivalSetup("hazard", [0.0, 10.0, 20.0, np.inf])
    hparams = {"prototypes_per_class": 2, "contrastive_warmup_epochs": 0}
    for name in ALL_MODELS:
        model = build_model(name, dims, 0, hparams, survival=setup)
        assert isinstance(model.classifier, SurvivalHead) and model.classifier.n_bins == 3
    mosare = build_model("mosare", dims, 0, hparams, survival=setup)
    assert isinstance(mosare.global_head, SurvivalHead) and mosare.mcl.prototypes.shape[0] == 3
    with pytest.raises(ValueError, match="at least 2 classes"):
        build_model("mosare", dims, 0, hparams)


def test_mosare_survival_loss_leaves_unknown_bins_out_of_mcl() -> None:
    """Censored before the last bin: pseudo-class -1, never queued; a batch of only such patients has MCL 0."""
    dims = ModelDims(wsi_dim=8, rna_genes=10, text_dim=6, local_tokens=2, hidden=16)
    setup = SurvivalSetup("hazard", [0.0, 10.0, 20.0, np.inf])
    model = build_model("mosare", dims, 0, {"prototypes_per_class": 1, "contrastive_warmup_epochs": 0}, survival=setup)
    batch_size = 4
    batch = {
        "wsi_patches": torch.randn(batch_size, 5, 8),
        "wsi_patch_mask": torch.ones(batch_size, 5, dtype=torch.bool),
        "wsi_local": torch.randn(batch_size, 2, 8),
        "rna": torch.randn(batch_size, 10),
        "text_global": torch.randn(batch_size, 6),
        "text_local": torch.randn(batch_size, 2, 6),
        "present": torch.ones(batch_size, 3, dtype=torch.bool),
        "label": torch.zeros(batch_size, dtype=torch.long),
        "time": torch.tensor([1.0, 5.0, 12.0, 15.0], dtype=torch.float64),
        "event": torch.zeros(batch_size, dtype=torch.bool),
    }
    model.train()
    total, terms = model.compute_loss(batch, model(batch), epoch=5)
    assert np.isfinite(float(total.detach())) and terms["mcl"] == 0.0
    assert int(model.mcl.queue_length.sum()) == 0
    batch["event"] = torch.tensor([True, False, True, False])
    total, terms = model.compute_loss(batch, model(batch), epoch=5)
    assert int(model.mcl.queue_length.sum()) == 2 and np.isfinite(float(total.detach()))
    total.backward()


def test_survival_tables_pool_within_fold_pairs_and_compare_with_mosare(tmp_path) -> None:
    """metrics.tsv rows per survival metric (pooled Harrell/Uno C with CIs; AUC(t) and IBS per fold only),
    comparisons.tsv of MoSARe against the others with Holm, metrics.md."""
    from mosare.evaluation.survival_metrics import harrell_c_index
    from mosare.evaluation.survival_results import survival_evaluation_tables, write_survival_results

    data = write_survival_cohort(tmp_path).load([])
    config = survival_config(models=["mosare", "rna_mlp", "late_fusion"], folds=2, epochs=1, missing_rates=[])
    config["bootstrap_resamples"] = 200
    cv = cross_validate(data, config, "surv", tmp_path / "train", torch.device("cpu"))
    tables = survival_evaluation_tables(cv.fold_metrics, cv.predictions, cv.splits, config, cv.realised_rates)
    metrics = tables.metrics
    horizons = survival_horizons(data, config)
    assert set(metrics["metric"]) == set(survival_metric_names(horizons))
    harrell = metrics[metrics["metric"] == "harrell_c"].set_index("model")
    assert harrell[["pooled", "ci_low", "ci_high"]].notna().all().all()
    assert (harrell["ci_low"] <= harrell["pooled"]).all() and (harrell["pooled"] <= harrell["ci_high"]).all()
    assert metrics[metrics["metric"] == "ibs"]["pooled"].isna().all()
    # the pooled C is the within-fold one, never the C of pooled risks across folds
    mosare = cv.predictions[cv.predictions["model"] == "mosare"]
    within = harrell_c_index(
        mosare["time"], mosare["event"], mosare["risk"], fold=mosare["fold"], n_resamples=10, seed=0
    ).c_index
    assert harrell.loc["mosare", "pooled"] == pytest.approx(within)
    comparisons = tables.comparisons
    assert list(comparisons["compared_to"]) == ["rna_mlp", "late_fusion", "coxnet_rna"]
    assert (comparisons["p_holm"] >= comparisons["p_value"]).all()
    assert (comparisons["n_patients"] == data.n_patients).all()
    outputs = {name: tmp_path / f"{name}.tsv" for name in ("splits", "metrics", "comparisons", "predictions")}
    outputs["summary"] = tmp_path / "metrics.md"
    write_survival_results(cv.splits, tables, cv.predictions, config, outputs)
    markdown = outputs["summary"].read_text()
    assert "HARRELL_C" in markdown and "within-fold pairs only" in markdown and "Paired comparisons" in markdown


def test_ridge_cox_reference_row_runs_on_the_same_folds(tmp_path) -> None:
    """coxnet_rna: scikit-survival's ridge-penalised Cox on the fold's RNA genes, beside the deep models, in every
    scenario; on this cohort's strong RNA signal it ranks patients well above chance."""
    from mosare.training.survival import REFERENCE_COX

    data = write_survival_cohort(tmp_path, n_patients=60).load([])
    config = survival_config(models=["rna_mlp"], folds=3, epochs=1, missing_rates=[0.5])
    cv = cross_validate(data, config, "surv", tmp_path / "train", torch.device("cpu"))
    reference = cv.fold_metrics[cv.fold_metrics["model"] == REFERENCE_COX]
    assert set(reference["scenario"]) == {"complete", "masked_train", "masked_train_test"}
    assert len(reference) == 3 * 3
    complete = reference[reference["scenario"] == "complete"]
    assert complete["harrell_c"].mean() > 0.6
    predictions = cv.predictions[cv.predictions["model"] == REFERENCE_COX]
    columns = survival_columns(survival_horizons(data, config))
    values = predictions[columns].to_numpy()
    assert ((values >= 0) & (values <= 1)).all() and (np.diff(values, axis=1) <= 1e-12).all()
    ours = cv.predictions[(cv.predictions["model"] == "rna_mlp") & (cv.predictions["scenario"] == "complete")]
    theirs = predictions[predictions["scenario"] == "complete"]
    assert list(ours["patient_id"]) == list(theirs["patient_id"]), "same folds, same patients"


def test_permuted_outcomes_give_chance_concordance(tmp_path) -> None:
    """Leak check: with the outcomes permuted across patients nothing can predict them, so the reference's pooled
    within-fold C falls to about 0.5 (it is well above 0.6 on the true outcomes: the test above)."""
    from mosare.evaluation.survival_metrics import harrell_c_index
    from mosare.training.survival import REFERENCE_COX

    data = write_survival_cohort(tmp_path, n_patients=120).load([])
    order = np.random.default_rng(3).permutation(data.n_patients)
    data = dataclasses.replace(data, times=data.times[order], events=data.events[order], labels=data.labels[order])
    config = survival_config(models=["rna_mlp"], folds=3, epochs=1, missing_rates=[])
    cv = cross_validate(data, config, "surv", tmp_path / "train", torch.device("cpu"))
    rows = cv.predictions[cv.predictions["model"] == REFERENCE_COX]
    c = harrell_c_index(rows["time"], rows["event"], rows["risk"], fold=rows["fold"], n_resamples=10, seed=0)
    assert abs(c.c_index - 0.5) < 0.12
