"""Final models: trained on the whole cohort after cross-validation, saved with their facts, loaded back only for
inputs made the same way."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic_cohort import small_train_config, write_synthetic_cohort

from mosare.cohort.data import CohortInputs
from mosare.core.stores import open_store, write_store
from mosare.training.final_models import InputFacts, ModelMismatchError, load_final_model
from mosare.training.fold_inputs import eval_patch_rows, fold_tensors
from mosare.training.loop import predict_probabilities
from mosare.training.stage import train_and_evaluate

CLASSES = ["A", "B"]
MODELS = ["mosare", "late_fusion", "rna_mlp"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


FINAL_CONFIG = small_train_config(models=MODELS, missing_rates=[], hidden=8, prototypes_per_class=2, epochs=3)


def run_training_stage(root, threads: int) -> CohortInputs:
    """The whole training stage (cross-validation and final models) on an 18-patient cohort written under ``root``."""
    paths = write_synthetic_cohort(root, n_patients=18, without_wsi=(17,))
    for store in paths.features_dir.glob("*.zarr"):  # what the embedding stage records
        arrays = {name: open_store(store)[name][...] for name in ("features", "coords")}
        write_store(store, arrays, {"encoder": "efficientnet-lite0", "weights_sha256": "ab" * 32})
    outputs = {name: root / file for name, file in [
        ("splits", "splits.tsv"), ("metrics", "metrics.tsv"), ("summary", "metrics.md"), ("comparisons", "comparisons.tsv"),
        ("predictions", "predictions.tsv"), ("train_dir", "train"), ("models", "models"),
    ]}  # fmt: skip
    train_and_evaluate("toy", CLASSES, FINAL_CONFIG, paths, outputs, threads=threads, rna_top_genes=10)
    return paths


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("final")
    paths = run_training_stage(root, threads=1)
    data = paths.load(CLASSES)
    return root / "models", data, InputFacts.read(data, paths.features_dir, paths.text, paths.rna), FINAL_CONFIG


def test_every_model_is_saved_with_weights_only_state_preprocessing_facts_and_card(trained):
    models_dir, data, facts, _ = trained
    for name in MODELS:
        folder = models_dir / name
        assert sorted(p.name for p in folder.iterdir()) == [
            "model.json",
            "model_card.md",
            "preprocessing.npz",
            "state_dict.pt",
        ]
        torch.load(folder / "state_dict.pt", weights_only=True)
        saved = json.loads((folder / "model.json").read_text())
        assert saved["classes"] == CLASSES and saved["model"] == name and saved["dims"]["hidden"] == 8
        assert "survival" not in saved, "a classification model.json is byte for byte what it was before survival"
        assert (
            saved["inputs"]["encoder"] == "efficientnet-lite0"
            and saved["inputs"]["encoder_weights_sha256"] == "ab" * 32
        )
        assert len(saved["rna_genes"]) == 10 and saved["package_version"]
        card = (folder / "model_card.md").read_text()
        assert "| A | 9 | 9 |" in card and "| B | 9 | 8 |" in card, "patients per class and with WSI"
        assert "[" in card and "Intended use and limits" in card


def test_final_models_and_metrics_are_the_same_with_a_worker_pool(trained, tmp_path):
    """With two cores the final models train in the cross-validation's worker pool, not in the job's own process:
    every saved tensor and the metrics must be those of the one-process run."""
    models_dir, _, _, _ = trained
    torch.set_num_threads(2)  # what the job's own process had before the pool; must not matter now
    run_training_stage(tmp_path, threads=2)
    assert (tmp_path / "metrics.tsv").read_bytes() == (models_dir.parent / "metrics.tsv").read_bytes()
    for name in MODELS:
        ours = torch.load(tmp_path / "models" / name / "state_dict.pt", weights_only=True)
        reference = torch.load(models_dir / name / "state_dict.pt", weights_only=True)
        assert ours.keys() == reference.keys()
        assert all(torch.equal(ours[key], reference[key]) for key in ours), name
        assert (tmp_path / "models" / name / "model.json").read_text() == (models_dir / name / "model.json").read_text()


@pytest.mark.parametrize("threads", [1, 2])
def test_one_job_per_fold_gives_the_bits_of_the_one_job_stage(trained, tmp_path, threads):
    """The workflow's training jobs (one per fold, one for the final models, one evaluation) against the one-process
    stage: metrics.tsv, every out-of-fold prediction, every per-unit output and every saved model file are the same."""
    from mosare.training.plan import fold_keys
    from mosare.training.stage import evaluate, train_final_models, train_folds

    reference = trained[0].parent
    paths = write_synthetic_cohort(tmp_path, n_patients=18, without_wsi=(17,))
    for store in paths.features_dir.glob("*.zarr"):
        arrays = {name: open_store(store)[name][...] for name in ("features", "coords")}
        write_store(store, arrays, {"encoder": "efficientnet-lite0", "weights_sha256": "ab" * 32})
    folds = {key: tmp_path / "folds" / f"repeat{key[0]}-fold{key[1]}.pkl" for key in fold_keys(FINAL_CONFIG)}
    for key, path in folds.items():  # each fold in its own call, as each runs in its own job
        train_folds("toy", CLASSES, FINAL_CONFIG, paths, {key: path}, tmp_path / "train", threads, rna_top_genes=10)
    train_final_models("toy", CLASSES, FINAL_CONFIG, paths, tmp_path / "final.pt", threads, rna_top_genes=10)
    outputs = {name: tmp_path / file for name, file in [
        ("splits", "splits.tsv"), ("metrics", "metrics.tsv"), ("summary", "metrics.md"), ("comparisons", "comparisons.tsv"),
        ("predictions", "predictions.tsv"), ("train_dir", "train"), ("models", "models"),
    ]}  # fmt: skip
    evaluate("toy", CLASSES, FINAL_CONFIG, paths, folds, tmp_path / "final.pt", outputs, rna_top_genes=10)

    for table in ("metrics.tsv", "predictions.tsv", "comparisons.tsv", "splits.tsv", "metrics.md"):
        assert (tmp_path / table).read_bytes() == (reference / table).read_bytes(), table
    for folder in ("train", "models"):
        ours = sorted(p.relative_to(tmp_path) for p in (tmp_path / folder).rglob("*") if p.is_file())
        theirs = sorted(p.relative_to(reference) for p in (reference / folder).rglob("*") if p.is_file())
        assert ours == theirs and ours
        for relative in ours:
            if relative.suffix == ".pt":  # torch's zip records no timestamps, but compare tensors to name a difference
                mine, other = (torch.load(root / relative, weights_only=True) for root in (tmp_path, reference))
                assert mine.keys() == other.keys() and all(torch.equal(mine[k], other[k]) for k in mine), relative
            assert (tmp_path / relative).read_bytes() == (reference / relative).read_bytes(), relative


def test_a_loaded_model_predicts_from_its_saved_preprocessing(trained):
    models_dir, data, facts, _ = trained
    loaded = load_final_model(models_dir / "mosare", facts, [f"G{g}" for g in range(24)])
    assert not loaded.model.training and loaded.facts.model == "mosare"
    tensors = fold_tensors(data, loaded.normalisation, eval_patch_rows(data, 8, seed=0))
    shown = torch.from_numpy(data.available)
    probabilities = predict_probabilities(
        loaded.model, tensors, np.arange(data.n_patients), shown, 8, torch.device("cpu"), np.array([0.5, 0.5]), None
    )
    assert probabilities.shape == (18, 2) and np.allclose(probabilities.sum(axis=1), 1)
    again = load_final_model(models_dir / "mosare")
    repeat = predict_probabilities(
        again.model, tensors, np.arange(18), shown, 8, torch.device("cpu"), np.array([0.5, 0.5]), None
    )
    np.testing.assert_array_equal(probabilities, repeat)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"encoder": "uni"}, "encoder: model 'efficientnet-lite0', data 'uni'"),
        ({"encoder_weights_sha256": "cd" * 32}, "encoder_weights_sha256: model 'abab"),
        ({"gmm_components": 8}, "gmm_components: model 4, data 8 (set gmm.components"),
        ({"drop_sections": ("Diagnosis",)}, "drop_sections"),
    ],
)
def test_loading_refuses_inputs_made_differently_naming_the_mismatch_and_fix(trained, change, message):
    models_dir, _, facts, _ = trained
    with pytest.raises(ModelMismatchError, match=message.replace("(", r"\(")):
        load_final_model(models_dir / "late_fusion", dataclasses.replace(facts, **change))


def test_loading_refuses_another_hidden_size_and_missing_genes(trained):
    models_dir, _, facts, config = trained
    with pytest.raises(ModelMismatchError, match=r"hidden: model 8, config train.hidden 64") as error:
        load_final_model(models_dir / "rna_mlp", facts, ["G0", "G1"], {**config, "hidden": 64})
    assert "of the model's 10 genes are not in the data" in str(error.value)


def deploy_inputs(root, data, labels: list[str] | None = None, genes: int = 24) -> CohortInputs:
    """The trained cohort's own stores as a deploy target, optionally relabelled and with fewer RNA genes."""
    from mosare.cohort.table import CohortTable

    table = CohortTable.read(root / "cohort.tsv", CLASSES)
    target = root / f"target-{genes}-{'unlabelled' if labels else 'labelled'}"
    target.mkdir(exist_ok=True)
    dataclasses.replace(table, labels=tuple(labels) if labels else table.labels).write(target / "cohort.tsv")
    store = open_store(root / "rna.zarr")
    arrays = {name: store[name][...] for name in ("patient_ids", "gene_ids", "values", "present")}
    arrays["gene_ids"], arrays["values"] = arrays["gene_ids"][:genes], arrays["values"][:, :genes]
    write_store(target / "rna.zarr", arrays, dict(store.attrs))
    return CohortInputs(
        target / "cohort.tsv", root / "features" / "enc", root / "gmm" / "enc", root / "text.zarr", target / "rna.zarr"
    )


def test_deploying_to_a_labelled_cohort_writes_predictions_and_external_validation(trained, tmp_path):
    from mosare.deploy.apply import deploy_cohort
    from mosare.reporting.plots.training import plot_external_roc

    models_dir, data, _, _ = trained
    root = models_dir.parent
    outputs = {"predictions": tmp_path / "predictions.tsv", "metrics": tmp_path / "metrics.tsv"}
    predictions = deploy_cohort(models_dir, deploy_inputs(root, data), CLASSES, outputs, n_resamples=1000)
    plot_external_roc(predictions, CLASSES, tmp_path / "roc.png")
    assert sorted(predictions["model"].unique()) == sorted(MODELS) and len(predictions) == 3 * 18
    mosare = predictions[predictions["model"] == "mosare"]
    assert np.isfinite(mosare[["logit_share_wsi", "logit_share_rna", "logit_share_text"]]).all().all()
    assert predictions.loc[predictions["model"] == "late_fusion", "logit_share_wsi"].isna().all()
    assert set(mosare.loc[mosare["patient_id"] == "P017", "modalities_used"]) <= {"rna+text", "rna", "text"}
    assert set(predictions.loc[predictions["model"] == "rna_mlp", "modalities_used"]) <= {"rna", "none"}
    metrics = pd.read_csv(outputs["metrics"], sep="\t")
    auc = metrics[(metrics["model"] == "mosare") & (metrics["metric"] == "auc")].iloc[0]
    assert auc["n_patients"] == 18 and auc["ci_low"] <= auc["value"] <= auc["ci_high"]
    assert (tmp_path / "roc.png").stat().st_size > 0


def test_deploying_to_an_unlabelled_cohort_predicts_without_metrics(trained, tmp_path):
    from mosare.deploy.apply import deploy_cohort

    models_dir, data, _, _ = trained
    outputs = {"predictions": tmp_path / "predictions.tsv", "metrics": tmp_path / "metrics.tsv"}
    predictions = deploy_cohort(models_dir, deploy_inputs(models_dir.parent, data, labels=[""] * 18), CLASSES, outputs)
    assert (predictions["label"] == "").all() and predictions["predicted"].isin(CLASSES).all()
    assert pd.read_csv(outputs["metrics"], sep="\t").empty


def test_missing_rna_genes_are_an_error_unless_zero_filled_and_counted(trained, tmp_path):
    from mosare.deploy.apply import MissingGenesError, deploy_cohort

    models_dir, data, _, _ = trained
    inputs = deploy_inputs(models_dir.parent, data, genes=6)
    with pytest.raises(MissingGenesError, match=r"lacks \d+ of the 10 genes .* deploy.missing_genes: zero"):
        deploy_cohort(models_dir, inputs, CLASSES, {"predictions": tmp_path / "p.tsv"})
    predictions = deploy_cohort(models_dir, inputs, CLASSES, {"predictions": tmp_path / "p.tsv"}, missing_genes="zero")
    filled = predictions.groupby("model")["genes_zero_filled"].first()
    assert filled["rna_mlp"] > 0 and filled["rna_mlp"] == filled["mosare"]
