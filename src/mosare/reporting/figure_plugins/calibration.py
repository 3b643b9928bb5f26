"""Reliability diagram on complete data: MoSARe and the baseline with the best pooled AUC."""

from __future__ import annotations

from pathlib import Path

from mosare.reporting.cohort_figures import CohortFigure, CohortResults, register_cohort_figure


def draw(results: CohortResults, path: Path) -> None:
    from mosare.evaluation.results import calibration_pair, pooled_predictions
    from mosare.reporting.plots.evidence import plot_reliability

    models = list(dict.fromkeys(results.metrics["model"]))
    plot_reliability(pooled_predictions(results.predictions), calibration_pair(results.metrics, models), path)


register_cohort_figure(
    CohortFigure(
        "calibration",
        "Reliability diagram on complete data: for MoSARe and the baseline with the best pooled AUC, the observed "
        "frequency of the last class against the mean predicted probability in 15 equal-width bins (marker area: "
        "patients in the bin), out-of-fold probabilities averaged over repeats. Points on the diagonal are well "
        "calibrated. Brier score and ECE of every model are in metrics.tsv and metrics.md.",
        draw,
    )
)
