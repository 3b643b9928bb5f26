"""Evidence figures: a forest plot of paired AUC differences and a reliability diagram."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mosare.evaluation.evidence import ECE_BINS, reliability_curve
from mosare.evaluation.metrics import scenario_label
from mosare.reporting.plots import save_png


def plot_comparisons(
    comparisons: pd.DataFrame, path: str | Path, difference_column: str = "auc_difference", metric: str = "AUC"
) -> None:
    """One row per (scenario, compared model): the ``metric`` difference (``difference_column``: AUC, or a survival
    cohort's Harrell's C) with its 95% CI; filled when Holm's p < 0.05."""
    if comparisons.empty:
        figure, axis = plt.subplots(figsize=(6, 1.5))
        axis.text(0.5, 0.5, "no comparison: the reference model was not run", ha="center", va="center")
        axis.set_axis_off()
        save_png(figure, path, dpi=110)
        return
    labels = [
        f"{scenario_label(r.scenario, r.train_missing_rate, r.test_missing_rate)}: vs {r.compared_to}"
        for r in comparisons.itertuples()
    ]
    y = np.arange(len(comparisons))[::-1]
    figure, axis = plt.subplots(figsize=(8, 0.28 * len(comparisons) + 1.2))
    difference = comparisons[difference_column].to_numpy()
    errors = np.abs(np.stack([difference - comparisons["ci_low"], comparisons["ci_high"] - difference]))
    significant = (comparisons["p_holm"] < 0.05).to_numpy()
    axis.errorbar(difference, y, xerr=errors, fmt="none", ecolor="0.4", lw=1)
    axis.scatter(
        difference[~significant], y[~significant], facecolors="white", edgecolors="C0", zorder=3, label="p_holm >= 0.05"
    )
    axis.scatter(difference[significant], y[significant], color="C3", zorder=3, label="p_holm < 0.05")
    axis.axvline(0, color="0.2", lw=0.8)
    axis.set_yticks(y, labels, fontsize=7)
    reference = comparisons["model"].iloc[0]
    axis.set(xlabel=f"{metric} difference, {reference} minus the other model (95% paired-bootstrap CI)",
             title=f"{comparisons['cohort'].iloc[0]}: paired comparisons")  # fmt: skip
    axis.legend(fontsize=7, loc="lower right")
    save_png(figure, path, dpi=110, tight=True)


def plot_reliability(pooled: pd.DataFrame, models: Sequence[str], path: str | Path) -> None:
    """Reliability diagram on complete data: observed frequency of the last class against the mean predicted
    probability in 15 equal-width bins (marker area: patients in the bin), one line per model."""
    figure, axis = plt.subplots(figsize=(4.8, 4.8))
    axis.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--", label="perfect calibration")
    complete = pooled[pooled["scenario"] == "complete"]
    columns = [c for c in pooled.columns if c.startswith("prob_")]
    for colour, model in enumerate(models):
        rows = complete[complete["model"] == model]
        if rows.empty:
            continue
        classes = [c.removeprefix("prob_") for c in columns]
        labels = rows["label"].map({name: i for i, name in enumerate(classes)}).to_numpy()
        predicted, observed, count = reliability_curve(labels, rows[columns].to_numpy(), ECE_BINS)
        axis.plot(predicted, observed, color=f"C{colour}", lw=1.2, label=model)
        axis.scatter(predicted, observed, s=12 * count, color=f"C{colour}", alpha=0.6)
    axis.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"mean predicted probability of {columns[-1].removeprefix('prob_')}",
             ylabel="observed frequency", title="reliability (complete data, pooled out-of-fold)")  # fmt: skip
    axis.legend(fontsize=7, loc="upper left")
    save_png(figure, path, dpi=110, tight=True)
