"""How each model's pooled AUC falls as modalities go missing at test time (complete data at rate 0)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mosare.reporting.cohort_figures import CohortFigure, CohortResults, register_cohort_figure


def draw(results: CohortResults, path: Path) -> None:
    import matplotlib.pyplot as plt

    from mosare.reporting.plots import save_png

    auc = results.metrics[results.metrics["metric"] == "auc"]
    # Models trained on complete data and tested at each masking rate; the complete scenario is rate 0.
    tested = auc[auc["scenario"].isin(["complete", "masked_train_test"])].copy()
    tested["rate"] = np.where(tested["scenario"] == "complete", 0.0, tested["test_missing_rate"].astype(float))
    value = "pooled" if "pooled" in tested.columns else "mean"
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for model, rows in tested.groupby("model", sort=False):
        rows = rows.sort_values("rate")
        ax.plot(rows["rate"], rows[value], marker="o", label=model)
        if {"ci_low", "ci_high"} <= set(rows.columns):
            ax.fill_between(rows["rate"], rows["ci_low"], rows["ci_high"], alpha=0.12)
    ax.set_xlabel("fraction of modalities masked at test time")
    ax.set_ylabel(f"AUC ({value})")
    ax.set_ylim(0.0, 1.02)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    ax.set_title(f"{results.cohort}: AUC as modalities go missing", fontsize=10)
    ax.legend(fontsize=7, loc="lower left", ncol=2)
    fig.tight_layout()
    save_png(fig, path, dpi=120)


register_cohort_figure(
    CohortFigure(
        "auc_by_missing_rate",
        "Pooled out-of-fold AUC of each model against the fraction of modalities masked at test time (0: complete "
        "data), with its bootstrap interval when metrics.tsv has one.",
        draw,
    )
)
