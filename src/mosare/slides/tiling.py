"""The tiling stage, per slide: tissue, the patch grid at the exact target µm/px, and the patch store.

Geometry lives in ``mosare.slides.patch_geometry``, the grid in ``mosare.slides.patch_grid`` and tissue detection in
``mosare.slides.tissue`` (detectors: ``mosare.tissue_<method>``). ``tile_slide`` returns what it found; the QC
picture is drawn from that by ``mosare.reporting.plots.tissue`` (called by the workflow script), so computing never
imports plotting.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

# The default detector is imported by name, not found at run time, so it is part of this stage's code fingerprint.
from mosare.slides.exclusion import EXCLUDE, SWITCH_HINT, SlideExclusion, check_on_error, exclude_slide
from mosare.slides.patch_geometry import PatchGeometry, patch_geometry
from mosare.slides.patch_grid import grid_starts, mask_cell_fractions
from mosare.slides.patch_store import PatchStore
from mosare.slides.qc_metrics import FinePassQC, slide_qc_metrics
from mosare.slides.reader import DEFAULT_MAX_UNREADABLE_FRACTION, Slide, SlideError, UnreadableTile, open_slide
from mosare.slides.tissue import TissueMask, TissueParams, detect_tissue, fine_cell_fractions

log = logging.getLogger(__name__)

THUMBNAIL_PX = 1600  # longer side of the QC picture's thumbnail


def kept_cells(fractions: np.ndarray, min_tissue_fraction: float) -> np.ndarray:
    """Grid cells kept as patches: at least ``min_tissue_fraction`` tissue, and some tissue at all."""
    return (fractions >= min_tissue_fraction) & (fractions > 0)


def patch_coords(fractions: np.ndarray, xs: np.ndarray, ys: np.ndarray, min_tissue_fraction: float) -> np.ndarray:
    """(N, 2) int64 level-0 top-left x, y of the grid cells with at least ``min_tissue_fraction`` tissue.

    A cell without any tissue is never kept, even at ``min_tissue_fraction`` 0.
    """
    rows, cols = np.nonzero(kept_cells(fractions, min_tissue_fraction))
    return np.stack([xs[cols], ys[rows]], axis=1).astype(np.int64)


def explain_no_patches(
    tissue: TissueMask,
    params: TissueParams,
    dimensions: tuple[int, int],
    footprint_px: int,
    min_tissue_fraction: float,
    fractions: np.ndarray | None = None,
) -> str:
    """Why a slide got no patches: which setting removed its tissue, then every setting that can.

    ``fractions`` are the grid cells' tissue fractions (default: from the coarse mask).
    """
    xs, ys = grid_starts(dimensions, footprint_px)
    fraction = (
        mask_cell_fractions(tissue.mask, tissue.downsample, xs, ys, footprint_px) if fractions is None else fractions
    )
    threshold = f"{tissue.threshold:.0f} (Otsu)" if params.saturation_threshold is None else f"{tissue.threshold:.0f}"
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
            f"{tissue.min_piece_um2:g} µm² (largest: {tissue.small_piece_areas_um2[0]:.0f} µm²); lower "
            "min_tissue_area_um2 to keep pieces smaller than that"
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
        f"tiling.tissue.min_tissue_area_um2 ({tissue.min_piece_um2:g}), "
        f"tiling.min_tissue_fraction ({min_tissue_fraction:g}), and less directly tiling.tissue.median_blur "
        f"({params.median_blur}) and closing ({params.closing})"
    )
    return f"{cause}. Settings that remove tissue: {settings}"


@dataclass(frozen=True)
class TilingResult:
    """What tiling one slide found: the store's contents plus what the QC picture draws."""

    slide_id: str
    slide_label: str
    coords: np.ndarray
    geometry: PatchGeometry
    tissue: TissueMask
    mpp: float
    mpp_source: str
    dimensions: tuple[int, int]
    unreadable_tiles: list[UnreadableTile]
    thumbnail: np.ndarray | None  # RGB, longer side THUMBNAIL_PX, when asked for

    @property
    def n_patches(self) -> int:
        return int(len(self.coords))

    @property
    def tissue_area_um2(self) -> float:
        return self.tissue.area_um2


def tile_slide(
    slide_path: str | Path,
    store_path: str | Path,
    *,
    slide_id: str,
    tiling: Mapping[str, Any],
    mpp_override: float | None = None,
    thumbnail: bool = False,
) -> TilingResult:
    """Detect tissue, lay the patch grid and write the patch store; with ``thumbnail``, also read the QC thumbnail.

    Corrupt tiles met on the way are read from a finer level or filled with background, listed in the store
    (``unreadable_tiles``) and logged; the slide fails only when more than ``tiling.max_unreadable_fraction`` of
    its area is lost.
    """
    params = TissueParams.from_config(tiling.get("tissue"))
    target_mpp = float(tiling.get("target_mpp", 0.5))
    patch_px = int(tiling.get("patch_px", 256))
    min_fraction = float(tiling.get("min_tissue_fraction", 0.5))
    max_unreadable = float(tiling.get("max_unreadable_fraction", DEFAULT_MAX_UNREADABLE_FRACTION))
    with open_slide(
        slide_path,
        slide_id=slide_id,
        mpp_override=mpp_override,
        assume_mpp=tiling.get("assume_mpp"),
        max_unreadable_fraction=max_unreadable,
    ) as slide:
        label = f"slide {slide_id!r} ({slide_path})"
        geometry = _geometry(slide, label, target_mpp, patch_px)
        patch_area_um2 = (patch_px * target_mpp) ** 2
        tissue = detect_tissue(slide, params, params.min_piece_um2(patch_area_um2))
        xs, ys = grid_starts(slide.dimensions, geometry.footprint_px)
        fine_qc = FinePassQC()
        fractions = fine_cell_fractions(slide, tissue, params, xs, ys, geometry.footprint_px, fine_qc.add)
        coords = patch_coords(fractions, xs, ys, min_fraction)
        _log_tissue(slide_id, label, tissue, coords, params, slide, geometry, min_fraction, fractions)
        image = slide.thumbnail(THUMBNAIL_PX) if thumbnail else None
        unreadable = slide.unreadable_tiles
        if unreadable:
            log.warning(
                "%s: %d tile(s) could not be decoded (%.3f%% of the slide filled with background, the rest read "
                "from a finer level); listed in the patch store's unreadable_tiles and drawn on the QC picture",
                label,
                len(unreadable),
                100 * slide.unreadable_fraction,
            )
        PatchStore(
            coords=coords,
            slide_id=slide_id,
            slide_path=str(Path(slide_path).resolve()),
            mpp_level0=slide.mpp,
            mpp_source=slide.mpp_source,
            target_mpp=target_mpp,
            patch_px=patch_px,
            footprint_px=geometry.footprint_px,
            read_level=geometry.read_level,
            read_px=geometry.read_px,
            upsample_factor=geometry.upsample_factor,
            tissue={
                **asdict(params),
                "min_tissue_fraction": min_fraction,
                "min_tissue_area_um2_used": tissue.min_piece_um2,
                "detection_mpp_used": tissue.mpp,
                "saturation_threshold_used": tissue.threshold,
            },
            tissue_area_um2=tissue.area_um2,
            level_dimensions=[list(d) for d in slide.level_dimensions],
            unreadable_tiles=[tile.as_dict() for tile in unreadable],
            qc=slide_qc_metrics(
                fine=fine_qc,
                tissue_mask=tissue.mask,
                tissue_mpp=tissue.mpp,
                ink=tissue.ink,
                fractions=fractions,
                kept=kept_cells(fractions, min_fraction),
                unreadable_fraction=slide.unreadable_fraction,
            ),
        ).write(store_path)
        return TilingResult(
            slide_id,
            label,
            coords,
            geometry,
            tissue,
            slide.mpp,
            slide.mpp_source,
            slide.dimensions,
            unreadable,
            image,
        )


def tile_or_exclude(
    slide_path: str | Path,
    store_path: str | Path,
    *,
    slide_id: str,
    tiling: Mapping[str, Any],
    on_error: str,
    mpp_override: float | None = None,
    thumbnail: bool = False,
) -> TilingResult | SlideExclusion:
    """``tile_slide``, with a slide that cannot be used (``SlideError``) handled by ``slides.on_error``: ``exclude``
    writes a ``SlideExclusion`` at ``store_path`` and returns it; ``stop`` raises the error, saying how to switch."""
    try:
        return tile_slide(
            slide_path, store_path, slide_id=slide_id, tiling=tiling, mpp_override=mpp_override, thumbnail=thumbnail
        )
    except SlideError as error:
        if check_on_error(on_error) != EXCLUDE:
            raise type(error)(f"{error}. {SWITCH_HINT}") from error
        return exclude_slide(store_path, slide_id=slide_id, slide_path=slide_path, stage="tiling", error=error)


def _geometry(slide: Slide, label: str, target_mpp: float, patch_px: int) -> PatchGeometry:
    try:
        geometry = patch_geometry(slide.mpp, target_mpp, patch_px, slide.level_downsamples)
    except ValueError as error:
        raise SlideError(
            f"{label}, {slide.mpp:g} µm/px from {slide.mpp_source}: cannot lay patches: {error}"
        ) from error
    log.info(
        "%s: %dx%d px, %d level(s), %.4f µm/px (from %s); patches %d px at %.3f µm/px = %d level-0 px, "
        "read %d px at level %d",
        slide.slide_id,
        *slide.dimensions,
        slide.level_count,
        slide.mpp,
        slide.mpp_source,
        patch_px,
        target_mpp,
        geometry.footprint_px,
        geometry.read_px,
        geometry.read_level,
    )
    if geometry.upsampled:
        log.warning(
            "%s: its finest level is %.4f µm/px (from %s), coarser than tiling.target_mpp %.3f µm/px, so each "
            "patch is %d px read at level 0 and upsampled %.2fx to %d px: the encoder sees interpolated, not "
            "scanned, detail. Rescan at higher resolution or raise tiling.target_mpp if this is not intended",
            label,
            slide.mpp,
            slide.mpp_source,
            target_mpp,
            geometry.read_px,
            geometry.upsample_factor,
            patch_px,
        )
    return geometry


def _log_tissue(
    slide_id: str,
    label: str,
    tissue: TissueMask,
    coords: np.ndarray,
    params: TissueParams,
    slide: Slide,
    geometry: PatchGeometry,
    min_fraction: float,
    fractions: np.ndarray,
) -> None:
    log.info(
        "%s: tissue %.2f mm² (threshold %.0f, detected at %.2f µm/px, patch fractions at %.2f µm/px); %d patches",
        slide_id,
        tissue.area_um2 / 1e6,
        tissue.threshold,
        tissue.mpp,
        params.fraction_mpp,
        len(coords),
    )
    if tissue.small_piece_areas_um2:
        log.info(
            "%s: %d tissue piece(s) smaller than %g µm² (tiling.tissue.min_tissue_area_um2) dropped "
            "(largest: %.0f µm²)",
            slide_id,
            len(tissue.small_piece_areas_um2),
            tissue.min_piece_um2,
            tissue.small_piece_areas_um2[0],
        )
    if len(coords) == 0:
        reason = explain_no_patches(tissue, params, slide.dimensions, geometry.footprint_px, min_fraction, fractions)
        log.warning(
            "%s: no tissue patches found; writing an empty patch store. %s. Check the QC picture", label, reason
        )
