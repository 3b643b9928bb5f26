"""Where one patch lies on a slide: its level-0 footprint at an exact target µm/px and the pyramid level read.

A 0.2527 µm/px slide gets a footprint of 507 level-0 px for 256 px at 0.5 µm/px, not 512.
"""

from __future__ import annotations

from dataclasses import dataclass

# A pyramid level this much coarser than the target still counts as "at the target": reading a level at
# 1.0108 µm/px for a 1.0 µm/px target and upscaling 1% loses nothing visible and decodes 4x fewer pixels
# than the next finer level. Also absorbs rounding in level sizes (downsample 3.9996 vs 4).
LEVEL_TOLERANCE = 0.02


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
