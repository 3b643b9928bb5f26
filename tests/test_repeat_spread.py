"""The spread of the pooled AUC across repeats of cross-validation (metrics.md), on small synthetic predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mosare.evaluation.repeats import repeat_auc_spread, repeat_spread_markdown

SCENARIOS = [("complete", 0.0, 0.0), ("masked_train_test", 0.5, 0.5)]


def synthetic_predictions(classes: list[str], repeats: int, patients: int = 30, seed: int = 0) -> pd.DataFrame:
    """predictions.tsv's rows: two models x two scenarios x repeats, every patient once per repeat (in one fold)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(classes), patients)
    labels[: len(classes)] = np.arange(len(classes))  # every class present
    rows = []
    for model in ("mosare", "abmil"):
        for scenario, train_rate, test_rate in SCENARIOS:
            for repeat in range(repeats):
                folds = rng.permutation(patients) % 5
                # some signal, different in every repeat, so the per-repeat AUCs differ
                scores = rng.normal(size=(patients, len(classes))) + 1.5 * np.eye(len(classes))[labels]
                probabilities = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
                for patient in range(patients):
                    rows.append(
                        {
                            "patient_id": f"P{patient:02d}",
                            "label": classes[labels[patient]],
                            **{f"prob_{c}": probabilities[patient, k] for k, c in enumerate(classes)},
                            "cohort": "toy",
                            "scenario": scenario,
                            "train_missing_rate": train_rate,
                            "test_missing_rate": test_rate,
                            "model": model,
                            "repeat": repeat,
                            "fold": int(folds[patient]),
                        }
                    )
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed)  # row order must not matter


def sklearn_spread(predictions: pd.DataFrame, classes: list[str], model: str, scenario: str) -> np.ndarray:
    """Each repeat's AUC by scikit-learn, independently of the code under test."""
    aucs = []
    chosen = predictions[(predictions["model"] == model) & (predictions["scenario"] == scenario)]
    for _, rows in chosen.groupby("repeat"):
        labels = rows["label"].map({c: k for k, c in enumerate(classes)}).to_numpy()
        probabilities = rows[[f"prob_{c}" for c in classes]].to_numpy()
        if len(classes) == 2:
            aucs.append(roc_auc_score(labels, probabilities[:, 1]))
        else:
            aucs.append(roc_auc_score(labels, probabilities, multi_class="ovr", average="macro"))
    return np.array(aucs)


@pytest.mark.parametrize("classes", [["LUAD", "LUSC"], ["IDC", "ILC", "MIX"]])
def test_repeat_spread_matches_sklearn_per_repeat_aucs(classes):
    predictions = synthetic_predictions(classes, repeats=4)
    spread = repeat_auc_spread(predictions)
    assert len(spread) == 4  # two models x two scenarios
    for _, row in spread.iterrows():
        expected = sklearn_spread(predictions, classes, row["model"], row["scenario"])
        assert row["repeats"] == 4
        np.testing.assert_allclose([row[f"auc_repeat{r}"] for r in range(4)], expected, rtol=0, atol=1e-12)
        assert row["auc_sd"] == pytest.approx(np.std(expected, ddof=1), abs=1e-12)
        assert row["auc_min"] == pytest.approx(expected.min(), abs=1e-12)
        assert row["auc_max"] == pytest.approx(expected.max(), abs=1e-12)
    assert spread["auc_sd"].gt(0).all()


def test_metrics_md_gives_the_spread_only_with_several_repeats_and_always_says_the_models_are_fixed():
    classes = ["LUAD", "LUSC"]
    several = repeat_spread_markdown(synthetic_predictions(classes, repeats=3), 3, ["mosare", "abmil"])
    assert "trained models held fixed" in several
    assert "## toy: AUC spread across the 3 repeats" in several
    table = [line for line in several.splitlines() if line.startswith("| ")]
    assert table[0] == "| model | complete | train 0.5 / test 0.5 missing |"
    assert [line.split(" | ")[0] for line in table[1:]] == ["| mosare", "| abmil"]
    expected = sklearn_spread(synthetic_predictions(classes, repeats=3), classes, "mosare", "complete")
    assert f"SD {np.std(expected, ddof=1):.3f}, {expected.min():.3f}-{expected.max():.3f}" in table[1]

    single = repeat_spread_markdown(synthetic_predictions(classes, repeats=1), 1, ["mosare", "abmil"])
    assert "trained models held fixed" in single and "`train.repeats`" in single
    assert "| model |" not in single


def test_a_repeat_with_one_class_only_is_left_out_of_the_spread():
    classes = ["LUAD", "LUSC"]
    predictions = synthetic_predictions(classes, repeats=3)
    # in repeat 2 of one model x scenario only LUAD patients have predictions: no AUC there
    drop = (predictions["repeat"] == 2) & (predictions["label"] == "LUSC") & (predictions["model"] == "abmil")
    spread = repeat_auc_spread(predictions[~drop]).set_index(["model", "scenario"])
    assert np.isnan(spread.loc[("abmil", "complete"), "auc_repeat2"])
    assert spread.loc[("abmil", "complete"), "repeats"] == 2
    assert spread.loc[("mosare", "complete"), "repeats"] == 3
