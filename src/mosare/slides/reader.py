"""The one whole-slide reader every stage uses: resolution (µm/px), pyramid levels, patches, thumbnails.

Built on OpenSlide. A ``Slide`` owns one OpenSlide handle; open one per process (DataLoader workers
included), never share a handle across processes.
"""

from __future__ import annotations

import ctypes
import logging
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import openslide
from tqdm import tqdm

from mosare.core.config_schema import schema_defaults

log = logging.getLogger(__name__)

MppSource = Literal["file", "sample_sheet", "config"]

# Largest RGBA block read from OpenSlide in one call when scanning a whole level (tissue detection,
# thumbnails). Larger levels - a one-level slide of 100k x 80k px - are read in strips and downsampled
# strip by strip, so a level is never held in memory whole.
MAX_READ_BYTES = 64 * 1024**2

# Level-0 µm/px a slide scan can have: 100x oil objectives reach ~0.1, 1.25x overview scans ~8. A value
# outside is a wrong tag or a typo (magnification entered as mpp), not a slide.
PLAUSIBLE_MPP = (0.05, 10.0)

# Largest fraction of a slide's area that may be unreadable at every level (corrupt tiles filled with
# background) before the slide is refused; ``tiling.max_unreadable_fraction`` in the config.
DEFAULT_MAX_UNREADABLE_FRACTION: float = schema_defaults("tiling")["max_unreadable_fraction"]
DEFAULT_TILE_PX = 256  # when the format does not say its tile size
BACKGROUND = 255  # unreadable pixels are filled like OpenSlide's transparent (unscanned) ones: white

_UINT32_POINTER = ctypes.POINTER(ctypes.c_uint32)
OPAQUE = 0xFF000000  # smallest ARGB value with alpha 255
if sys.byteorder != "little":
    raise ImportError("mosare.slides.reader reads OpenSlide's ARGB pixels as little-endian bytes")


class SlideError(RuntimeError):
    """A slide cannot be used; the message names the file (and slide id) and what to do."""


class SlideOpenError(SlideError):
    """The file is missing, unreadable, corrupt or not a slide format OpenSlide knows."""


class SlideReadError(SlideError):
    """Reading pixels failed (e.g. a truncated file or a corrupt JPEG tile)."""


class TooManyUnreadableTilesError(SlideReadError):
    """More of the slide than ``max_unreadable_fraction`` could not be read at any level."""


@dataclass(frozen=True)
class UnreadableTile:
    """A tile of ``level`` that failed to decode; ``x, y, width, height`` are level-0 px.

    ``filled_from`` is the finer level whose pixels replaced it, or None when no level could be read
    there and it was filled with background.
    """

    level: int
    x: int
    y: int
    width: int
    height: int
    filled_from: int | None

    def as_dict(self) -> dict[str, int | None]:
        return asdict(self)


class MissingMppError(SlideError):
    """Neither the file, the sample sheet nor the config gives the slide's level-0 µm/px."""


class ImplausibleMppError(SlideError):
    """The level-0 µm/px in use is outside PLAUSIBLE_MPP (e.g. a 72 dpi tag read as 352.78 µm/px)."""


def _valid_mpp(value: object) -> float | None:
    """``value`` as a positive finite float, or None when absent (None, NaN, empty, non-numeric, <= 0)."""
    try:
        mpp = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return mpp if math.isfinite(mpp) and mpp > 0 else None


def resolve_mpp(
    file_mpp: object, mpp_override: object, assume_mpp: object, *, slide_label: str
) -> tuple[float, MppSource]:
    """Level-0 µm/px and where it came from: the sample sheet's ``mpp``, else the file, else config ``assume_mpp``.

    The sheet wins because a user fills it in on purpose, typically to correct a file whose resolution tags
    are wrong (an image tool's 72 dpi default reads as 352.78 µm/px). The value used must be plausible for a
    microscope scan (PLAUSIBLE_MPP), else ImplausibleMppError says where it came from and how to fix it.
    """
    sheet, from_file = _valid_mpp(mpp_override), _valid_mpp(file_mpp)
    if sheet is not None and from_file is not None and abs(sheet / from_file - 1) > 0.01:
        log.warning(
            "%s: the sample sheet's mpp %.4f µm/px overrides the file's %.4f µm/px; using the sample sheet's value",
            slide_label,
            sheet,
            from_file,
        )
    for mpp, source in ((sheet, "sample_sheet"), (from_file, "file"), (_valid_mpp(assume_mpp), "config")):
        if mpp is not None:
            _check_plausible(mpp, source, slide_label)  # type: ignore[arg-type]
            return mpp, source  # type: ignore[return-value]
    raise MissingMppError(
        f"{slide_label}: the file does not record its resolution (µm per level-0 pixel) and none was given. "
        "Fix: put the slide's level-0 µm/px in the sample sheet's 'mpp' column for this row, or set "
        "'tiling: assume_mpp: <µm/px>' in the config to apply one value to every slide lacking it "
        "(e.g. 0.25 for 40x, 0.5 for 20x scanners). The pipeline never guesses."
    )


_MPP_SOURCE_TEXT: dict[MppSource, str] = {
    "file": "the file's metadata",
    "sample_sheet": "the sample sheet's 'mpp' column",
    "config": "the config's tiling.assume_mpp",
}
_MPP_FIX: dict[MppSource, str] = {
    "file": "the file's resolution tags are probably wrong (72 dpi, an image tool's default, reads as 352.78 "
    "µm/px). Fix: put the slide's true level-0 µm/px in the sample sheet's 'mpp' column for this row; it takes "
    "precedence over the file",
    "sample_sheet": "Fix: correct this row's 'mpp' in the sample sheet (µm per level-0 pixel, not magnification)",
    "config": "Fix: correct tiling.assume_mpp in the config (µm per level-0 pixel, not magnification), or put "
    "this slide's value in the sample sheet's 'mpp' column",
}


def _check_plausible(mpp: float, source: MppSource, slide_label: str) -> None:
    low, high = PLAUSIBLE_MPP
    if not low <= mpp <= high:
        raise ImplausibleMppError(
            f"{slide_label}: level-0 resolution {mpp:g} µm/px from {_MPP_SOURCE_TEXT[source]} is outside the "
            f"plausible {low:g}-{high:g} µm/px of a slide scan (0.25 at 40x, 0.5 at 20x); {_MPP_FIX[source]}"
        )


class Slide:
    """An open whole-slide image with a known level-0 resolution. Use as a context manager or call ``close()``."""

    def __init__(
        self,
        path: str | Path,
        *,
        slide_id: str | None = None,
        mpp_override: float | None = None,
        assume_mpp: float | None = None,
        max_unreadable_fraction: float = DEFAULT_MAX_UNREADABLE_FRACTION,
    ) -> None:
        self.path = Path(path)
        self.max_unreadable_fraction = max_unreadable_fraction
        # Tiles that failed in region reads, keyed by (level, level-0 x, y) so a re-read is listed once.
        self._unreadable: dict[tuple[int, int, int], UnreadableTile] = {}
        self.slide_id = slide_id if slide_id is not None else self.path.stem
        label = f"slide {self.slide_id!r} ({self.path})"
        if not self.path.is_file():
            raise SlideOpenError(f"{label}: file not found; check the sample sheet's slide_path")
        try:
            self._osr = openslide.OpenSlide(str(self.path))
        except (openslide.OpenSlideError, OSError, ValueError) as error:
            raise SlideOpenError(
                f"{label}: cannot be opened as a whole-slide image ({type(error).__name__}: {error}). "
                "The file is corrupt, truncated or not a format OpenSlide reads (SVS, tiled TIFF, NDPI, MRXS, ...); "
                "re-copy or re-export it, or remove its row from the sample sheet"
            ) from error
        self._closed = False
        file_mpp = self._osr.properties.get(openslide.PROPERTY_NAME_MPP_X)
        try:
            self.mpp, self.mpp_source = resolve_mpp(file_mpp, mpp_override, assume_mpp, slide_label=label)
        except SlideError:
            self._osr.close()
            raise
        self.dimensions: tuple[int, int] = self._osr.dimensions
        self.level_count: int = self._osr.level_count
        self.level_dimensions: tuple[tuple[int, int], ...] = self._osr.level_dimensions
        self.level_downsamples: tuple[float, ...] = self._osr.level_downsamples

    def __repr__(self) -> str:
        return f"Slide({self.slide_id!r}, mpp={self.mpp:.4f} [{self.mpp_source}], dimensions={self.dimensions})"

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the OpenSlide handle; closing twice is harmless."""
        if not self._closed:
            self._osr.close()
            self._closed = True

    @property
    def properties(self) -> dict[str, str]:
        return dict(self._osr.properties)

    @property
    def unreadable_tiles(self) -> list[UnreadableTile]:
        """Tiles that failed in region reads so far (``read_region`` and everything built on it)."""
        return list(self._unreadable.values())

    @property
    def unreadable_fraction(self) -> float:
        """Fraction of the level-0 area filled with background because no level could be read there."""
        lost = sum(t.width * t.height for t in self._unreadable.values() if t.filled_from is None)
        return lost / (self.dimensions[0] * self.dimensions[1])

    def _reopen(self) -> None:
        """A fresh OpenSlide handle: after a read error OpenSlide fails every later call on the old one."""
        self._osr.close()
        self._osr = openslide.OpenSlide(str(self.path))

    def _tile_px(self, level: int) -> tuple[int, int]:
        props = self._osr.properties
        width = props.get(f"openslide.level[{level}].tile-width")
        height = props.get(f"openslide.level[{level}].tile-height")
        return int(width or DEFAULT_TILE_PX), int(height or DEFAULT_TILE_PX)

    def read_region(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        """(height, width, 3) uint8 RGB of a region of ``level`` whose top-left is level-0 (x, y), surviving
        corrupt tiles.

        When the read fails, the region is re-read tile by tile on a fresh handle; a tile that still fails
        is read from the next finer level and shrunk, and where no level can be read it is filled with
        background. Each failed tile is listed in ``unreadable_tiles`` and logged with the slide named.
        Raises TooManyUnreadableTilesError once more than ``max_unreadable_fraction`` of the slide's area
        is background-filled.
        """
        try:
            return self._read_rgb(x, y, level, width, height)
        except SlideReadError as error:
            log.debug("%s; re-reading that region tile by tile", error)
            self._reopen()
        downsample = self.level_downsamples[level]
        tile_width, tile_height = self._tile_px(level)
        # Level px of the region (floored, as OpenSlide does), split on the level's tile grid: one tile per read.
        left, top = math.floor(x / downsample), math.floor(y / downsample)
        rgb = np.empty((height, width, 3), np.uint8)
        for row in range(top // tile_height * tile_height, top + height, tile_height):
            for col in range(left // tile_width * tile_width, left + width, tile_width):
                x0, y0 = max(col, left), max(row, top)
                x1, y1 = min(col + tile_width, left + width), min(row + tile_height, top + height)
                rgb[y0 - top : y1 - top, x0 - left : x1 - left] = self._read_tile(
                    level, (col, row, tile_width, tile_height), (x0, y0, x1 - x0, y1 - y0)
                )
        return rgb

    def _read_tile(self, level: int, tile: tuple[int, int, int, int], part: tuple[int, int, int, int]) -> np.ndarray:
        """``part`` (level px x, y, width, height) of one tile of ``level``; see ``read_region``."""
        downsample = self.level_downsamples[level]
        x, y, width, height = part
        # OpenSlide maps level-0 back to level px by dividing and flooring: ceil so the read starts in this tile.
        x0, y0 = math.ceil(x * downsample), math.ceil(y * downsample)
        try:
            return self._read_rgb(x0, y0, level, width, height)
        except SlideReadError:
            self._reopen()
        col, row, tile_width, tile_height = tile
        key = (level, math.ceil(col * downsample), math.ceil(row * downsample))
        filled_from = level - 1 if level > 0 else None
        if key not in self._unreadable:
            self._unreadable[key] = UnreadableTile(
                level, key[1], key[2], round(tile_width * downsample), round(tile_height * downsample), filled_from
            )
            log.warning(
                "slide %r (%s): the tile at level %d, level-0 (%d, %d), %dx%d px, cannot be decoded; %s",
                self.slide_id,
                self.path,
                level,
                key[1],
                key[2],
                tile_width,
                tile_height,
                f"using level {filled_from} there" if filled_from is not None else "filled with background",
            )
            self._check_unreadable_fraction()
        if filled_from is None:
            return np.full((height, width, 3), BACKGROUND, np.uint8)
        finer = downsample / self.level_downsamples[filled_from]
        region = self.read_region(x0, y0, filled_from, max(1, round(width * finer)), max(1, round(height * finer)))
        return cv2.resize(region, (width, height), interpolation=cv2.INTER_AREA)

    def _check_unreadable_fraction(self) -> None:
        fraction = self.unreadable_fraction
        if fraction > self.max_unreadable_fraction:
            raise TooManyUnreadableTilesError(
                f"slide {self.slide_id!r} ({self.path}): {fraction:.1%} of its area cannot be decoded at any "
                f"pyramid level (corrupt or missing tiles), more than tiling.max_unreadable_fraction = "
                f"{self.max_unreadable_fraction:g}. The file is probably truncated or damaged: re-copy it from "
                "the scanner, or remove its row from the sample sheet"
            )

    def _read_rgb(self, x: int, y: int, level: int, width: int, height: int) -> np.ndarray:
        """(height, width, 3) uint8 RGB; pixels without scan data (transparent) come out white.

        Reads straight into a NumPy buffer through OpenSlide's C call instead of ``OpenSlide.read_region``, which
        would un-premultiply every pixel into a PIL image that we would then copy and convert again.
        """
        argb = np.empty((height, width), dtype=np.uint32)  # premultiplied ARGB, native byte order
        try:
            openslide.lowlevel._read_region(
                self._osr._osr, argb.ctypes.data_as(_UINT32_POINTER), x, y, level, width, height
            )
        except openslide.OpenSlideError as error:
            raise SlideReadError(
                f"slide {self.slide_id!r} ({self.path}): reading {width}x{height} px at level {level}, "
                f"level-0 ({x}, {y}) failed: {error}. The file is probably truncated or has a corrupt tile; "
                "re-copy it from the scanner or remove its row from the sample sheet"
            ) from error
        bgra = argb.view(np.uint8).reshape(height, width, 4)  # little-endian: B, G, R, A in memory
        rgb = cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGB)
        if argb.min() >= OPAQUE:
            return rgb
        # Premultiplied colour over white: c + (255 - alpha).
        return rgb + (255 - bgra[..., 3:4])

    def read_patch(self, x: int, y: int, read_level: int, read_px: int, patch_px: int) -> np.ndarray:
        """A (patch_px, patch_px, 3) uint8 RGB patch whose top-left is level-0 (x, y).

        Reads ``read_px`` x ``read_px`` pixels at ``read_level`` and resizes them to ``patch_px`` (area
        averaging when shrinking, bicubic when enlarging), so the patch has the exact target µm/px.
        """
        rgb = self._read_rgb(int(x), int(y), int(read_level), int(read_px), int(read_px))
        if read_px == patch_px:
            return rgb
        interpolation = cv2.INTER_AREA if read_px > patch_px else cv2.INTER_CUBIC
        return cv2.resize(rgb, (patch_px, patch_px), interpolation=interpolation)

    def best_level_for_downsample(self, downsample: float) -> int:
        """The coarsest level whose downsample is at most ``downsample`` (tolerating rounding in level sizes)."""
        candidates = [i for i, d in enumerate(self.level_downsamples) if d <= downsample * 1.001]
        return candidates[-1] if candidates else 0

    def read_level_binned(self, level: int, factor: int) -> np.ndarray:
        """The whole of ``level`` shrunk by the integer ``factor`` (mean of each factor x factor block), RGB uint8.

        Edge pixels that do not fill a whole block are dropped (less than ``factor`` level pixels). Rows are
        read in strips of at most MAX_READ_BYTES, so memory stays bounded for huge one-level slides;
        block means do not depend on strip boundaries, so the result is identical to one big read.
        """
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        width, height = self.level_dimensions[level]
        out_width, out_height = max(width // factor, 1), max(height // factor, 1)
        read_width = min(out_width * factor, width)
        downsample = self.level_downsamples[level]
        bytes_per_block_row = read_width * factor * 4
        blocks_per_strip = max(1, MAX_READ_BYTES // bytes_per_block_row)
        binned = np.empty((out_height, out_width, 3), dtype=np.uint8)
        strips = range(0, out_height, blocks_per_strip)
        progress = tqdm(
            strips, desc=f"{self.slide_id}: level {level} in strips", unit="strip", disable=len(strips) == 1
        )
        for first in progress:
            last = min(first + blocks_per_strip, out_height)
            top = first * factor
            rows = min(last * factor, height) - top
            strip = self.read_region(0, round(top * downsample), level, read_width, rows)
            if factor == 1:
                binned[first:last] = strip
            else:
                binned[first:last] = cv2.resize(strip, (out_width, last - first), interpolation=cv2.INTER_AREA)
        return binned

    def read_downsampled(self, downsample: float) -> tuple[np.ndarray, float]:
        """The whole slide at about ``downsample`` (level-0 px per output px, never finer) and the exact factor used."""
        level = self.best_level_for_downsample(downsample)
        factor = max(1, int(downsample / self.level_downsamples[level] + 1e-6))
        image = self.read_level_binned(level, factor)
        return image, self.level_downsamples[level] * factor

    def thumbnail(self, max_px: int) -> np.ndarray:
        """RGB uint8 image of the whole slide whose longer side is at most ``max_px``."""
        width, height = self.dimensions
        scale = max(width, height) / max_px
        image, _ = self.read_downsampled(max(scale, 1.0))
        longest = max(image.shape[:2])
        if longest <= max_px:
            return image
        ratio = max_px / longest
        size = (max(1, round(image.shape[1] * ratio)), max(1, round(image.shape[0] * ratio)))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def open_slide(
    path: str | Path,
    *,
    slide_id: str | None = None,
    mpp_override: float | None = None,
    assume_mpp: float | None = None,
    max_unreadable_fraction: float = DEFAULT_MAX_UNREADABLE_FRACTION,
) -> Slide:
    """Open a whole-slide image; its ``mpp`` comes from ``mpp_override`` (the sample sheet), else the file, else
    ``assume_mpp``.

    Raises SlideOpenError for missing/corrupt/non-slide files, MissingMppError when no resolution is known and
    ImplausibleMppError when the one in use is outside PLAUSIBLE_MPP, all naming the file and the fix.
    ``max_unreadable_fraction`` bounds the area that region reads may fill with background (see ``read_region``).
    """
    return Slide(
        path,
        slide_id=slide_id,
        mpp_override=mpp_override,
        assume_mpp=assume_mpp,
        max_unreadable_fraction=max_unreadable_fraction,
    )
