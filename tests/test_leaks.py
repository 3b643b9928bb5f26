"""Leak tests of the whole protocol with the real models: what a test fold's labels can and cannot change."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic_cohort import small_train_config, write_synthetic_cohort

from mosare.model import build_model
from mosare.scenarios import scenarios
from mosare.splits import make_folds
from mosare.training import RunContext, model_dims, run_unit

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
        frames = [pd.concat(run_unit(relabelled, context, 0, fold, s, progress=False)[1]) for s in scenarios([0.5])]
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
