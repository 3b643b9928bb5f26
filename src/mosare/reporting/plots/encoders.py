"""The encoder comparison's figure: each WSI-reading model's pooled AUC (a survival cohort's: Harrell's C) with its
CI, per scenario, one colour per encoder, with each compared encoder's Holm-adjusted p against the reference beside
its point."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mosare.evaluation.encoder_comparison import AUC, compared_metric
from mosare.evaluation.metrics import scenario_label
from mosare.reporting.plots import save_png


def plot_encoder_comparison(table: pd.DataFrame, path: str | Path) -> None:
    """One row per model and scenario, one marker per encoder (AUC or Harrell's C, 95% CI bar);
    ``encoder_comparison.tsv``."""
    metric = compared_metric(table)
    value, low, high = metric.value, f"{metric.value}_ci_low", f"{metric.value}_ci_high"
    encoders = list(dict.fromkeys(table["encoder"]))
    keys = list(dict.fromkeys(zip(table["model"], table["scenario"], table["train_missing_rate"],
                                  table["test_missing_rate"])))  # fmt: skip
    figure, axis = plt.subplots(figsize=(7.5, 1.0 + 0.32 * len(keys) * max(1, len(encoders)) / 2))
    colours = plt.get_cmap("tab10")(np.arange(len(encoders)) % 10)
    offsets = np.linspace(-0.25, 0.25, len(encoders)) if len(encoders) > 1 else np.zeros(1)
    for encoder, colour, offset in zip(encoders, colours, offsets):
        rows = table[table["encoder"] == encoder]
        for _, row in rows.iterrows():
            y = (
                keys.index((row["model"], row["scenario"], row["train_missing_rate"], row["test_missing_rate"]))
                + offset
            )
            axis.errorbar(row[value], y, xerr=[[row[value] - row[low]], [row[high] - row[value]]], fmt="o",
                          color=colour, markersize=4, capsize=2, label=encoder)  # fmt: skip
            if np.isfinite(row["p_holm"]):
                axis.annotate(f"p_holm {row['p_holm']:.2g}", (row[high], y), xytext=(4, -3),
                              textcoords="offset points", fontsize=6, color=colour)  # fmt: skip
    labels = [f"{model}, {scenario_label(scenario, train, test)}" for model, scenario, train, test in keys]
    axis.set_yticks(range(len(keys)), labels, fontsize=7)
    axis.invert_yaxis()
    axis.axvline(0.5, color="grey", linewidth=0.8, linestyle=":")
    handles, names = axis.get_legend_handles_labels()
    unique = dict(zip(names, handles))
    axis.legend(unique.values(), unique.keys(), fontsize=7, loc="lower left")
    cohort = table["cohort"].iloc[0] if len(table) else ""
    pooled = "pooled out-of-fold" if metric is AUC else "within-fold pooled"
    axis.set(xlabel=f"{pooled} {metric.title} (95% bootstrap CI)", title=f"{cohort}: patch encoders compared")
    save_png(figure, path, dpi=110, tight=True)
