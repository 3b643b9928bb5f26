"""Modality presence picture: which patients of which class have which modalities, before any training."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from mosare.cohort.table import CohortTable, modality_combination
from mosare.core.modalities import MODALITIES
from mosare.reporting.plots import save_png


def plot_modality_presence(table: CohortTable, cohort: str, path: str | Path) -> None:
    """Two panels: patients per modality and per class; patients per combination of modalities, stacked by class."""
    labels = np.asarray(table.labels, dtype=object)
    classes = sorted(set(table.labels))
    colours = plt.get_cmap("tab10")(np.arange(len(classes)) % 10)
    combos = pd.Series(modality_combination(table), dtype=object)
    combo_counts = pd.crosstab(combos, labels).reindex(columns=classes, fill_value=0)
    combo_counts = combo_counts.loc[combo_counts.sum(axis=1).sort_values().index]

    fig, (per_modality, per_combo) = plt.subplots(
        1, 2, figsize=(11, max(3.0, 0.45 * len(combo_counts) + 1.5)), gridspec_kw={"width_ratios": [1, 1.6]}
    )
    positions = np.arange(len(MODALITIES))
    width = 0.8 / len(classes)
    for k, (label, colour) in enumerate(zip(classes, colours)):
        of_class = labels == label
        present = table.present[of_class].sum(axis=0).astype(int).tolist()
        bars = per_modality.bar(
            positions + k * width, present, width, color=colour, label=f"{label} (n={of_class.sum()})"
        )
        per_modality.bar_label(bars, fontsize=8)
    per_modality.set_xticks(positions + width * (len(classes) - 1) / 2, [m.upper() for m in MODALITIES])
    per_modality.set_ylabel("patients with the modality")
    per_modality.yaxis.set_major_locator(MaxNLocator(integer=True))
    per_modality.margins(y=0.12)
    per_modality.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=min(len(classes), 3))
    per_modality.set_title("present per modality and class", fontsize=10)

    left = np.zeros(len(combo_counts))
    for label, colour in zip(classes, colours):
        counts = combo_counts[label].to_numpy()
        per_combo.barh(combo_counts.index, counts, left=left, color=colour, label=label)
        left += counts
    for y, total in enumerate(left):
        per_combo.text(total, y, f" {int(total)}", va="center", fontsize=8)
    per_combo.xaxis.set_major_locator(MaxNLocator(integer=True))
    per_combo.margins(x=0.08)
    per_combo.set_xlabel("patients")
    per_combo.set_title("patients per combination of present modalities", fontsize=10)
    fig.suptitle(f"{cohort}: {len(table)} patients, modality presence in the data (before simulated masking)")
    fig.tight_layout()

    save_png(fig, path, dpi=120)
