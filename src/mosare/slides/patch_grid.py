"""The patch grid of a slide and how much of each grid cell a tissue mask covers.

The grid starts at level-0 (0, 0) with step ``footprint_px`` and holds only cells lying wholly inside the slide.
"""

from __future__ import annotations

import cv2
import numpy as np


def grid_starts(dimensions: tuple[int, int], footprint_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Level-0 x starts and y starts (int64) of the grid cells lying inside a slide of ``dimensions``."""
    if footprint_px < 1:
        raise ValueError(f"footprint_px must be at least 1 level-0 pixel, got {footprint_px}")
    width, height = dimensions
    xs = np.arange(0, width - footprint_px + 1, footprint_px, dtype=np.int64)
    ys = np.arange(0, height - footprint_px + 1, footprint_px, dtype=np.int64)
    return xs, ys


def mask_cell_fractions(
    mask: np.ndarray, downsample: float, xs: np.ndarray, ys: np.ndarray, footprint_px: int
) -> np.ndarray:
    """Each grid cell's mean of ``mask`` (level-0 px per mask px = ``downsample``), shape (len(ys), len(xs)).

    A cell covers the mask pixels its level-0 square rounds to (at least one); an integral image makes this
    O(1) per cell.
    """
    if len(xs) == 0 or len(ys) == 0 or not mask.any():
        return np.zeros((len(ys), len(xs)))
    mask_height, mask_width = mask.shape
    integral = cv2.integral(mask.astype(np.uint8))  # (H+1, W+1) int32

    def _bounds(starts: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        first = np.clip(np.round(starts / downsample).astype(np.int64), 0, limit - 1)
        last = np.round((starts + footprint_px) / downsample).astype(np.int64)
        return first, np.clip(np.maximum(last, first + 1), 1, limit)

    x0, x1 = _bounds(xs, mask_width)
    y0, y1 = _bounds(ys, mask_height)
    covered = integral[y1][:, x1] - integral[y0][:, x1] - integral[y1][:, x0] + integral[y0][:, x0]
    return covered / ((y1 - y0)[:, None] * (x1 - x0)[None, :])


def bin_sums(
    values: np.ndarray, row_bins: np.ndarray, col_bins: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sums of ``values`` (H, W) over the bins each row and column falls in (both non-decreasing).

    Returns the distinct row bins, the distinct column bins and their (rows, cols) sums: a block-sum with
    uneven blocks, as when fine mask pixels are gathered into patch cells or coarse mask pixels.
    """
    row_starts = np.flatnonzero(np.r_[True, np.diff(row_bins) != 0])
    col_starts = np.flatnonzero(np.r_[True, np.diff(col_bins) != 0])
    sums = np.add.reduceat(np.add.reduceat(values, row_starts, axis=0), col_starts, axis=1)
    return row_bins[row_starts], col_bins[col_starts], sums


def runs(flags: np.ndarray, max_length: int | None = None) -> list[tuple[int, int]]:
    """[first, last) index ranges of the consecutive True entries of a 1-D boolean array, split to at most
    ``max_length`` entries each."""
    padded = np.r_[False, flags.astype(bool), False]
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    step = max_length or len(flags) or 1
    return [
        (start, min(start + step, last))
        for first, last in zip(edges[::2].tolist(), edges[1::2].tolist())
        for start in range(first, last, step)
    ]
