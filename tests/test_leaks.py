"""Leak tests of the whole protocol with the real models: what a test fold's labels can and cannot change."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic_cohort import small_train_config, write_synthetic_cohort

from mosare.evaluation.scenarios import scenarios, training_groups
from mosare.evaluation.splits import make_folds
from mosare.model.factory import build_model
from mosare.training.cross_validation import RunContext, model_dims, run_unit

CLASSES = ["A", "B"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_permuting_a_test_folds_labels_leaves_every_test_prediction_bitwise_identical(tmp_path):
    paths = write_synthetic_cohort(tmp_path, n_patients=30, missing_rna=0.2, missing_text=0.2, without_wsi=(29,))
    data = paths.load(CLASSES)
    config = small_train_config(
        models=["mosare", "abmil", "rna_mlp", "late_fusion"], epochs=3, hidden=8, prototypes_per_class=2,
        missing_rates=[0.5], mask_repeats=2, rna_top_genes=10,
    )  # fmt: skip
    folds = make_folds(data.patient_ids, data.labels, config["folds"], config["seed"])[None]

    def predictions(labels: np.ndarray, fold: int, run: str) -> pd.DataFrame:
        relabelled = dataclasses.replace(data, labels=labels)
        context = RunContext(folds, config, "toy", tmp_path / run, "cpu", build_model, model_dims(data, config))
        frames = [
            pd.concat(frames)
            for group in training_groups(scenarios([0.5]))
            for _, frames in run_unit(relabelled, context, 0, fold, group, progress=False).values()
        ]
        return pd.concat(frames, ignore_index=True)

    rng = np.random.default_rng(0)
    for fold in range(config["folds"]):
        test = np.flatnonzero(folds[0] == fold)
        permuted = data.labels.copy()
        while np.array_equal(permuted[test], data.labels[test]):
            permuted[test] = rng.permutation(data.labels[test])
        original, flipped = predictions(data.labels, fold, "original"), predictions(permuted, fold, f"flipped{fold}")
        columns = ["model", "scenario", "train_missing_rate", "patient_id", "prob_A", "prob_B"]
        pd.testing.assert_frame_equal(original[columns], flipped[columns], check_exact=True)
        assert not original["label"].equals(flipped["label"])


def test_scenarios_sharing_a_training_side_get_the_model_each_would_train_alone(tmp_path):
    """Masked train / complete test and masked train / masked test at one rate train one model per draw together;
    every prediction, checkpoint and history must equal training each scenario by itself."""
    paths = write_synthetic_cohort(tmp_path, n_patients=24, missing_rna=0.2, missing_text=0.2, without_wsi=(0, 23))
    data = paths.load(CLASSES)
    config = small_train_config(models=["mosare", "abmil", "rna_mlp"], epochs=2, missing_rates=[0.5], mask_repeats=2)
    folds = make_folds(data.patient_ids, data.labels, config["folds"], config["seed"])[None]
    groups = training_groups(scenarios([0.5]))
    assert [[s.slug for s in group] for group in groups] == [
        ["complete"],
        ["masked_train-0.5", "masked_train_test-0.5"],
    ]
    shared_group = groups[1]

    def run(group, folder):
        context = RunContext(folds, config, "toy", tmp_path / folder, "cpu", build_model, model_dims(data, config))
        return context, run_unit(data, context, 0, 1, group, progress=False)

    shared_context, shared = run(shared_group, "shared")
    for scenario in shared_group:
        alone_context, alone = run((scenario,), f"alone-{scenario.slug}")
        assert shared[scenario][0] == alone[scenario][0]
        for together, by_itself in zip(shared[scenario][1], alone[scenario][1], strict=True):
            pd.testing.assert_frame_equal(together, by_itself, check_exact=True)
        for model in config["models"]:
            for name in ("checkpoint.pt", "checkpoint-draw1.pt", "history.tsv", "predictions.tsv"):
                together = shared_context.unit_dir(model, scenario, 0, 1) / name
                by_itself = alone_context.unit_dir(model, scenario, 0, 1) / name
                if name.endswith(".pt"):
                    a, b = torch.load(together, weights_only=True), torch.load(by_itself, weights_only=True)
                    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
                else:
                    assert together.read_bytes() == by_itself.read_bytes()
    # The group's scenarios differ on the test side only, so their predictions do.
    masked_test = [frame for frame in shared[shared_group[1]][1] if frame["model"].iat[0] == "mosare"][0]
    complete_test = [frame for frame in shared[shared_group[0]][1] if frame["model"].iat[0] == "mosare"][0]
    assert not np.array_equal(masked_test["prob_A"], complete_test["prob_A"])
