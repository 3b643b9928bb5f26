"""Forest plot of the paired AUC differences between MoSARe and every other model (comparisons.tsv)."""

from __future__ import annotations

from pathlib import Path

from mosare.reporting.cohort_figures import CohortFigure, CohortResults, register_cohort_figure


def draw(results: CohortResults, path: Path) -> None:
    from mosare.reporting.plots.evidence import plot_comparisons

    plot_comparisons(results.comparisons, path)


register_cohort_figure(
    CohortFigure(
        "comparisons",
        "Paired comparisons of MoSARe against every other model in every scenario, on the same patients: the "
        "difference in pooled out-of-fold AUC with its 95% paired-bootstrap interval (patients resampled within each "
        "class, the same resamples for both models). Red points are significant after Holm's adjustment of DeLong's "
        "two-sided p over all comparisons of the cohort; the table is comparisons.tsv.",
        draw,
    )
)
