"""Kaplan-Meier curves of a survival cohort's out-of-fold risk groups: MoSARe (or the first model) on complete
data, each test patient grouped by its own fold's training-risk median."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path

import pandas as pd

from mosare.evaluation.survival_columns import RISK_CUTOFF
from mosare.reporting.cohort_figures import CohortFigure, CohortResults, register_cohort_figure


def fold_cutoffs(rows: pd.DataFrame, cohort: str) -> dict[Hashable, Sequence[float]]:
    """{fold: [risk_cutoff]} of one model's predictions in one scenario and repeat; the cut-off is one number per
    fold (its model's training-risk median), so a fold with two is an error."""
    if RISK_CUTOFF not in rows.columns:
        raise ValueError(
            f"{cohort}: predictions.tsv has no {RISK_CUTOFF!r} column (written by a training run before the "
            "risk-group cut-offs existed); rerun rule train_and_evaluate"
        )
    per_fold = rows.groupby("fold")[RISK_CUTOFF]
    varying = [int(fold) for fold, count in per_fold.nunique(dropna=False).items() if count != 1]
    if varying:
        raise ValueError(f"{cohort}: fold(s) {varying} have more than one {RISK_CUTOFF} in one model and scenario")
    return {int(fold): [float(value)] for fold, value in per_fold.first().items()}


def draw(results: CohortResults, path: Path) -> None:
    from mosare.reporting.plots.survival import plot_risk_group_kaplan_meier

    _, title, rows = results.shown_model_predictions()
    plot_risk_group_kaplan_meier(
        rows["time"].to_numpy(), rows["event"].to_numpy(), rows["risk"].to_numpy(), rows["fold"].to_numpy(),
        fold_cutoffs(rows, results.cohort), path, time_unit=str(results.time_unit), title=title,
    )  # fmt: skip


register_cohort_figure(
    CohortFigure(
        "kaplan_meier",
        "Kaplan-Meier curves of MoSARe's out-of-fold risk groups on complete data (first repeat; the first model of "
        "metrics.tsv when MoSARe was not trained, as the title says), with pointwise 95% log-log confidence bands, "
        "censoring ticks and the numbers at risk under the axis. Each test patient is high risk when its risk exceeds "
        "its own fold's cut-off: the median of that fold model's risks on its own training patients, never on test "
        "patients, so a patient's group depends on no other test patient. Risks are on one scale only within one "
        "fold's model, so they are never pooled across folds: the groups are formed per fold, and only then are "
        "their patients pooled into two curves. The log-rank p comes from scikit-survival's compare_survival "
        "(lifelines cannot be installed beside pandas 3). Harrell's and Uno's C, the time-dependent AUC and the "
        "integrated Brier score of every model are in metrics.tsv.",
        draw,
        task="survival",
    )
)
