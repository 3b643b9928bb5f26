"""Cohort-level figures: the registry draws every figure from a finished cohort's files (a new figure is one file in
src/mosare/reporting/figure_plugins/: tests/test_extending.py follows docs/extending.md's recipe)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from workflow_runs import (
    COHORT,
    finished_tiny_run,  # noqa: F401 (session fixture shared with test_orchestration)
    planned_jobs,
    snakemake,
)

from mosare.cohort.table import CohortTable
from mosare.core.paths import RESULTS_LAYOUT
from mosare.reporting import cohort_figures
from mosare.reporting.cohort_figures import CohortFigure, CohortResults, draw_cohort_figure, register_cohort_figure

CLASSES = ("A", "B")
MODELS = ("mosare", "late_fusion")


def finished_cohort(root: Path) -> CohortResults:
    """A cohort's results as training leaves them: cohort.tsv, metrics.tsv (long), comparisons.tsv, every
    out-of-fold prediction (predictions.tsv) and per-fold training histories under train/."""
    rng = np.random.default_rng(0)
    n = 12
    labels = tuple(CLASSES[i % 2] for i in range(n))
    CohortTable(
        tuple(f"p{i}" for i in range(n)), labels, tuple((f"s{i}",) for i in range(n)), rng.random((n, 3)) > 0.2
    ).write(root / "cohort.tsv")
    rows, predictions, comparisons = [], [], []
    scenarios = [("complete", 0.0, "complete"), ("masked_train_test", 0.5, "masked_train_test-0.5")]
    for model in MODELS:
        for scenario, rate, slug in scenarios:
            auc = 0.9 - rate * (0.2 if model == "mosare" else 0.6)
            keys = {
                "cohort": "toy",
                "model": model,
                "scenario": scenario,
                "train_missing_rate": rate,
                "test_missing_rate": rate,
            }
            for metric, value in (("auc", auc), ("brier", 0.2 + rate / 4)):
                rows.append({
                    **keys, "metric": metric, "pooled": value, "ci_low": value - 0.05,
                    "ci_high": min(value + 0.05, 1.0), "mean": value, "std": 0.03,
                })  # fmt: skip
            if model != "mosare":
                comparisons.append({
                    **keys, "model": "mosare", "compared_to": model, "auc_difference": 0.1, "ci_low": -0.05,
                    "ci_high": 0.25, "p_delong": 0.04, "p_holm": 0.08, "significant": False, "n_patients": n,
                })  # fmt: skip
            for fold in range(2):
                probability = rng.random(n // 2)
                predictions.append(pd.DataFrame({
                    **keys, "repeat": 0, "fold": fold, "patient_id": [f"p{i}" for i in range(fold, n, 2)],
                    "label": list(labels[fold::2]), "prob_A": 1 - probability, "prob_B": probability,
                }))  # fmt: skip
                history = root / "train" / model / slug / f"fold{fold}" / "history.tsv"
                history.parent.mkdir(parents=True)
                epochs = np.arange(4)
                pd.DataFrame({
                    "epoch": epochs, "lr": 1e-3, "loss": 1 / (1 + epochs), "ce": 0.8 / (1 + epochs),
                    "val_auc": 0.6 + 0.05 * epochs, "val_loss": 0.7 - 0.02 * epochs, "selected": epochs == 2,
                }).to_csv(history, sep="\t", index=False)  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "metrics.tsv", sep="\t", index=False)
    pd.DataFrame(comparisons).to_csv(root / "comparisons.tsv", sep="\t", index=False)
    pd.concat(predictions).to_csv(root / "predictions.tsv", sep="\t", index=False)
    return CohortResults.read(
        "toy", CLASSES, cohort_table=root / "cohort.tsv", metrics=root / "metrics.tsv",
        comparisons=root / "comparisons.tsv", predictions=root / "predictions.tsv", train_dir=root / "train",
    )  # fmt: skip


def assert_drawn(path: Path) -> None:
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 5, f"{path} is blank"


@pytest.mark.parametrize("name", sorted(cohort_figures.registered_figures("classification")))
def test_every_classification_figure_draws_from_a_finished_cohort(tmp_path, name):
    results = finished_cohort(tmp_path)
    draw_cohort_figure(name, results, tmp_path / "figures" / f"{name}.png")
    assert_drawn(tmp_path / "figures" / f"{name}.png")


def test_a_cohort_without_comparisons_still_draws_its_forest_plot(tmp_path):
    finished_cohort(tmp_path)
    (tmp_path / "comparisons.tsv").write_text("")  # what training writes when MoSARe was not among the models
    results = CohortResults.read(
        "toy", CLASSES, cohort_table=tmp_path / "cohort.tsv", metrics=tmp_path / "metrics.tsv",
        comparisons=tmp_path / "comparisons.tsv", predictions=tmp_path / "predictions.tsv", train_dir=tmp_path / "train",
    )  # fmt: skip
    assert results.comparisons.empty
    draw_cohort_figure("comparisons", results, tmp_path / "comparisons.png")
    assert (tmp_path / "comparisons.png").stat().st_size > 0


def test_results_offer_one_scenario_s_predictions_of_every_model_and_fold(tmp_path):
    results = finished_cohort(tmp_path)
    complete = results.scenario_predictions("complete")
    assert sorted(complete.loc[complete["model"] == "mosare", "patient_id"]) == sorted(f"p{i}" for i in range(12))
    assert complete.groupby(["model", "fold"]).size().to_dict() == {(m, f): 6 for m in MODELS for f in (0, 1)}
    with pytest.raises(ValueError, match="no predictions in scenario 'masked_train'"):
        results.scenario_predictions("masked_train")


def test_figure_names_are_file_names_and_unique():
    def draw(results, path):
        raise AssertionError("never drawn")

    with pytest.raises(ValueError, match="must match"):
        register_cohort_figure(CohortFigure("AUC plot", "", draw))
    existing = next(iter(cohort_figures.registered_figures().values()))
    with pytest.raises(ValueError, match=f"{existing.name!r} is registered twice"):
        register_cohort_figure(CohortFigure(existing.name, "", draw))
    with pytest.raises(KeyError, match="no cohort figure 'missing'"):
        draw_cohort_figure("missing", None, "unused.png")


@pytest.mark.slow  # the shared tiny run takes minutes on 2 cores
def test_the_workflow_draws_every_classification_figure_after_a_real_training_run(finished_tiny_run, tmp_path):
    run = finished_tiny_run
    targets = [
        RESULTS_LAYOUT.cohort_figure(COHORT, name) for name in cohort_figures.registered_figures("classification")
    ]
    assert planned_jobs(run.workdir, *targets, repo=run.repo) == {"draw_cohort_figure": len(targets)}

    workdir = tmp_path / "work"
    shutil.copytree(run.workdir, workdir)  # a copy: the shared run stays as it was
    snakemake(workdir, *targets, "--allowed-rules", "draw_cohort_figure", repo=run.repo)
    for target in targets:
        assert_drawn(workdir / target)
