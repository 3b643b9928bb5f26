"""One slide's patch attention (computed by :mod:`mosare.deploy.attention`), and what is read from the slide to show it:
its thumbnail and its highest- and lowest-attention patches. Light on purpose (no torch): the processes that draw
the pictures import only this and :mod:`mosare.reporting.plots.attention`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from mosare.slides.patch_store import PatchStore
from mosare.slides.reader import open_slide

MONTAGE_PATCHES = 8  # highest and lowest each
THUMBNAIL_PX = 1200


@dataclasses.dataclass(frozen=True)
class SlideAttention:
    """One slide's patch attention: rows aligned with its feature store."""

    slide_id: str
    patient_id: str
    coords: np.ndarray  # (N, 2) int64 level-0 top-left x, y
    attention: np.ndarray  # (N,) float64, the patient's softmax restricted to this slide
    footprint_px: int  # level-0 side of a patch

    @property
    def n_patches(self) -> int:
        return len(self.coords)

    @property
    def rank(self) -> np.ndarray:
        return rank_normalised(self.attention)

    @property
    def patient_share(self) -> float:
        """The fraction of its patient's attention on this slide."""
        return float(self.attention.sum())


def rank_normalised(values: np.ndarray) -> np.ndarray:
    """Ranks of ``values`` scaled to [0, 1] (ties share their mean rank); a single value is 1."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) <= 1:
        return np.ones(len(values))
    return (rankdata(values, method="average") - 1) / (len(values) - 1)


@dataclasses.dataclass(frozen=True)
class ExtremePatches:
    """The highest- and lowest-attention patches of a slide, read from it: (rows, RGB images) each."""

    top_rows: np.ndarray
    top_images: list[np.ndarray]
    bottom_rows: np.ndarray
    bottom_images: list[np.ndarray]


def extreme_rows(attention: np.ndarray, count: int = MONTAGE_PATCHES) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the ``count`` highest (highest first) and ``count`` lowest (lowest first) weights, never the same row
    twice: a slide with fewer than ``2 * count`` patches shows each once."""
    order = np.argsort(-np.asarray(attention), kind="stable")
    top = order[:count]
    bottom = order[len(top) :][::-1][:count]
    return top, bottom


def read_extreme_patches(attention: SlideAttention, patch_store: str | Path) -> ExtremePatches:
    """Read the montage's patches from the slide, at the patch store's read level and size."""
    reading = PatchStore.read(patch_store)
    top, bottom = extreme_rows(attention.attention)
    images: dict[int, np.ndarray] = {}
    if len(top):
        with open_slide(reading.slide_path, slide_id=reading.slide_id, mpp_override=reading.mpp_level0) as slide:
            for row in [*top, *bottom]:
                x, y = attention.coords[row]
                images[int(row)] = slide.read_patch(
                    int(x), int(y), reading.read_level, reading.read_px, reading.patch_px
                )
    return ExtremePatches(top, [images[int(r)] for r in top], bottom, [images[int(r)] for r in bottom])


def slide_thumbnail(patch_store: str | Path, max_px: int = THUMBNAIL_PX) -> tuple[np.ndarray, tuple[int, int]]:
    """The slide's thumbnail (longer side at most ``max_px``) and its level-0 dimensions."""
    reading = PatchStore.read(patch_store)
    with open_slide(reading.slide_path, slide_id=reading.slide_id, mpp_override=reading.mpp_level0) as slide:
        return slide.thumbnail(max_px), slide.dimensions
