"""Forest plot of a survival cohort's paired Harrell's C differences between MoSARe and every other model
(comparisons.tsv): the counterpart of ``comparisons`` for classification."""

from __future__ import annotations

from pathlib import Path

from mosare.reporting.cohort_figures import CohortFigure, CohortResults, register_cohort_figure


def draw(results: CohortResults, path: Path) -> None:
    from mosare.reporting.plots.evidence import plot_comparisons

    plot_comparisons(results.comparisons, path, difference_column="c_index_difference", metric="Harrell's C")


register_cohort_figure(
    CohortFigure(
        "c_index_comparisons",
        "Paired comparisons of MoSARe against every other model (the coxnet_rna reference row included) in every "
        "scenario, on the same patients: the difference in within-fold Harrell's C with its 95% paired-bootstrap "
        "interval (patients resampled, the trained models held fixed). Red points are significant after Holm's "
        "adjustment, over all comparisons of the cohort, of a two-sided p from the bootstrap standard error; the table "
        "is comparisons.tsv.",
        draw,
        task="survival",
    )
)
