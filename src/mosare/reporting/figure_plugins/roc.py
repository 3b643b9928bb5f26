"""ROC curves in the complete-data scenario: MoSARe against the baselines, test folds pooled."""

from __future__ import annotations

from pathlib import Path

from mosare.reporting.cohort_figures import CohortFigure, CohortResults, register_cohort_figure


def draw(results: CohortResults, path: Path) -> None:
    from mosare.evaluation.results import probability_columns
    from mosare.reporting.plots.training import plot_roc

    complete = results.scenario_predictions("complete")
    plot_roc(complete, probability_columns(complete), path)


register_cohort_figure(
    CohortFigure(
        "roc",
        "ROC curves in the complete-data scenario: MoSARe against the late-fusion, ABMIL (slides only), RNA-MLP and "
        "report-MLP baselines. Each curve pools the test-fold predictions of all folds of the first repeat (every "
        "patient is predicted once, by a model that never saw it); with two classes the second class is the positive "
        "one, with more the curve is the micro-average over one-vs-rest problems. Probabilities come from the "
        "checkpoint each fold selected on its validation split, never on the test fold. A single-modality baseline "
        "predicts the training folds' class prior for patients lacking its modality, so every curve covers the same "
        "patients. Pooled AUCs with bootstrap CIs and per-fold AUCs are in metrics.tsv.",
        draw,
    )
)
