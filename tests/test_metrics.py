"""Metrics from probabilities, and the fold summary tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mosare.evaluation.metrics import auc_score, classification_metrics, metrics_markdown, summarise_folds


def test_binary_metrics_match_hand_computed_values():
    labels = np.array([0, 0, 1, 1])
    positive = np.array([0.1, 0.4, 0.35, 0.8])
    metrics = classification_metrics(labels, np.stack([1 - positive, positive], axis=1))
    # 3 of the 4 (positive, negative) pairs are ordered right; arg-max predicts [0, 0, 0, 1]
    assert metrics["auc"] == pytest.approx(0.75)
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["balanced_accuracy"] == pytest.approx((1.0 + 0.5) / 2)
    assert metrics["f1_macro"] == pytest.approx((0.8 + 2 / 3) / 2)  # F1 of class 0: P 2/3, R 1; class 1: P 1, R 1/2


def test_binary_auc_equals_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    positive = np.round(rng.random(200), 1)  # many ties
    assert auc_score(labels, np.stack([1 - positive, positive], 1)) == pytest.approx(roc_auc_score(labels, positive))


def test_multiclass_auc_is_one_vs_rest_macro():
    rng = np.random.default_rng(1)
    labels = np.arange(60) % 3
    probabilities = rng.dirichlet(np.ones(3), size=60) + np.eye(3)[labels] * 0.3
    probabilities /= probabilities.sum(1, keepdims=True)
    expected = np.mean([roc_auc_score(labels == k, probabilities[:, k]) for k in range(3)])
    assert classification_metrics(labels, probabilities)["auc"] == pytest.approx(expected)


def test_auc_is_undefined_when_the_test_labels_hold_one_class():
    assert np.isnan(auc_score(np.array([1, 1, 1]), np.full((3, 2), 0.5)))


def fold_rows(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for model, aucs in values.items():
        for fold, auc in enumerate(aucs):
            rows.append({
                "cohort": "c", "model": model, "scenario": "complete", "train_missing_rate": 0.0,
                "test_missing_rate": 0.0, "fold": fold, "auc": auc, "f1_macro": 0.5, "accuracy": 0.5,
                "balanced_accuracy": 0.5, "brier": 0.25, "ece": 0.1,
            })  # fmt: skip
    return pd.DataFrame(rows)


def test_fold_summary_has_mean_sample_std_and_one_column_per_fold():
    table = summarise_folds(fold_rows({"mosare": [0.8, 0.9, 1.0], "abmil": [0.6, 0.7, 0.8]}), n_folds=3)
    assert list(table.columns) == [
        "cohort", "model", "scenario", "train_missing_rate", "test_missing_rate", "metric", "mean", "std",
        "fold0", "fold1", "fold2",
    ]  # fmt: skip
    assert len(table) == 2 * 6
    auc = table[(table["model"] == "mosare") & (table["metric"] == "auc")].iloc[0]
    assert auc["mean"] == pytest.approx(0.9) and auc["std"] == pytest.approx(0.1)
    assert table["model"].tolist()[:6] == ["mosare"] * 6  # models in run order, metrics in a fixed order
    assert table["metric"].tolist()[:6] == ["auc", "f1_macro", "accuracy", "balanced_accuracy", "brier", "ece"]


def test_repeated_folds_get_their_own_columns_and_one_mean_and_std():
    first = fold_rows({"mosare": [0.8, 0.9, 1.0]})
    second = fold_rows({"mosare": [0.6, 0.7, 0.8]}).assign(repeat=1)
    table = summarise_folds(pd.concat([first.assign(repeat=0), second]), n_folds=3, repeats=2)
    assert [c for c in table.columns if "fold" in c] == [
        "fold0", "fold1", "fold2", "repeat1_fold0", "repeat1_fold1", "repeat1_fold2",
    ]  # fmt: skip
    auc = table[table["metric"] == "auc"].iloc[0]
    assert auc["mean"] == pytest.approx(0.8) and auc["std"] == pytest.approx(
        np.std([0.8, 0.9, 1, 0.6, 0.7, 0.8], ddof=1)
    )


def test_fold_summary_leaves_an_undefined_fold_out_of_mean_and_std():
    table = summarise_folds(fold_rows({"mosare": [0.8, float("nan"), 1.0]}), n_folds=3)
    auc = table[table["metric"] == "auc"].iloc[0]
    assert auc["mean"] == pytest.approx(0.9) and np.isnan(auc["fold1"])


def test_markdown_summary_shows_mean_and_std_per_model_and_scenario():
    table = summarise_folds(fold_rows({"mosare": [0.8, 0.9, 1.0], "abmil": [0.6, 0.7, 0.8]}), n_folds=3)
    text = metrics_markdown(table, "auc", ["mosare", "abmil"])
    assert "| model | complete |" in text
    assert "| mosare | 0.900 ± 0.100 |" in text
    assert text.index("| mosare |") < text.index("| abmil |")
