"""Tissue detection on a slide: the ``TissueDetector`` interface, its registry, and the steps every detector shares.

A detector classifies the pixels of an RGB image as tissue, pen ink or glass (``TissueDetector.segment``). Around
it, the same steps run for every detector:

1. the whole slide is read at about ``detection_mpp`` (8 µm/px) and segmented; small holes are filled and pieces
   too small to hold one patch dropped (areas in µm², so the same config works at 20x and 40x);
2. the patch-grid cells touching that coarse mask are read again at about ``fraction_mpp`` (2 µm/px), segmented
   there (``TissueDetector.fine_tissue``), and each cell's tissue fraction is the share of its fine pixels that are
   tissue. A coarse pixel half glass already reads as stained, so a coarse mask is one pixel (8 µm) wider than the
   tissue all round; the fine pass is what decides "half of this patch is tissue".

Detectors are chosen by ``tiling.tissue.method``. Each, the default ``saturation`` included, is a plugin
(``mosare.core.plugins``): a module in ``mosare/slides/tissue_plugins/`` whose ``TissueDetector`` subclass is
decorated with ``@register_tissue_detector``. docs/extending.md walks through adding one.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import numpy as np

import mosare.slides.reader
from mosare.core.config_schema import schema_defaults
from mosare.core.plugins import PluginError, Registry
from mosare.slides.patch_grid import bin_sums, mask_cell_fractions, runs
from mosare.slides.reader import Slide

# The schema is where every default lives; these are its tiling.tissue defaults.
SCHEMA_DEFAULTS = schema_defaults("tiling", "tissue")
# Fine pixels read beyond each side of a row of patch cells, so filters near the row's edge see real neighbours.
FINE_MARGIN_PX = 8


@dataclass(frozen=True)
class TissueParams:
    """``tiling.tissue`` in the config; unset fields take the schema's defaults (see it for their meanings)."""

    method: str = SCHEMA_DEFAULTS["method"]
    detection_mpp: float = SCHEMA_DEFAULTS["detection_mpp"]
    fraction_mpp: float = SCHEMA_DEFAULTS["fraction_mpp"]
    median_blur: int = SCHEMA_DEFAULTS["median_blur"]
    saturation_threshold: int | None = SCHEMA_DEFAULTS["saturation_threshold"]
    # At fraction_mpp a pixel is almost pure tissue or glass, while at detection_mpp an edge pixel half glass must
    # still count, so the fine threshold sits higher, where pale stroma begins. None: saturation_threshold's.
    fraction_saturation_threshold: int | None = SCHEMA_DEFAULTS["fraction_saturation_threshold"]
    closing: int = SCHEMA_DEFAULTS["closing"]
    min_tissue_area_um2: float | None = SCHEMA_DEFAULTS["min_tissue_area_um2"]  # None: one patch footprint's area
    min_hole_area_um2: float = SCHEMA_DEFAULTS["min_hole_area_um2"]
    exclude_pen: bool = SCHEMA_DEFAULTS["exclude_pen"]

    def __post_init__(self) -> None:
        if self.median_blur % 2 == 0:
            raise ValueError(f"tiling.tissue.median_blur must be an odd number of pixels, got {self.median_blur}")

    @classmethod
    def from_config(cls, tissue: Mapping[str, Any] | None) -> TissueParams:
        return cls(**dict(tissue or {}))

    def min_piece_um2(self, patch_area_um2: float) -> float:
        """The smallest tissue piece kept: the configured area, else one patch footprint."""
        return patch_area_um2 if self.min_tissue_area_um2 is None else self.min_tissue_area_um2


@dataclass(frozen=True)
class Segmentation:
    """What a detector finds in one RGB image (boolean masks of its shape)."""

    tissue: np.ndarray
    ink: np.ndarray  # excluded as pen ink or near-black, shown on the QC picture
    stained: np.ndarray  # foreground before ink was removed, to explain an empty result
    threshold: float  # the detector's decision threshold, recorded in the patch store


class TissueDetector(ABC):
    """Classifies pixels as tissue. Subclasses set ``name`` and are registered with ``register_tissue_detector``."""

    name: ClassVar[str]

    def __init__(self, params: TissueParams) -> None:
        self.params = params

    @abstractmethod
    def segment(self, rgb: np.ndarray, mpp: float) -> Segmentation:
        """Tissue, ink and foreground of a whole-slide image at ``mpp`` µm/px (the coarse pass)."""

    def fine_tissue(self, rgb: np.ndarray, mpp: float, coarse: TissueMask, near_ink: np.ndarray) -> np.ndarray:
        """Tissue pixels of a region read at ``mpp`` µm/px for the per-patch fractions (the fine pass).

        ``coarse`` is the slide's coarse result (e.g. to reuse a threshold chosen on the whole slide);
        ``near_ink`` marks the region's pixels next to ink found on the coarse pass.
        """
        return self.segment(rgb, mpp).tissue


TISSUE_DETECTORS: Registry[type[TissueDetector]] = Registry(
    "tissue detector", "mosare.slides.tissue_plugins", lambda detector: detector.name
)
register_tissue_detector = TISSUE_DETECTORS.register


def tissue_detector(params: TissueParams) -> TissueDetector:
    """The detector named by ``params.method`` (a module of ``mosare/slides/tissue_plugins/``)."""
    try:
        detector = TISSUE_DETECTORS.get(params.method)
    except PluginError as error:
        raise ValueError(f"tiling.tissue.method: {error}") from error
    return detector(params)


@dataclass
class TissueMask:
    """Tissue found on a slide. Contours are (n, 2) float arrays of level-0 x, y."""

    mask: np.ndarray  # bool (H, W) at `downsample`
    downsample: float  # level-0 px per mask px
    mpp: float  # µm per mask px
    threshold: float  # the detector's threshold (saturation: the Otsu value when configured as null)
    tissue_contours: list[np.ndarray] = field(default_factory=list)
    hole_contours: list[np.ndarray] = field(default_factory=list)
    # Pieces the min_tissue_area_um2 filter dropped: outlines (level-0) and areas, largest first.
    small_piece_contours: list[np.ndarray] = field(default_factory=list)
    small_piece_areas_um2: list[float] = field(default_factory=list)
    ink_contours: list[np.ndarray] = field(default_factory=list)  # foreground excluded as pen ink
    ink: np.ndarray | None = None  # bool, like `mask`: pixels classed as ink (None: none)
    stained_area_um2: float = 0.0  # foreground before ink removal and the filters
    min_piece_um2: float = 0.0  # the area filter applied

    @property
    def area_um2(self) -> float:
        return float(self.mask.sum()) * self.mpp**2

    def outline(self) -> None:
        """Recompute the tissue and hole contours from ``mask``."""
        self.tissue_contours, self.hole_contours = contours(self.mask, self.downsample)


def fill_small_holes(mask: np.ndarray, max_px: float) -> np.ndarray:
    """Fill background regions enclosed by tissue that are smaller than ``max_px``."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=4)
    if count <= 1:
        return mask
    small = stats[:, cv2.CC_STAT_AREA] < max_px
    small[0] = False  # label 0 is the tissue itself
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    small[border] = False
    return mask | small[labels]


def drop_small_components(mask: np.ndarray, min_px: float) -> tuple[np.ndarray, np.ndarray]:
    """The mask without components below ``min_px`` and the px areas of those dropped, largest first."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(mask, dtype=bool), np.zeros(0, np.int64)
    areas = stats[:, cv2.CC_STAT_AREA]
    keep = areas >= min_px
    keep[0] = False  # label 0 is the background
    dropped = areas[1:][~keep[1:]]
    return keep[labels], np.sort(dropped)[::-1]


def contours(mask: np.ndarray, downsample: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Outer outlines and hole outlines of a mask, in level-0 coordinates."""
    found, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    outer: list[np.ndarray] = []
    holes: list[np.ndarray] = []
    for contour, (_, _, _, parent) in zip(found, hierarchy[0] if hierarchy is not None else []):
        # Pixel centres: mask pixel i spans level-0 [i*d, (i+1)*d).
        points = (contour[:, 0, :].astype(np.float64) + 0.5) * downsample
        (outer if parent < 0 else holes).append(points)
    return outer, holes


def tissue_from_segmentation(
    segmentation: Segmentation, downsample: float, mpp: float, params: TissueParams, min_piece_um2: float
) -> TissueMask:
    """Fill small holes, drop small pieces and outline what is left (the steps every detector shares)."""
    px_area_um2 = mpp**2
    filled = fill_small_holes(segmentation.tissue, params.min_hole_area_um2 / px_area_um2) & ~segmentation.ink
    kept, small_piece_px = drop_small_components(filled, min_piece_um2 / px_area_um2)
    tissue_contours, hole_contours = contours(kept, downsample)
    small_pieces, _ = contours(filled & ~kept, downsample)
    ink, _ = contours(segmentation.ink & segmentation.stained, downsample)
    return TissueMask(
        kept,
        downsample,
        mpp,
        segmentation.threshold,
        tissue_contours,
        hole_contours,
        small_piece_contours=small_pieces,
        small_piece_areas_um2=[float(px) * px_area_um2 for px in small_piece_px],
        ink_contours=ink,
        ink=segmentation.ink,
        stained_area_um2=float(segmentation.stained.sum()) * px_area_um2,
        min_piece_um2=min_piece_um2,
    )


def detect_tissue(slide: Slide, params: TissueParams, min_piece_um2: float | None = None) -> TissueMask:
    """The coarse tissue mask of a slide at about ``params.detection_mpp`` (never finer), read from the best level.

    ``min_piece_um2`` defaults to ``params.min_tissue_area_um2``, or 0 when that is left to the patch size.
    """
    image, downsample = slide.read_downsampled(params.detection_mpp / slide.mpp)
    mpp = slide.mpp * downsample
    segmentation = tissue_detector(params).segment(image, mpp)
    if min_piece_um2 is None:
        min_piece_um2 = params.min_piece_um2(0.0)
    return tissue_from_segmentation(segmentation, downsample, mpp, params, min_piece_um2)


def _fine_read(slide: Slide, fraction_mpp: float) -> tuple[int, int, float]:
    """Pyramid level, integer binning factor and resulting level-0 px per fine pixel for ``fraction_mpp``."""
    wanted = fraction_mpp / slide.mpp
    level = slide.best_level_for_downsample(wanted)
    factor = max(1, int(wanted / slide.level_downsamples[level] + 1e-6))
    return level, factor, slide.level_downsamples[level] * factor


def _coarse_index(start: float, count: int, fine_downsample: float, tissue: TissueMask, axis: int = 0) -> np.ndarray:
    """Coarse mask row (axis 0) or column (axis 1) of ``count`` fine pixels starting at level-0 ``start``."""
    centres = start + (np.arange(count) + 0.5) * fine_downsample
    return np.clip((centres / tissue.downsample).astype(np.int64), 0, tissue.mask.shape[axis] - 1)


def fine_cell_fractions(
    slide: Slide,
    tissue: TissueMask,
    params: TissueParams,
    xs: np.ndarray,
    ys: np.ndarray,
    footprint_px: int,
    observer: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> np.ndarray:
    """Each grid cell's tissue fraction from the fine pass, shape (len(ys), len(xs)); refines ``tissue.mask``.

    Only cells the coarse mask touches are read, a row of adjacent cells at a time (memory stays at one row).
    Fine tissue counts only inside the kept coarse pieces, widened by one coarse pixel, so ink, small pieces
    and specks dropped on the coarse pass stay out. The coarse mask is then redrawn from the fine pixels (a
    coarse pixel is tissue when at least half of it is), so the QC outline and the tissue area follow the fine
    pass too. When the coarse pass is not coarser than ``fraction_mpp``, the coarse mask's fractions are used.
    ``observer`` is called with each region's RGB pixels and fine tissue mask (the slide QC metrics).
    """
    coarse = mask_cell_fractions(tissue.mask, tissue.downsample, xs, ys, footprint_px)
    level, factor, fine_downsample = _fine_read(slide, params.fraction_mpp)
    if fine_downsample * 1.5 > tissue.downsample or not (coarse > 0).any():
        return coarse
    detector = tissue_detector(params)
    allowed = cv2.dilate(tissue.mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    ink = np.zeros_like(allowed) if tissue.ink is None else tissue.ink
    near_ink = cv2.dilate(ink.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    fractions = np.zeros_like(coarse)
    tissue_sums = np.zeros(tissue.mask.shape)
    pixel_counts = np.zeros(tissue.mask.shape)
    cells_fine = footprint_px / fine_downsample
    margin = FINE_MARGIN_PX
    # Cells per read, so one read's RGBA stays within MAX_READ_BYTES even on a one-level slide.
    read_rows = (math.ceil(cells_fine) + 2 * margin) * factor
    max_cells = max(1, int(mosare.slides.reader.MAX_READ_BYTES / 4 / read_rows / (cells_fine * factor)) - 1)
    for row, y in enumerate(ys.tolist()):
        for first, last in runs(coarse[row] > 0, max_cells):
            x = int(xs[first])
            # Fine pixels whose centres lie in the run's cells.
            width = math.ceil((last - first) * footprint_px / fine_downsample - 0.5)
            height = math.ceil(cells_fine - 0.5)
            # Read with a margin, at level px, then bin to fine px.
            x_read = max(0, x - round(margin * fine_downsample))
            y_read = max(0, y - round(margin * fine_downsample))
            left, top = round((x - x_read) / fine_downsample), round((y - y_read) / fine_downsample)
            region = slide.read_region(
                x_read, y_read, level, (width + left + margin) * factor, (height + top + margin) * factor
            )
            if factor > 1:
                region = cv2.resize(
                    region, (width + left + margin, height + top + margin), interpolation=cv2.INTER_AREA
                )
            region_row = _coarse_index(y - top * fine_downsample, region.shape[0], fine_downsample, tissue)
            region_col = _coarse_index(x - left * fine_downsample, region.shape[1], fine_downsample, tissue, axis=1)
            fine = detector.fine_tissue(
                region, slide.mpp * fine_downsample, tissue, near_ink[np.ix_(region_row, region_col)]
            )[top : top + height, left : left + width]
            coarse_row, coarse_col = region_row[top : top + height], region_col[left : left + width]
            fine = fine & allowed[np.ix_(coarse_row, coarse_col)]
            if observer is not None:
                observer(region[top : top + height, left : left + width], fine)
            fine = fine.astype(np.int32)
            centre_x = x + (np.arange(width) + 0.5) * fine_downsample
            cell_col = ((centre_x - x) // footprint_px).astype(np.int64)
            _, cols, tissue_px = bin_sums(fine.sum(axis=0, keepdims=True), np.zeros(1, np.int64), cell_col)
            fractions[row, first + cols] = tissue_px[0] / (height * np.bincount(cell_col)[cols])
            rows_hit, cols_hit, sums = bin_sums(fine, coarse_row, coarse_col)
            tissue_sums[np.ix_(rows_hit, cols_hit)] += sums
            pixel_counts[np.ix_(rows_hit, cols_hit)] += np.outer(
                np.bincount(coarse_row)[rows_hit], np.bincount(coarse_col)[cols_hit]
            )
    covered = pixel_counts > 0
    tissue.mask = np.where(covered, tissue_sums >= 0.5 * np.maximum(pixel_counts, 1), tissue.mask)
    tissue.outline()
    return fractions
