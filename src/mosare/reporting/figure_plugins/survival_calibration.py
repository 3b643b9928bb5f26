"""Calibration of a survival cohort's predicted survival at its earliest horizon: MoSARe (or the first model) on
complete data, mean predicted survival against Kaplan-Meier observed survival per group of predicted survival."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mosare.evaluation.survival_columns import SURVIVAL_PREFIX, horizon_columns
from mosare.reporting.cohort_figures import CohortFigure, CohortResults, register_cohort_figure

CALIBRATION_GROUPS = 5


def earliest_horizon(columns: Iterable[str], cohort: str) -> tuple[str, float]:
    """(column, horizon) of the earliest ``survival@{h}`` column."""
    horizons = horizon_columns(columns)
    if not horizons:
        raise ValueError(f"{cohort}: predictions.tsv has no {SURVIVAL_PREFIX}{{h}} column")
    column = min(horizons, key=horizons.__getitem__)
    return column, horizons[column]


def draw(results: CohortResults, path: Path) -> None:
    from mosare.evaluation.survival_metrics import survival_calibration
    from mosare.reporting.plots.survival import plot_survival_calibration

    _, title, rows = results.shown_model_predictions()
    column, horizon = earliest_horizon(rows.columns, results.cohort)
    calibration = survival_calibration(
        rows["time"].to_numpy(), rows["event"].to_numpy(), rows[column].to_numpy(), horizon, CALIBRATION_GROUPS
    )
    plot_survival_calibration(calibration, horizon, path, time_unit=str(results.time_unit), title=title)


register_cohort_figure(
    CohortFigure(
        "survival_calibration",
        "Calibration of MoSARe's predicted survival on complete data (first repeat; the first model of metrics.tsv "
        "when MoSARe was not trained, as the title says) at the earliest horizon of predictions.tsv (its first "
        "survival@ column: the horizon the most patients are followed up to, so the observed survival is the "
        f"best known). Out-of-fold patients are split into {CALIBRATION_GROUPS} equal-count groups of predicted "
        "survival; each point is a group's mean predicted survival against its Kaplan-Meier observed survival at "
        "the horizon, with its 95% log-log interval (marker area: patients). Predicted survival probabilities share "
        "one scale across folds, so pooling every fold's test patients is valid here, whereas risk scores are not "
        "pooled (the Kaplan-Meier risk groups are formed per fold). Points on the diagonal are well calibrated; a "
        "group followed up less than the horizon has no observed value. The integrated Brier score is in "
        "metrics.tsv.",
        draw,
        task="survival",
    )
)
