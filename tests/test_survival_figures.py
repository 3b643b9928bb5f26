"""A survival cohort's figures (issue 22): Kaplan-Meier risk groups and calibration, drawn through the cohort figure
registry from the files survival training writes; each cohort gets the figures of its task."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_cohort_figures import assert_drawn, finished_cohort

from mosare.cohort.table import CohortTable
from mosare.evaluation.survival_metrics import risk_groups
from mosare.reporting import cohort_figures
from mosare.reporting.cohort_figures import CohortFigure, CohortResults, draw_cohort_figure, register_cohort_figure
from mosare.reporting.plots import survival as survival_plots

SURVIVAL_FIGURES = {"c_index_comparisons", "kaplan_meier", "survival_calibration"}
# A fold's cut-off is its own model's training-risk median: far apart here, so another fold's (or a pooled) cut-off
# would put many patients in the other group.
CUTOFFS = {0: -1.0, 1: 1.0}
HORIZONS = (24.0, 6.0)  # written latest first: the calibration must take the earliest, not the first column


def write_survival_results(root: Path, models: tuple[str, ...] = ("mosare", "rna_mlp"), n: int = 40) -> None:
    """A survival cohort's results as training leaves them: cohort.tsv (times and events, no labels), metrics.tsv,
    comparisons.tsv and predictions.tsv (time, event, risk, risk_cutoff, survival@{h}) for 2 folds, 2 scenarios."""
    rng = np.random.default_rng(3)
    patients = [f"p{i}" for i in range(n)]
    fold = np.arange(n) % 2
    risk = rng.normal(0.0, 1.0, n) + np.where(fold == 0, -1.0, 1.0)  # each fold's model on its own scale
    time = np.round(rng.exponential(20.0 / np.exp(0.5 * risk)) + 0.5, 2)
    event = (rng.random(n) < 0.7).astype(int)
    CohortTable(
        tuple(patients), ("",) * n, tuple((f"s{i}",) for i in range(n)), np.ones((n, 3), bool), times=time, events=event
    ).write(root / "cohort.tsv")
    metrics, predictions = [], []
    for model in models:
        for scenario, rate in (("complete", 0.0), ("masked_train_test", 0.5)):
            keys = {"cohort": "surv", "model": model, "scenario": scenario, "train_missing_rate": rate,
                    "test_missing_rate": rate}  # fmt: skip
            for metric in ("harrell_c", "uno_c", "td_auc@6", "ibs"):
                metrics.append({**keys, "metric": metric, "pooled": 0.7, "ci_low": 0.6, "ci_high": 0.8})
            frame = pd.DataFrame({
                "patient_id": patients, "time": time, "event": event, "risk": risk + rate,
                "risk_cutoff": [CUTOFFS[f] + rate for f in fold],
                **{f"survival@{h:g}": np.exp(-h / 20.0 * np.exp(0.5 * (risk + rate))) for h in HORIZONS},
                **keys, "repeat": 0, "fold": fold,
            })  # fmt: skip
            predictions.append(frame.sort_values("fold", kind="stable"))
    pd.DataFrame(metrics).to_csv(root / "metrics.tsv", sep="\t", index=False)
    (root / "comparisons.tsv").write_text("")
    pd.concat(predictions).to_csv(root / "predictions.tsv", sep="\t", index=False)


def classification_results(root: Path) -> CohortResults:
    root.mkdir()
    return finished_cohort(root)


def read_survival_results(root: Path, time_unit: str | None = "months") -> CohortResults:
    return CohortResults.read(
        "surv", [], cohort_table=root / "cohort.tsv", metrics=root / "metrics.tsv",
        comparisons=root / "comparisons.tsv", predictions=root / "predictions.tsv", train_dir=root / "train",
        time_unit=time_unit,
    )  # fmt: skip


@pytest.fixture
def survival_results(tmp_path) -> CohortResults:
    write_survival_results(tmp_path)
    return read_survival_results(tmp_path)


@pytest.fixture
def drawn(monkeypatch) -> dict[str, dict]:
    """What each survival plot was called with (the real plots still draw)."""
    calls: dict[str, dict] = {}
    for name in ("plot_risk_group_kaplan_meier", "plot_survival_calibration"):
        real = getattr(survival_plots, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls[_name] = {"args": args, **kwargs}
            return _real(*args, **kwargs)

        monkeypatch.setattr(survival_plots, name, spy)
    return calls


def test_registered_figures_filter_by_task():
    every = cohort_figures.registered_figures()
    survival = cohort_figures.registered_figures("survival")
    classification = cohort_figures.registered_figures("classification")
    assert set(survival) == SURVIVAL_FIGURES
    assert {"roc", "calibration", "training_curves"} <= set(classification)
    assert not set(survival) & set(classification) and set(every) == set(survival) | set(classification)
    assert all(figure.task == "survival" for figure in survival.values())
    with pytest.raises(ValueError, match="task must be one of classification, survival"):
        cohort_figures.registered_figures("regression")
    with pytest.raises(ValueError, match="task must be one of"):
        register_cohort_figure(CohortFigure("regression_plot", "", lambda results, path: None, task="regression"))


def test_a_survival_cohort_s_results_read_without_classes_and_carry_the_time_unit(tmp_path, survival_results):
    assert survival_results.task == "survival" and survival_results.classes == ()
    assert survival_results.time_unit == "months" and survival_results.table.is_survival
    with pytest.raises(ValueError, match="survival cohort: its results need the time_unit"):
        read_survival_results(tmp_path, time_unit=None)
    classification = classification_results(tmp_path / "classification")
    assert classification.task == "classification" and classification.time_unit is None


@pytest.mark.parametrize("name", sorted(SURVIVAL_FIGURES))
def test_every_survival_figure_draws_from_a_finished_survival_cohort(tmp_path, survival_results, name):
    draw_cohort_figure(name, survival_results, tmp_path / "figures" / f"{name}.png")
    assert_drawn(tmp_path / "figures" / f"{name}.png")


def test_kaplan_meier_groups_each_fold_by_its_own_training_cut_off(tmp_path, survival_results, drawn):
    draw_cohort_figure("kaplan_meier", survival_results, tmp_path / "km.png")
    assert_drawn(tmp_path / "km.png")
    call = drawn["plot_risk_group_kaplan_meier"]
    time, event, risk, fold, cutoffs, _ = call["args"]
    assert call["time_unit"] == "months" and call["title"] == "surv, mosare"
    assert cutoffs == {f: [c] for f, c in CUTOFFS.items()}  # MoSARe, complete scenario (rate 0)
    expected = pd.read_csv(tmp_path / "predictions.tsv", sep="\t")
    expected = expected[(expected["model"] == "mosare") & (expected["scenario"] == "complete")]
    np.testing.assert_array_equal(risk, expected["risk"].to_numpy())
    groups = risk_groups(risk, fold, cutoffs)
    own_cutoff = np.array([CUTOFFS[f] for f in fold])
    np.testing.assert_array_equal(groups, (risk > own_cutoff).astype(int))
    # The cut-offs matter: one shared cut-off (the pooled median) would group these patients otherwise.
    assert (groups != (risk > np.median(risk)).astype(int)).any()


def test_kaplan_meier_refuses_predictions_without_the_fold_cut_off(tmp_path, survival_results):
    predictions = survival_results.predictions.drop(columns="risk_cutoff")
    old = CohortResults(**{**survival_results.__dict__, "predictions": predictions})
    with pytest.raises(ValueError, match="no 'risk_cutoff' column.*rerun rule train_and_evaluate"):
        draw_cohort_figure("kaplan_meier", old, tmp_path / "km.png")


def test_calibration_is_at_the_earliest_horizon(tmp_path, survival_results, drawn):
    draw_cohort_figure("survival_calibration", survival_results, tmp_path / "calibration.png")
    call = drawn["plot_survival_calibration"]
    calibration, horizon, _ = call["args"]
    assert horizon == min(HORIZONS) and call["time_unit"] == "months"
    assert calibration["patients"].sum() == 40  # MoSARe's out-of-fold patients of the complete scenario, pooled


def test_without_mosare_the_first_model_is_shown_and_the_title_says_so(tmp_path, drawn):
    write_survival_results(tmp_path, models=("rna_mlp", "coxnet_rna"))
    results = read_survival_results(tmp_path, time_unit="days")
    for name in sorted(SURVIVAL_FIGURES):
        draw_cohort_figure(name, results, tmp_path / f"{name}.png")
        assert_drawn(tmp_path / f"{name}.png")
    for call in drawn.values():
        assert call["title"] == "surv, rna_mlp (mosare not trained)" and call["time_unit"] == "days"


def test_a_figure_of_another_task_is_refused_naming_the_cohort_s_figures(tmp_path, survival_results):
    with pytest.raises(ValueError, match="'roc' is drawn for classification cohorts.*kaplan_meier, survival_calib"):
        draw_cohort_figure("roc", survival_results, tmp_path / "roc.png")
    with pytest.raises(ValueError, match="'kaplan_meier' is drawn for survival cohorts"):
        draw_cohort_figure("kaplan_meier", classification_results(tmp_path / "classification"), tmp_path / "km.png")


def test_the_c_index_forest_plot_draws_survival_comparisons(tmp_path, survival_results):
    """comparisons.tsv of a survival cohort (c_index_difference, Holm's p) through the shared forest plot."""
    comparisons = pd.DataFrame({
        "cohort": "surv", "model": "mosare", "compared_to": ["rna_mlp", "coxnet_rna"], "scenario": "complete",
        "train_missing_rate": 0.0, "test_missing_rate": 0.0, "c_index_difference": [0.05, -0.02],
        "ci_low": [0.01, -0.08], "ci_high": [0.09, 0.04], "p_holm": [0.03, 0.6],
    })  # fmt: skip
    results = dataclasses.replace(survival_results, comparisons=comparisons)
    draw_cohort_figure("c_index_comparisons", results, tmp_path / "forest.png")
    assert_drawn(tmp_path / "forest.png")
