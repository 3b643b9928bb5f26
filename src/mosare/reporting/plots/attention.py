"""Where the model looked: the patch attention heatmap over a slide's thumbnail, and the montage of its highest- and
lowest-attention patches, drawn from what :mod:`mosare.deploy.attention` computed and
:mod:`mosare.deploy.slide_attention` read from the slide."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np

from mosare.deploy.slide_attention import read_extreme_patches, slide_thumbnail
from mosare.reporting.plots import save_png

if TYPE_CHECKING:
    from mosare.deploy.slide_attention import ExtremePatches, SlideAttention

log = logging.getLogger(__name__)

COLOUR_MAP = "turbo"
OVERLAY_ALPHA = 0.55


def attention_grid(attention: SlideAttention) -> tuple[np.ndarray, tuple[int, int]]:
    """The rank-normalised attention on the patch grid: a (rows, columns) float image, NaN where there is no patch,
    whose cell (r, c) covers level-0 x from ``c * footprint`` (the tiling grid starts at 0), and its size in cells."""
    size = attention.footprint_px
    if attention.n_patches == 0:
        return np.full((1, 1), np.nan), (1, 1)
    columns, rows = (attention.coords // size).T
    grid = np.full((int(rows.max()) + 1, int(columns.max()) + 1), np.nan)
    grid[rows, columns] = attention.rank
    return grid, grid.shape


def plot_attention_heatmap(
    attention: SlideAttention, thumbnail: np.ndarray, dimensions: tuple[int, int], path: str | Path
) -> None:
    """The slide's thumbnail with each patch coloured by its attention rank (0 lowest, 1 highest), at the patch grid."""
    width, height = dimensions
    scale = thumbnail.shape[1] / width  # thumbnail px per level-0 px
    aspect = thumbnail.shape[0] / thumbnail.shape[1]
    fig, (ax, bar_ax) = plt.subplots(
        1, 2, figsize=(8.6, max(3.0, 8.0 * aspect) + 0.8), gridspec_kw={"width_ratios": [40, 1]}
    )
    ax.imshow(thumbnail, extent=(0, width * scale, height * scale, 0), interpolation="lanczos")
    grid, (rows, columns) = attention_grid(attention)
    size = attention.footprint_px * scale
    image = ax.imshow(
        np.ma.masked_invalid(grid), extent=(0, columns * size, rows * size, 0), cmap=COLOUR_MAP, vmin=0.0, vmax=1.0,
        alpha=OVERLAY_ALPHA, interpolation="nearest",
    )  # fmt: skip
    ax.set_xlim(0, width * scale)
    ax.set_ylim(height * scale, 0)
    ax.set_axis_off()
    if attention.n_patches:
        subtitle = f"{attention.n_patches} patches, {attention.patient_share:.0%} of patient {attention.patient_id}'s attention"
    else:
        subtitle = f"no patches (patient {attention.patient_id}): nothing to attend to"
    ax.set_title(f"{attention.slide_id}: attention\n{subtitle}", fontsize=10)
    fig.colorbar(image, cax=bar_ax, label="attention rank within the slide (0 lowest, 1 highest)")
    save_png(fig, path, dpi=110, tight=True, palette=True)


def plot_attention_montage(attention: SlideAttention, patches: ExtremePatches, path: str | Path) -> None:
    """Two rows: the highest-attention patches (highest first) and the lowest (lowest first), each with its rank."""
    columns = max(len(patches.top_images), len(patches.bottom_images), 1)
    fig, axes = plt.subplots(2, columns, figsize=(1.6 * columns + 0.6, 4.0), squeeze=False)
    rank = attention.rank
    for axis_row, (label, rows, images) in enumerate(
        (("highest", patches.top_rows, patches.top_images), ("lowest", patches.bottom_rows, patches.bottom_images))
    ):
        for column in range(columns):
            ax = axes[axis_row, column]
            ax.set_xticks([])
            ax.set_yticks([])
            if column < len(images):
                ax.imshow(images[column])
                ax.set_title(f"rank {rank[rows[column]]:.2f}", fontsize=8)
            else:
                ax.set_axis_off()
        axes[axis_row, 0].set_ylabel(label, fontsize=10)
        if not len(images):
            axes[axis_row, 0].set_axis_on()
            axes[axis_row, 0].text(
                0.5, 0.5, "no patches", ha="center", va="center", transform=axes[axis_row, 0].transAxes
            )
    fig.suptitle(
        f"{attention.slide_id}: highest- and lowest-attention patches ({attention.n_patches} in all)", fontsize=10
    )
    save_png(fig, path, dpi=110, tight=True, palette=True)


def draw_slide_attention(attention: SlideAttention, patch_store: Path, heatmap: Path, montage: Path) -> str:
    """Both pictures of one slide (reads its thumbnail and extreme patches); returns the slide id."""
    thumbnail, dimensions = slide_thumbnail(patch_store)
    plot_attention_heatmap(attention, thumbnail, dimensions, heatmap)
    plot_attention_montage(attention, read_extreme_patches(attention, patch_store), montage)
    return attention.slide_id


def draw_cohort_attention(
    slides: Sequence[SlideAttention], patches_dir: Path, heatmaps: Path, montages: Path, workers: int = 1
) -> None:
    """``heatmaps/{slide}.png`` and ``montages/{slide}.png`` for every slide, drawn by ``workers`` processes."""
    for folder in (heatmaps, montages):
        folder.mkdir(parents=True, exist_ok=True)
    jobs = [
        (slide, patches_dir / f"{slide.slide_id}.zarr", heatmaps / f"{slide.slide_id}.png",
         montages / f"{slide.slide_id}.png")
        for slide in slides
    ]  # fmt: skip
    if workers > 1 and len(jobs) > 1:
        # Drawing dominates (~2 s a slide); spawned workers, as forking a process that has run torch can hang.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
            for slide_id in pool.map(draw_slide_attention, *zip(*jobs, strict=True)):
                log.info("slide %s: heatmap and montage drawn", slide_id)
    else:
        for job in jobs:
            draw_slide_attention(*job)
