"""Tissue detection and the patch grid at an exact target resolution (µm/px), per slide.

Tissue is found on a low-resolution image (about ``detection_mpp`` µm/px) the CLAM way - HSV saturation,
median blur, a fixed or Otsu threshold, morphological closing - then pen marks and near-black pixels are
removed by colour, small holes are filled and small fragments dropped (areas in µm², so the same config
works at 20x and 40x). Patches form a grid of ``footprint_px`` level-0 pixels, where the footprint comes
from the slide's own mpp (a 0.2527 µm/px slide gets 507 px for 256 px at 0.5 µm/px, not 512).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mosare.slides import Slide, SlideError, open_slide
from mosare.stores import write_store

log = logging.getLogger(__name__)

# A pyramid level this much coarser than the target still counts as "at the target": reading a level at
# 1.0108 µm/px for a 1.0 µm/px target and upscaling 1% loses nothing visible and decodes 4x fewer pixels
# than the next finer level. Also absorbs rounding in level sizes (downsample 3.9996 vs 4).
LEVEL_TOLERANCE = 0.02
PEN_MARGIN_KERNEL = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
INK_SPECK_KERNEL = np.ones((3, 3), np.uint8)


@dataclass(frozen=True)
class PatchGeometry:
    """How one patch of ``patch_px`` at ``target_mpp`` maps onto the slide."""

    slide_mpp: float
    target_mpp: float
    patch_px: int
    footprint_px: int  # level-0 px covered by one patch (and the grid step)
    read_level: int  # pyramid level read
    read_px: int  # px read at read_level, then resized to patch_px

    @property
    def upsample_factor(self) -> float:
        """How much the read pixels are enlarged to make ``patch_px`` (1.0 when they are kept or shrunk)."""
        return max(1.0, self.patch_px / self.read_px)

    @property
    def upsampled(self) -> bool:
        """Even level 0 is coarser than the target beyond LEVEL_TOLERANCE: patches are enlarged scans."""
        return self.slide_mpp > self.target_mpp * (1 + LEVEL_TOLERANCE)


def patch_geometry(
    slide_mpp: float, target_mpp: float, patch_px: int, level_downsamples: tuple[float, ...] | list[float]
) -> PatchGeometry:
    """Footprint, read level and read size for patches of ``patch_px`` at exactly ``target_mpp``.

    The read level is the coarsest one at or finer than the target (within LEVEL_TOLERANCE), so patches
    are only ever shrunk or kept, never noticeably enlarged - unless even level 0 is coarser than the target
    (a low-resolution scan), when level-0 pixels are enlarged by ``upsample_factor``.
    """
    if slide_mpp <= 0 or target_mpp <= 0 or patch_px < 1:
        raise ValueError(
            f"mpp values and patch_px must be positive, got slide {slide_mpp} µm/px, target {target_mpp} µm/px, "
            f"patch_px {patch_px}"
        )
    footprint_px = round(patch_px * target_mpp / slide_mpp)
    if footprint_px < 1:
        raise ValueError(
            f"a {patch_px} px patch at {target_mpp:g} µm/px covers {patch_px * target_mpp:g} µm, less than one "
            f"level-0 pixel of {slide_mpp:g} µm: the slide's resolution is wrong (set the sample sheet's 'mpp') "
            "or tiling.target_mpp / tiling.patch_px are"
        )
    wanted = target_mpp / slide_mpp * (1 + LEVEL_TOLERANCE)
    read_level = max((i for i, d in enumerate(level_downsamples) if d <= wanted), default=0)
    read_px = max(1, round(footprint_px / level_downsamples[read_level]))
    return PatchGeometry(slide_mpp, target_mpp, patch_px, footprint_px, read_level, read_px)


@dataclass(frozen=True)
class TissueParams:
    """``tiling.tissue`` in the config (see the schema for meanings and defaults)."""

    detection_mpp: float = 8.0
    median_blur: int = 7
    saturation_threshold: int | None = 8
    closing: int = 4
    min_tissue_area_um2: float = 250_000.0
    min_hole_area_um2: float = 40_000.0
    exclude_pen: bool = True

    def __post_init__(self) -> None:
        if self.median_blur % 2 == 0:
            raise ValueError(
                f"tiling.tissue.median_blur must be an odd number of pixels, got {self.median_blur}"
            )

    @classmethod
    def from_config(cls, tissue: Mapping[str, Any] | None) -> TissueParams:
        return cls(**dict(tissue or {}))


@dataclass
class TissueMask:
    """Tissue found on a slide. Contours are (n, 2) float arrays of level-0 x, y."""

    mask: np.ndarray  # bool (H, W) at `downsample`
    downsample: float  # level-0 px per mask px
    mpp: float  # µm per mask px
    threshold: float  # saturation threshold applied (the Otsu value when configured as null)
    tissue_contours: list[np.ndarray] = field(default_factory=list)
    hole_contours: list[np.ndarray] = field(default_factory=list)
    # Pieces the min_tissue_area_um2 filter dropped: outlines (level-0) and areas, largest first.
    small_piece_contours: list[np.ndarray] = field(default_factory=list)
    small_piece_areas_um2: list[float] = field(default_factory=list)
    stained_area_um2: float = 0.0  # above the saturation threshold, before pen/dark removal and the filters

    @property
    def area_um2(self) -> float:
        return float(self.mask.sum()) * self.mpp**2


def pen_and_dark_mask(rgb: np.ndarray, hsv: np.ndarray) -> np.ndarray:
    """Pixels that are marker ink (green, blue, black/grey) or too dark to be stained tissue.

    H&E has no green, so any clearly saturated green is ink. Hematoxylin is blue-purple but dimmer and
    redder than a blue marker, which is bright, saturated and has little red. Black marker on glass is dark
    and grey, while even the darkest nuclei stay strongly saturated purple. OpenCV hue is degrees / 2.
    """
    hue, saturation, value = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    red = rgb[..., 0]
    green_ink = (hue >= 35) & (hue <= 90) & (saturation >= 50)
    blue_ink = (hue >= 95) & (hue <= 125) & (saturation >= 120) & (value >= 140) & (red < 100)
    grey_ink = (value < 130) & (saturation < 60)
    dark = value < 50
    ink = (green_ink | blue_ink | grey_ink | dark).astype(np.uint8)
    # Strokes are several pixels wide; lone dark pixels inside tissue (nuclei clusters) are not ink.
    ink = cv2.morphologyEx(ink, cv2.MORPH_OPEN, INK_SPECK_KERNEL)
    # Stroke edges blend ink with glass or tissue into paler, still saturated pixels: widen by 2 px.
    return cv2.dilate(ink, PEN_MARGIN_KERNEL) > 0


def _close(mask: np.ndarray, size: int) -> np.ndarray:
    """Morphological closing with a size x size square that does not shift the mask.

    cv2.MORPH_CLOSE with an even kernel (CLAM's 4) moves the mask one pixel down-right, i.e. 8 µm per
    detection pixel; eroding with the mirrored anchor cancels the dilation's offset.
    """
    kernel = np.ones((size, size), np.uint8)
    anchor = size // 2
    dilated = cv2.dilate(mask.astype(np.uint8), kernel, anchor=(anchor, anchor))
    mirrored = size - 1 - anchor
    return cv2.erode(dilated, kernel, anchor=(mirrored, mirrored)) > 0


def _drop_small_components(mask: np.ndarray, min_px: float) -> tuple[np.ndarray, np.ndarray]:
    """The mask without components below ``min_px`` and the px areas of those dropped, largest first."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(mask, dtype=bool), np.zeros(0, np.int64)
    areas = stats[:, cv2.CC_STAT_AREA]
    keep = areas >= min_px
    keep[0] = False  # label 0 is the background
    dropped = areas[1:][~keep[1:]]
    return keep[labels], np.sort(dropped)[::-1]


def _fill_small_holes(mask: np.ndarray, max_px: float) -> np.ndarray:
    """Fill background regions enclosed by tissue that are smaller than ``max_px``."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=4)
    if count <= 1:
        return mask
    small = stats[:, cv2.CC_STAT_AREA] < max_px
    small[0] = False  # label 0 is the tissue itself
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    small[border] = False
    return mask | small[labels]


@dataclass(frozen=True)
class _Segmentation:
    mask: np.ndarray  # kept tissue
    threshold: float
    stained: np.ndarray  # above the saturation threshold
    small_pieces: np.ndarray  # pieces dropped by min_tissue_area_um2
    small_piece_px: np.ndarray  # their px areas, largest first


def detect_tissue_in_image(
    rgb: np.ndarray, mpp: float, params: TissueParams
) -> tuple[np.ndarray, float]:
    """Boolean tissue mask of an RGB image at ``mpp`` µm/px, and the saturation threshold used."""
    segmentation = _segment(rgb, mpp, params)
    return segmentation.mask, segmentation.threshold


def _segment(rgb: np.ndarray, mpp: float, params: TissueParams) -> _Segmentation:
    """The tissue mask with what each filter removed, so an empty result can be explained."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    saturation = cv2.medianBlur(np.ascontiguousarray(hsv[..., 1]), params.median_blur)
    if params.saturation_threshold is None:
        threshold, binary = cv2.threshold(saturation, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    else:
        threshold, binary = cv2.threshold(
            saturation, params.saturation_threshold, 255, cv2.THRESH_BINARY
        )
    stained = binary > 0
    mask = stained.copy()
    if params.exclude_pen:
        mask &= ~pen_and_dark_mask(rgb, hsv)
    if params.closing > 0:
        mask = _close(mask, params.closing)
    px_area_um2 = mpp**2
    mask = _fill_small_holes(mask, params.min_hole_area_um2 / px_area_um2)
    kept, small_piece_px = _drop_small_components(mask, params.min_tissue_area_um2 / px_area_um2)
    return _Segmentation(kept, float(threshold), stained, mask & ~kept, small_piece_px)


def _contours(mask: np.ndarray, downsample: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Outer tissue outlines and hole outlines, in level-0 coordinates."""
    found, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    tissue: list[np.ndarray] = []
    holes: list[np.ndarray] = []
    for contour, (_, _, _, parent) in zip(found, hierarchy[0] if hierarchy is not None else []):
        # Pixel centres: mask pixel i spans level-0 [i*d, (i+1)*d).
        points = (contour[:, 0, :].astype(np.float64) + 0.5) * downsample
        (tissue if parent < 0 else holes).append(points)
    return tissue, holes


def detect_tissue(slide: Slide, params: TissueParams) -> TissueMask:
    """Tissue mask of a slide at about ``params.detection_mpp`` (never finer), read from the best level."""
    image, downsample = slide.read_downsampled(params.detection_mpp / slide.mpp)
    mpp = slide.mpp * downsample
    segmentation = _segment(image, mpp, params)
    tissue, holes = _contours(segmentation.mask, downsample)
    small_pieces, _ = _contours(segmentation.small_pieces, downsample)
    return TissueMask(
        segmentation.mask, downsample, mpp, segmentation.threshold, tissue, holes,
        small_piece_contours=small_pieces,
        small_piece_areas_um2=[float(px) * mpp**2 for px in segmentation.small_piece_px],
        stained_area_um2=float(segmentation.stained.sum()) * mpp**2,
    )


def patch_tissue_fractions(
    tissue: TissueMask, dimensions: tuple[int, int], footprint_px: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid x starts, y starts (level-0, int64) and each grid cell's tissue fraction, shape (len(ys), len(xs)).

    The grid starts at (0, 0) with step ``footprint_px`` and holds only cells lying inside the slide; a cell's
    tissue fraction is the mean of the mask over the mask pixels it covers (an integral image makes this O(1)
    per cell).
    """
    if footprint_px < 1:
        raise ValueError(f"footprint_px must be at least 1 level-0 pixel, got {footprint_px}")
    width, height = dimensions
    xs = np.arange(0, width - footprint_px + 1, footprint_px, dtype=np.int64)
    ys = np.arange(0, height - footprint_px + 1, footprint_px, dtype=np.int64)
    if len(xs) == 0 or len(ys) == 0 or not tissue.mask.any():
        return xs, ys, np.zeros((len(ys), len(xs)))
    mask_height, mask_width = tissue.mask.shape
    integral = cv2.integral(tissue.mask.astype(np.uint8))  # (H+1, W+1) int32

    def _bounds(starts: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
        first = np.clip(np.round(starts / tissue.downsample).astype(np.int64), 0, limit - 1)
        last = np.round((starts + footprint_px) / tissue.downsample).astype(np.int64)
        return first, np.clip(np.maximum(last, first + 1), 1, limit)

    x0, x1 = _bounds(xs, mask_width)
    y0, y1 = _bounds(ys, mask_height)
    covered = (
        integral[y1][:, x1] - integral[y0][:, x1] - integral[y1][:, x0] + integral[y0][:, x0]
    )
    return xs, ys, covered / ((y1 - y0)[:, None] * (x1 - x0)[None, :])


def patch_coords(
    tissue: TissueMask, dimensions: tuple[int, int], footprint_px: int, min_tissue_fraction: float
) -> np.ndarray:
    """(N, 2) int64 level-0 top-left x, y of grid patches lying inside the slide with enough tissue."""
    xs, ys, fraction = patch_tissue_fractions(tissue, dimensions, footprint_px)
    if not tissue.mask.any():  # an all-glass grid must stay empty even at min_tissue_fraction 0
        return np.zeros((0, 2), dtype=np.int64)
    rows, cols = np.nonzero(fraction >= min_tissue_fraction)
    return np.stack([xs[cols], ys[rows]], axis=1).astype(np.int64)


def explain_no_patches(
    tissue: TissueMask,
    params: TissueParams,
    dimensions: tuple[int, int],
    footprint_px: int,
    min_tissue_fraction: float,
) -> str:
    """Why a slide got no patches: which setting removed its tissue, then every setting that can."""
    xs, ys, fraction = patch_tissue_fractions(tissue, dimensions, footprint_px)
    threshold = (
        f"{tissue.threshold:.0f} (Otsu)" if params.saturation_threshold is None else f"{tissue.threshold:.0f}"
    )
    if len(xs) == 0 or len(ys) == 0:
        cause = (
            f"the slide ({dimensions[0]}x{dimensions[1]} px) is smaller than one patch ({footprint_px} level-0 px); "
            "check its resolution (the sample sheet's 'mpp') and tiling.target_mpp / tiling.patch_px"
        )
    elif tissue.mask.any():
        cause = (
            f"tissue of {tissue.area_um2 / 1e6:.3f} mm² was found, but no patch has tiling.min_tissue_fraction "
            f"= {min_tissue_fraction:g} of its area in tissue (best: {fraction.max():.2f})"
        )
    elif tissue.small_piece_areas_um2:
        count = len(tissue.small_piece_areas_um2)
        cause = (
            f"{count} tissue piece(s) were found but all were smaller than tiling.tissue.min_tissue_area_um2 = "
            f"{params.min_tissue_area_um2:g} µm² (largest: {tissue.small_piece_areas_um2[0]:.0f} µm²); biopsy "
            "fragments and TMA cores need a lower min_tissue_area_um2"
        )
    elif tissue.stained_area_um2 > 0 and params.exclude_pen:
        cause = (
            f"{tissue.stained_area_um2 / 1e6:.3f} mm² was above the saturation threshold, but all of it was "
            "classed as pen ink or near-black and removed (tiling.tissue.exclude_pen)"
        )
    else:
        cause = f"no pixel was above tiling.tissue.saturation_threshold = {threshold}"
    settings = (
        f"tiling.tissue.saturation_threshold ({threshold}; lower it, or null for Otsu), "
        f"tiling.tissue.exclude_pen ({params.exclude_pen}), "
        f"tiling.tissue.min_tissue_area_um2 ({params.min_tissue_area_um2:g}), "
        f"tiling.min_tissue_fraction ({min_tissue_fraction:g}), and less directly tiling.tissue.median_blur "
        f"({params.median_blur}) and closing ({params.closing})"
    )
    return f"{cause}. Settings that remove tissue: {settings}"


@dataclass(frozen=True)
class TilingResult:
    slide_id: str
    n_patches: int
    geometry: PatchGeometry
    tissue_area_um2: float
    mpp_source: str


def tile_slide(
    slide_path: str | Path,
    store_path: str | Path,
    qc_path: str | Path | None,
    *,
    slide_id: str,
    tiling: Mapping[str, Any],
    mpp_override: float | None = None,
) -> TilingResult:
    """Detect tissue, lay the patch grid and write the patch store (and the QC picture when ``qc_path``)."""
    params = TissueParams.from_config(tiling.get("tissue"))
    target_mpp = float(tiling.get("target_mpp", 0.5))
    patch_px = int(tiling.get("patch_px", 256))
    min_fraction = float(tiling.get("min_tissue_fraction", 0.5))
    with open_slide(
        slide_path, slide_id=slide_id, mpp_override=mpp_override, assume_mpp=tiling.get("assume_mpp")
    ) as slide:
        label = f"slide {slide_id!r} ({slide_path})"
        try:
            geometry = patch_geometry(slide.mpp, target_mpp, patch_px, slide.level_downsamples)
        except ValueError as error:
            raise SlideError(
                f"{label}, {slide.mpp:g} µm/px from {slide.mpp_source}: cannot lay patches: {error}"
            ) from error
        log.info(
            "%s: %dx%d px, %d level(s), %.4f µm/px (from %s); patches %d px at %.3f µm/px = %d level-0 px, "
            "read %d px at level %d",
            slide_id, *slide.dimensions, slide.level_count, slide.mpp, slide.mpp_source, patch_px,
            target_mpp, geometry.footprint_px, geometry.read_px, geometry.read_level,
        )
        if geometry.upsampled:
            log.warning(
                "%s: its finest level is %.4f µm/px (from %s), coarser than tiling.target_mpp %.3f µm/px, so each "
                "patch is %d px read at level 0 and upsampled %.2fx to %d px: the encoder sees interpolated, not "
                "scanned, detail. Rescan at higher resolution or raise tiling.target_mpp if this is not intended",
                label, slide.mpp, slide.mpp_source, target_mpp, geometry.read_px, geometry.upsample_factor,
                patch_px,
            )
        tissue = detect_tissue(slide, params)
        coords = patch_coords(tissue, slide.dimensions, geometry.footprint_px, min_fraction)
        log.info(
            "%s: tissue %.2f mm² at %.2f µm/px (saturation threshold %.0f); %d patches",
            slide_id, tissue.area_um2 / 1e6, tissue.mpp, tissue.threshold, len(coords),
        )
        if tissue.small_piece_areas_um2:
            log.info(
                "%s: %d tissue piece(s) smaller than tiling.tissue.min_tissue_area_um2 = %g µm² dropped "
                "(largest: %.0f µm²)",
                slide_id, len(tissue.small_piece_areas_um2), params.min_tissue_area_um2,
                tissue.small_piece_areas_um2[0],
            )
        if len(coords) == 0:
            reason = explain_no_patches(tissue, params, slide.dimensions, geometry.footprint_px, min_fraction)
            log.warning(
                "%s: no tissue patches found; writing an empty patch store. %s. Check the QC picture%s",
                label, reason, f" {qc_path}" if qc_path is not None else "",
            )
        attrs = {
            "slide_id": slide_id,
            "slide_path": str(Path(slide_path).resolve()),
            "mpp_level0": slide.mpp,
            "mpp_source": slide.mpp_source,
            "target_mpp": target_mpp,
            "patch_px": patch_px,
            "footprint_px": geometry.footprint_px,
            "read_level": geometry.read_level,
            "read_px": geometry.read_px,
            "upsample_factor": geometry.upsample_factor,
            "tissue": {
                **asdict(params),
                "min_tissue_fraction": min_fraction,
                "detection_mpp_used": tissue.mpp,
                "saturation_threshold_used": tissue.threshold,
            },
            "n_patches": int(len(coords)),
            "tissue_area_um2": tissue.area_um2,
            "level_dimensions": [list(d) for d in slide.level_dimensions],
        }
        write_store(store_path, {"coords": coords}, attrs)
        if qc_path is not None:
            from mosare.plots.tissue import plot_tissue_qc

            plot_tissue_qc(slide, tissue, coords, geometry, qc_path)
    return TilingResult(slide_id, int(len(coords)), geometry, tissue.area_um2, slide.mpp_source)
