"""Demo cohort overview: every generated slide as a thumbnail, grouped by class, with magnification and missing modalities."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import openslide
import pandas as pd

from mosare.demo.plan import DemoPlan
from mosare.reporting.plots import save_png

THUMBNAIL_PX = 320
COLUMNS = 8


def plot_demo_overview(sheet: pd.DataFrame, path: str | Path, *, rna_patients: set[str] | None = None) -> None:
    """Write a contact sheet of the sheet's slides to ``path`` (PNG, atomically).

    Thumbnails are read back through OpenSlide, so the picture shows what the pipeline will read.
    Titles give slide id, class and magnification; 'no report' / 'no RNA' mark missing modalities.
    """
    ordered = sheet.sort_values(["label", "slide_id"]).reset_index(drop=True)
    rows = math.ceil(len(ordered) / COLUMNS)
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(2.0 * COLUMNS, 2.6 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, ordered.itertuples(), strict=False):
        with openslide.OpenSlide(row.slide_path) as slide:
            thumbnail = np.asarray(slide.get_thumbnail((THUMBNAIL_PX, THUMBNAIL_PX)).convert("RGB"))
            mpp = float(slide.properties.get("openslide.mpp-x", "nan"))
        missing = []
        if not isinstance(row.report_path, str):
            missing.append("no report")
        if rna_patients is not None and row.patient_id not in rna_patients:
            missing.append("no RNA")
        ax.imshow(thumbnail)
        magnification = f"{10 / mpp:.0f}x" if mpp == mpp else "mpp?"
        title = f"{row.slide_id}\n{row.label} · {magnification}"
        ax.set_title(title + (f"\n{', '.join(missing)}" if missing else ""), fontsize=7)
    fig.suptitle(f"{len(ordered)} demo slides of {ordered['patient_id'].nunique()} patients", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / (2.6 * rows + 0.4)))
    save_png(fig, path, dpi=110, palette=True)  # photos and text: 256 colours look the same at a third of the size


def write_demo_overview(plan: DemoPlan, path: str | Path) -> None:
    """The contact sheet of a written demo cohort: its planned slides, marking the patients without RNA."""
    plot_demo_overview(plan.sheet, path, rna_patients={p.patient_id for p in plan.patients if p.has_rna})
