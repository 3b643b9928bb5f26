"""Cohort slide QC pictures: contact sheets of every slide's tissue QC picture, and the metrics' distributions.

Contact sheets reuse the tiling job's picture (thumbnail, tissue outline, kept patches), shrunk, so nothing reads a
slide again. Both pictures take the table of ``mosare.cohort.slide_qc_table`` (``slide_id``, metrics, ``flags``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import to_rgb
from PIL import Image

from mosare.cohort.slide_qc_table import OUTLIER_RULES
from mosare.reporting.plots import save_png

SLIDES_PER_PAGE = 48
SHEET_COLUMNS = 8
THUMBNAIL_PX = 240  # longer side of each slide on a contact sheet
FLAG_COLOUR = "#d62728"
FLAGS_SHOWN = 2  # reasons printed under a thumbnail; slide_qc.tsv has them all


def contact_sheet_name(page: int) -> str:
    """File name of contact-sheet page ``page`` (1-based), sorting in page order."""
    return f"page_{page:03d}.png"


def _caption(slide_id: str, flags: str) -> str:
    reasons = [reason.split(" (z ")[0] for reason in flags.split("; ") if reason]
    shown = "; ".join(reasons[:FLAGS_SHOWN]) + (f" +{len(reasons) - FLAGS_SHOWN}" if len(reasons) > FLAGS_SHOWN else "")
    return f"{slide_id}\n{shown}" if shown else slide_id


def plot_contact_sheets(table: pd.DataFrame, pictures: Mapping[str, str | Path], out_dir: str | Path) -> list[Path]:
    """Pages of ``SLIDES_PER_PAGE`` shrunk tissue QC pictures, each captioned with its slide id and flags (flagged
    slides framed in red); returns the pages written. A slide without a picture gets an empty, captioned cell."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pages = []
    n_pages = max(1, math.ceil(len(table) / SLIDES_PER_PAGE))
    for page in range(n_pages):
        rows = table.iloc[page * SLIDES_PER_PAGE : (page + 1) * SLIDES_PER_PAGE]
        n_rows = max(1, math.ceil(len(rows) / SHEET_COLUMNS))
        figure, axes = plt.subplots(n_rows, SHEET_COLUMNS, figsize=(2 * SHEET_COLUMNS, 2.3 * n_rows), squeeze=False)
        for ax in axes.flat:
            ax.set_axis_off()
        for ax, slide_id, flags in zip(axes.flat, rows["slide_id"], rows["flags"].fillna("")):
            path = pictures.get(slide_id)
            if path is not None and Path(path).is_file():
                with Image.open(path) as opened:
                    picture = opened.convert("RGB")
                    picture.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
                    ax.imshow(np.asarray(picture))
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color(FLAG_COLOUR if flags else "#cccccc")
                spine.set_linewidth(2.5 if flags else 0.5)
            ax.set_title(_caption(slide_id, flags), fontsize=6, color=FLAG_COLOUR if flags else "black")
        figure.suptitle(f"Slide QC contact sheet {page + 1}/{n_pages} (red: flagged)", fontsize=10)
        figure.tight_layout()
        path = out_dir / contact_sheet_name(page + 1)
        # A 256-colour palette keeps a page of thumbnails about 3x smaller in the report; the flag red stays exact.
        save_png(figure, path, dpi=100, palette=True, key_colours=[to_rgb(FLAG_COLOUR)])
        pages.append(path)
    return pages


def plot_qc_overview(table: pd.DataFrame, path: str | Path) -> None:
    """Each flagged-on metric's distribution over the cohort's slides (one dot per slide, jittered), slides flagged
    on that metric in red and named, the cohort median as a line."""
    metrics = list(OUTLIER_RULES)
    columns = 4
    n_rows = math.ceil(len(metrics) / columns)
    figure, axes = plt.subplots(n_rows, columns, figsize=(4 * columns, 2.2 * n_rows), squeeze=False)
    jitter = np.random.default_rng(0).uniform(-0.3, 0.3, len(table))
    flags = table["flags"].fillna("")
    for ax, metric in zip(axes.flat, metrics):
        values = table[metric].to_numpy(dtype=float)
        flagged = np.array([f"{metric} " in reasons for reasons in flags])
        ax.scatter(values[~flagged], jitter[~flagged], s=8, color="#4c72b0", alpha=0.7)
        ax.scatter(values[flagged], jitter[flagged], s=18, color=FLAG_COLOUR)
        for value, y, slide in zip(values[flagged], jitter[flagged], table["slide_id"][flagged]):
            ax.annotate(slide, (value, y), fontsize=5, color=FLAG_COLOUR, xytext=(2, 2), textcoords="offset points")
        if np.isfinite(values).any():
            ax.axvline(np.nanmedian(values), color="grey", linewidth=0.8)
        ax.set_yticks([])
        ax.set_ylim(-0.5, 0.5)
        ax.set_title(metric, fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.set_axis_off()
    n_flagged = int((flags != "").sum())
    figure.suptitle(f"Slide QC metrics, {len(table)} slides ({n_flagged} flagged, red; grey line: median)", fontsize=10)
    figure.tight_layout()
    save_png(figure, path, dpi=110)
