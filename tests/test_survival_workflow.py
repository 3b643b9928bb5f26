"""A tiny survival demo cohort through the real workflow (issue 22): metrics.tsv, its cohort figures, final models,
deploy with external validation and attention maps, and the HTML report showing them."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
from report.render_report import embedded_results
from test_cohort_figures import assert_drawn
from workflow_runs import COHORT, make_workdir, snakemake, tiny_demo_config

from mosare.core.paths import RESULTS_LAYOUT
from mosare.reporting.cohort_figures import registered_figures


def tiny_survival_config() -> dict:
    """tiny_demo_config as a survival cohort: 24 patients (enough events per fold for 2 time bins)."""
    config = copy.deepcopy(tiny_demo_config())
    cohort = config["cohorts"][COHORT]
    del cohort["classes"]
    cohort["task"] = "survival"
    cohort["demo"]["patients"] = 24
    config["train"].update(
        {"models": ["mosare", "rna_mlp"], "val_fraction": 0.3, "batch_size": 4, "survival": {"bins": 2}}
    )
    # Its own final models deployed back to it: the deploy rules' wiring for a survival source, at no extra cohort.
    config["deploy"] = {"from": COHORT, "to": [COHORT]}
    return config


@pytest.mark.slow
def test_survival_demo_runs_to_metrics_figures_final_models_deploy_and_report(tmp_path) -> None:
    workdir = make_workdir(tmp_path / "run", tiny_survival_config())
    figures = [RESULTS_LAYOUT.cohort_figure(COHORT, name) for name in registered_figures("survival")]
    assert {Path(figure).name for figure in figures} == {
        "c_index_comparisons.png",
        "kaplan_meier.png",
        "survival_calibration.png",
    }
    deployed = [
        RESULTS_LAYOUT.deploy_predictions(COHORT, COHORT), RESULTS_LAYOUT.deploy_kaplan_meier(COHORT, COHORT),
        RESULTS_LAYOUT.deploy_attention(COHORT, COHORT),
    ]  # fmt: skip
    targets = [f"results/{COHORT}/metrics.tsv", *figures, *deployed]
    snakemake(workdir, "--cores", "2", *targets)
    results = workdir / "results" / COHORT
    sheet = pd.read_csv(workdir / "results" / "demo" / COHORT / "samples.tsv", sep="\t")
    assert {"time", "event"} <= set(sheet.columns) and "label" not in sheet.columns
    metrics = pd.read_csv(results / "metrics.tsv", sep="\t")
    assert {"harrell_c", "uno_c", "ibs"} <= set(metrics["metric"])
    assert any(metric.startswith("td_auc@") for metric in metrics["metric"])
    assert set(metrics["model"]) == {"mosare", "rna_mlp", "coxnet_rna"}
    harrell = metrics[metrics["metric"] == "harrell_c"]
    assert harrell["pooled"].between(0, 1).all() and harrell["ci_low"].notna().all()
    comparisons = pd.read_csv(results / "comparisons.tsv", sep="\t")
    assert set(comparisons["compared_to"]) == {"rna_mlp", "coxnet_rna"} and "p_holm" in comparisons
    predictions = pd.read_csv(results / "predictions.tsv", sep="\t")
    assert {"time", "event", "risk"} <= set(predictions.columns)
    assert any(column.startswith("survival@") for column in predictions.columns)
    assert "HARRELL_C" in (results / "metrics.md").read_text()
    assert predictions.groupby(["model", "scenario", "repeat", "fold"])["risk_cutoff"].nunique().eq(1).all()
    for figure in figures:
        assert_drawn(workdir / figure)

    models = results / "models"
    assert sorted(p.name for p in models.iterdir() if p.is_dir()) == ["mosare", "rna_mlp"]
    assert "Harrell's C" in (models / "mosare" / "model_card.md").read_text()
    deployed_predictions = pd.read_csv(workdir / deployed[0], sep="\t")
    assert {"risk", "risk_group", "risk_cutoff", "time", "event"} <= set(deployed_predictions.columns)
    assert len(deployed_predictions) == 2 * 24
    external = pd.read_csv(workdir / RESULTS_LAYOUT.deploy_metrics(COHORT, COHORT), sep="\t")
    assert {"harrell_c", "uno_c"} <= set(external["metric"]) and external["ci_low"].notna().any()
    assert_drawn(workdir / deployed[1])
    assert list((workdir / deployed[2]).glob("*.geojson")), "attention maps of every slide"

    report = workdir / "report.html"
    snakemake(workdir, *targets, "--report", str(report))
    in_report = {name for name, r in embedded_results(report.read_text(encoding="utf-8")).items()}
    assert {*figures, deployed[1]} <= in_report


def test_a_survival_cohort_with_compare_encoders_plans_its_comparison_by_harrell_c(tmp_path) -> None:
    """``rule all`` of a survival cohort with a compared encoder plans that encoder's training and the comparison
    (its table is by Harrell's C: tests/test_encoder_comparison.py)."""
    from workflow_runs import planned_jobs

    config = tiny_survival_config()
    config["compare_encoders"] = ["efficientnet-lite1"]
    planned = planned_jobs(make_workdir(tmp_path / "run", config))
    folds = config["train"]["folds"]
    assert planned["encoder_comparison"] == 1 and planned["evaluate_compared_encoder"] == 1
    assert planned["train_fold_compared_encoder"] == folds
