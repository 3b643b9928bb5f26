"""Cohort-level figures: the registry draws every figure from a finished cohort's files, and a new figure is one file
in src/mosare/cohort_figures/ (shown here by adding one, drawing it and planning it)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from workflow_runs import COHORT, make_workdir, planned_jobs, snakemake, snapshot_workflow, tiny_demo_config
from workflow_runs import finished_tiny_run  # noqa: F401 (session fixture shared with test_orchestration)

from mosare import cohort_figures
from mosare.cohort import CohortTable
from mosare.cohort_figures import CohortFigure, CohortResults, draw_cohort_figure, register_cohort_figure
from mosare.paths import RESULTS_LAYOUT

CLASSES = ("A", "B")
MODELS = ("mosare", "late_fusion")

NEW_FIGURE = '''"""Patients per class: the cohort's class balance."""

from mosare.cohort_figures import CohortFigure, register_cohort_figure


def draw(results, path):
    import matplotlib.pyplot as plt

    from mosare.plots import save_png

    figure, axes = plt.subplots(figsize=(4, 3))
    axes.bar(results.classes, [results.table.labels.count(name) for name in results.classes], color="tab:blue")
    save_png(figure, path, dpi=80)


register_cohort_figure(CohortFigure("patients_per_class", "Patients per class.", draw))
'''


def finished_cohort(root: Path) -> CohortResults:
    """A cohort's results as training leaves them: cohort.tsv, metrics.tsv (long) and per-fold predictions."""
    rng = np.random.default_rng(0)
    n = 12
    labels = tuple(CLASSES[i % 2] for i in range(n))
    CohortTable(
        tuple(f"p{i}" for i in range(n)), labels, tuple((f"s{i}",) for i in range(n)), rng.random((n, 3)) > 0.2
    ).write(root / "cohort.tsv")
    rows = []
    for model in MODELS:
        for scenario, rate in [("complete", 0.0), ("masked_train_test", 0.3), ("masked_train_test", 0.5)]:
            auc = 0.9 - rate * (0.2 if model == "mosare" else 0.6)
            rows.append({
                "cohort": "toy", "model": model, "scenario": scenario, "train_missing_rate": rate,
                "test_missing_rate": rate, "metric": "auc", "pooled": auc, "ci_low": auc - 0.05,
                "ci_high": min(auc + 0.05, 1.0), "mean": auc, "std": 0.03,
            })  # fmt: skip
        for fold in range(2):
            predictions = root / "train" / model / "complete" / f"fold{fold}" / "predictions.tsv"
            predictions.parent.mkdir(parents=True)
            probability = rng.random(n // 2)
            pd.DataFrame({
                "patient_id": [f"p{i}" for i in range(fold, n, 2)], "label": list(labels[fold::2]),
                "prob_A": 1 - probability, "prob_B": probability,
            }).to_csv(predictions, sep="\t", index=False)  # fmt: skip
    pd.DataFrame(rows).to_csv(root / "metrics.tsv", sep="\t", index=False)
    return CohortResults.read(
        "toy", CLASSES, cohort_table=root / "cohort.tsv", metrics=root / "metrics.tsv", train_dir=root / "train"
    )


def assert_drawn(path: Path) -> None:
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 5, f"{path} is blank"


@pytest.mark.parametrize("name", sorted(cohort_figures.registered_figures()))
def test_every_registered_figure_draws_from_a_finished_cohort(tmp_path, name):
    results = finished_cohort(tmp_path)
    draw_cohort_figure(name, results, tmp_path / "figures" / f"{name}.png")
    assert_drawn(tmp_path / "figures" / f"{name}.png")


def test_results_offer_the_stacked_predictions_of_every_fold(tmp_path):
    results = finished_cohort(tmp_path)
    predictions = results.predictions("mosare")
    assert sorted(predictions["patient_id"]) == sorted(f"p{i}" for i in range(12))
    assert predictions.groupby("fold").size().to_dict() == {0: 6, 1: 6}
    with pytest.raises(FileNotFoundError, match="abmil"):
        results.predictions("abmil")


@pytest.fixture
def figure_plugin_dir(tmp_path, monkeypatch) -> Path:
    """A second folder of the cohort_figures package (the registry is restored afterwards)."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    monkeypatch.setattr(cohort_figures, "__path__", [*cohort_figures.__path__, str(plugins)])
    monkeypatch.setattr(cohort_figures, "_REGISTRY", dict(cohort_figures._REGISTRY))
    yield plugins
    sys.modules.pop("mosare.cohort_figures.patients_per_class", None)


def test_a_new_cohort_figure_is_one_file_that_the_registry_finds_and_draws(tmp_path, figure_plugin_dir):
    (figure_plugin_dir / "patients_per_class.py").write_text(NEW_FIGURE)
    results = finished_cohort(tmp_path / "results")

    assert "patients_per_class" in cohort_figures.registered_figures()
    draw_cohort_figure("patients_per_class", results, tmp_path / "patients_per_class.png")
    assert_drawn(tmp_path / "patients_per_class.png")


def test_a_new_cohort_figure_file_is_planned_for_every_cohort(tmp_path):
    repo = snapshot_workflow(tmp_path / "workflow")
    (repo / "src" / "mosare" / "cohort_figures" / "patients_per_class.py").write_text(NEW_FIGURE)
    workdir = make_workdir(tmp_path / "work", tiny_demo_config())
    target = RESULTS_LAYOUT.cohort_figure(COHORT, "patients_per_class")

    planned = planned_jobs(workdir, target, repo=repo)
    assert planned.get("draw_cohort_figure") == 1 and "train_and_evaluate" in planned
    everything = planned_jobs(workdir, repo=repo)
    assert everything.get("draw_cohort_figure") == len(cohort_figures.registered_figures()) + 1


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


def test_the_docs_show_how_to_add_a_cohort_figure():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "architecture.md").read_text()
    how_to = docs[docs.index("## How to extend"):]
    assert "src/mosare/cohort_figures/" in how_to and "register_cohort_figure(CohortFigure(" in how_to
    for name in cohort_figures.registered_figures():
        assert f"`{name}`" in docs, f"docs/architecture.md does not name the built-in figure {name}"


@pytest.mark.slow  # the shared tiny run takes minutes on 2 cores
def test_the_workflow_draws_every_registered_figure_after_a_real_training_run(finished_tiny_run, tmp_path):
    run = finished_tiny_run
    targets = [RESULTS_LAYOUT.cohort_figure(COHORT, name) for name in cohort_figures.registered_figures()]
    assert planned_jobs(run.workdir, *targets, repo=run.repo) == {"draw_cohort_figure": len(targets)}

    workdir = tmp_path / "work"
    shutil.copytree(run.workdir, workdir)  # a copy: the shared run stays as it was
    snakemake(workdir, *targets, "--allowed-rules", "draw_cohort_figure", repo=run.repo)
    for target in targets:
        assert_drawn(workdir / target)
