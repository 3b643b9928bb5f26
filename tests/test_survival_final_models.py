"""A survival cohort's final models (issue 22): trained on every patient, saved with what survival prediction needs,
loaded back to the same predictions, and deployed to another survival cohort with external validation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from test_survival_training import survival_config, write_survival_cohort

from mosare.deploy.apply import RISK_GROUPS, deploy_cohort
from mosare.training.final_models import FinalModelFacts, load_final_model
from mosare.training.stage import train_and_evaluate
from mosare.training.survival import RISK_CUTOFF

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODELS = ["mosare", "rna_mlp"]
OUTPUT_FILES = {
    "splits": "splits.tsv", "metrics": "metrics.tsv", "summary": "metrics.md", "comparisons": "comparisons.tsv",
    "predictions": "predictions.tsv", "train_dir": "train", "models": "models",
}  # fmt: skip


def train_survival_stage(root, head: str) -> tuple:
    inputs = write_survival_cohort(root, n_patients=30)
    config = survival_config(
        models=MODELS, folds=2, epochs=2, missing_rates=[], survival={"head": head, "bins": 3, "alpha": 0.0},
        time_unit="months",
        patches_per_step=1000,  # every patch, in training and deploy alike: no seeded patch subset differs
    )  # fmt: skip
    outputs = {name: root / file for name, file in OUTPUT_FILES.items()}
    train_and_evaluate("surv", [], config, inputs, outputs, threads=1, rna_top_genes=10)
    return inputs, outputs


@pytest.fixture(scope="module", params=["hazard", "cox"])
def trained(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"survival-final-{request.param}")
    inputs, outputs = train_survival_stage(root, request.param)
    return request.param, inputs, outputs


def test_every_survival_model_is_saved_with_its_survival_facts_and_card(trained) -> None:
    head, _, outputs = trained
    for name in MODELS:
        folder = outputs["models"] / name
        assert sorted(p.name for p in folder.iterdir()) == [
            "model.json", "model_card.md", "preprocessing.npz", "state_dict.pt",
        ]  # fmt: skip
        saved = json.loads((folder / "model.json").read_text())
        assert saved["classes"] == [] and saved["class_prior"] == []
        survival = saved["survival"]
        assert survival["head"] == head and survival["time_unit"] == "months" and len(survival["horizons"]) == 2
        assert len(survival["edges"]) == 4  # 3 bins, cut at the fit patients' event times
        # the Cox head's survival needs Breslow's baseline; the hazard head carries its own curve
        assert bool(survival["baseline_times"]) == (head == "cox")
        assert FinalModelFacts.from_json((folder / "model.json").read_text()).survival.head == head
        card = (folder / "model_card.md").read_text()
        assert "Harrell's C" in card and "events" in card and "high risk above" in card


def test_a_deployed_survival_model_reproduces_its_training_risks(trained, tmp_path) -> None:
    """Deployed to its own cohort, a model loaded from disk gives its training patients back the risks it was
    saved with: their median is the saved cut-off, exactly (weights, preprocessing and stand-ins all round-trip)."""
    _, inputs, outputs = trained
    predictions = deploy_cohort(
        outputs["models"], inputs, [], {"predictions": tmp_path / "p.tsv", "metrics": tmp_path / "m.tsv"},
        n_resamples=200,
    )  # fmt: skip
    assert set(predictions["model"]) == set(MODELS)
    for _, rows in predictions.groupby("model"):
        risk = rows["risk"].to_numpy()
        assert np.median(risk) == pytest.approx(rows[RISK_CUTOFF].iloc[0], rel=1e-6, abs=1e-9)
        assert set(rows["risk_group"]) <= set(RISK_GROUPS)
        assert ((rows["risk_group"] == RISK_GROUPS[1]) == (risk > rows[RISK_CUTOFF].iloc[0])).all()
        survival = rows.filter(like="survival@").to_numpy()
        assert survival.shape[1] == 2 and ((survival >= 0) & (survival <= 1)).all()
        assert (np.diff(survival, axis=1) <= 1e-12).all(), "S(t) never rises"
        # within one model a higher risk never survives longer at a horizon (Cox: S0 ** exp(risk))
        order = np.argsort(risk)
        if rows["risk"].nunique() > 1 and "cox" in str(outputs["models"]):
            assert (np.diff(survival[order, 0]) <= 1e-9).all()
    metrics = pd.read_csv(tmp_path / "m.tsv", sep="\t")
    harrell = metrics[metrics["metric"] == "harrell_c"]
    assert len(harrell) == len(MODELS) and harrell["value"].between(0, 1).all()
    assert (harrell["ci_low"] <= harrell["value"]).all() and (harrell["value"] <= harrell["ci_high"]).all()
    assert {"uno_c", *(f"td_auc@{c.split('@')[1]}" for c in predictions.filter(like="survival@"))} <= set(
        metrics["metric"]
    )


def test_a_loaded_survival_model_predicts_with_a_survival_head(trained) -> None:
    head, _, outputs = trained
    loaded = load_final_model(outputs["models"] / "mosare")
    assert loaded.model.classifier.kind == head
    assert not loaded.model.training
    assert all(torch.isfinite(p).all() for p in loaded.model.parameters())


def test_survival_models_refuse_a_classification_target(trained, tmp_path) -> None:
    from synthetic_cohort import write_synthetic_cohort

    _, _, outputs = trained
    classification = write_synthetic_cohort(tmp_path / "target", n_patients=12)
    with pytest.raises(ValueError, match="survival model but the target cohort is a classification cohort"):
        deploy_cohort(outputs["models"], classification, ["A", "B"], {"predictions": tmp_path / "p.tsv"})
