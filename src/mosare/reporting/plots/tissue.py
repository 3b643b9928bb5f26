"""Tissue QC picture: slide thumbnail with tissue outlines, holes, pieces too small to keep, pen ink left out,
tiles that could not be decoded and the patch grid, drawn from what ``mosare.slides.tiling.tile_slide`` returned."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import PatchCollection
from matplotlib.colors import to_rgb
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from mosare.reporting.plots import save_png, shrink_to_axes

if TYPE_CHECKING:
    from mosare.slides.tiling import TilingResult

TISSUE_COLOUR = "#00c853"
HOLE_COLOUR = "#ff6d00"
PATCH_COLOUR = "#2962ff"
SMALL_PIECE_COLOUR = "#d500f9"  # magenta: stands out from tissue green, hole orange and patch blue
INK_COLOUR = "#00e5ff"  # cyan: pen ink excluded from tissue
UNREADABLE_COLOUR = "#ff1744"  # red: tiles that could not be decoded
# Kept exact in the palette PNG.
OUTLINE_COLOURS = (TISSUE_COLOUR, HOLE_COLOUR, PATCH_COLOUR, SMALL_PIECE_COLOUR, INK_COLOUR, UNREADABLE_COLOUR)


def plot_tissue_qc(result: TilingResult, path: str | Path) -> None:
    """Write the QC PNG for one tiled slide to ``path`` (atomically); ``result`` must carry its thumbnail."""
    if result.thumbnail is None:
        raise ValueError(f"{result.slide_label}: tile_slide(..., thumbnail=True) is needed for the QC picture")
    thumbnail, tissue, geometry, coords = result.thumbnail, result.tissue, result.geometry, result.coords
    width, height = result.dimensions
    scale = thumbnail.shape[1] / width  # thumbnail px per level-0 px
    aspect = thumbnail.shape[0] / thumbnail.shape[1]
    fig_width = 9.0
    fig, ax = plt.subplots(figsize=(fig_width, max(3.0, fig_width * aspect) + 0.8))
    shown = ax.imshow(thumbnail, extent=(0, width * scale, height * scale, 0))
    footprint = geometry.footprint_px * scale
    ax.add_collection(
        PatchCollection(
            [Rectangle((x * scale, y * scale), footprint, footprint) for x, y in coords],
            facecolor=(0.16, 0.38, 1.0, 0.12),
            edgecolor=PATCH_COLOUR,
            linewidth=0.3,
        )
    )
    # Solid: lost (filled with background); dashed: read from a finer level instead.
    for lost, linestyle in ((True, "solid"), (False, "dashed")):
        ax.add_collection(
            PatchCollection(
                [
                    Rectangle((t.x * scale, t.y * scale), t.width * scale, t.height * scale)
                    for t in result.unreadable_tiles
                    if (t.filled_from is None) == lost
                ],
                facecolor="none",
                edgecolor=UNREADABLE_COLOUR,
                linewidth=1.5 if lost else 1.0,
                linestyle=linestyle,
            )
        )
    outlines = (
        (tissue.tissue_contours, TISSUE_COLOUR),
        (tissue.hole_contours, HOLE_COLOUR),
        (tissue.small_piece_contours, SMALL_PIECE_COLOUR),
        (tissue.ink_contours, INK_COLOUR),
    )
    for contours, colour in outlines:
        for contour in contours:
            closed = np.vstack([contour, contour[:1]]) * scale
            ax.plot(closed[:, 0], closed[:, 1], color=colour, linewidth=1.2)
    ax.set_xlim(0, width * scale)
    ax.set_ylim(height * scale, 0)
    ax.set_axis_off()
    upsampled = f", upsampled {geometry.upsample_factor:.2f}x" if geometry.upsampled else ""
    ax.set_title(
        f"{result.slide_id}: {result.mpp:.4f} µm/px ({result.mpp_source}), {width}x{height} px\n"
        f"{len(coords)} patches of {geometry.patch_px} px at {geometry.target_mpp:g} µm/px "
        f"({geometry.footprint_px} level-0 px, read {geometry.read_px} px at level {geometry.read_level}"
        f"{upsampled}); tissue {tissue.area_um2 / 1e6:.2f} mm²",
        fontsize=9,
    )
    handles = [
        Line2D([], [], color=TISSUE_COLOUR, label="tissue outline"),
        Line2D([], [], color=HOLE_COLOUR, label="hole"),
        Rectangle((0, 0), 1, 1, facecolor=(0.16, 0.38, 1.0, 0.12), edgecolor=PATCH_COLOUR, label="kept patch"),
    ]
    if tissue.small_piece_contours:
        handles.append(
            Line2D([], [], color=SMALL_PIECE_COLOUR, label="dropped: below tiling.tissue.min_tissue_area_um2")
        )
    if tissue.ink_contours:
        handles.append(Line2D([], [], color=INK_COLOUR, label="excluded: pen ink"))
    if any(t.filled_from is None for t in result.unreadable_tiles):
        handles.append(
            Rectangle(
                (0, 0), 1, 1, facecolor="none", edgecolor=UNREADABLE_COLOUR, label="corrupt tile, no level readable"
            )
        )
    if any(t.filled_from is not None for t in result.unreadable_tiles):
        handles.append(
            Rectangle(
                (0, 0),
                1,
                1,
                facecolor="none",
                edgecolor=UNREADABLE_COLOUR,
                linestyle="dashed",
                label="corrupt tile, read from a finer level",
            )
        )
    ax.legend(
        handles=handles,
        loc="lower right",
        fontsize=7,
        framealpha=0.8,
    )
    fig.tight_layout()
    shrink_to_axes(shown, dpi=130)
    save_png(fig, path, dpi=130, palette=True, key_colours=[to_rgb(c) for c in OUTLINE_COLOURS])
