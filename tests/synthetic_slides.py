"""Small synthetic whole-slide images for the slide and tiling tests (Aperio-style pyramidal tiled TIFFs)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import tifffile

PINK = (232, 160, 200)  # eosin-like stroma
PURPLE = (140, 90, 170)  # hematoxylin-rich tissue
GREEN_INK = (40, 150, 60)
GLASS = (243, 243, 245)


def write_slide(
    path: Path,
    image: np.ndarray,
    *,
    mpp: float | None,
    downsamples: Sequence[int] = (1,),
    tile: int = 256,
    compression: str = "jpeg",
) -> Path:
    """Write ``image`` (H, W, 3) uint8 as an Aperio SVS-like tiled TIFF with the given pyramid.

    ``mpp=None`` leaves the resolution out of the file, like scanners that do not record it.
    """
    height, width = image.shape[:2]
    description = f"Aperio Image Library v12.0.16\r\n{width}x{height} ({tile}x{tile}) JPEG/RGB Q=90|AppMag = 20"
    if mpp is not None:
        description += f"|MPP = {mpp}"
    with tifffile.TiffWriter(path, bigtiff=False) as tif:
        for index, downsample in enumerate(downsamples):
            level = image
            if downsample > 1:
                size = (max(1, width // downsample), max(1, height // downsample))
                level = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            tif.write(
                level,
                tile=(tile, tile),
                compression=compression,
                photometric="rgb",
                description=description if index == 0 else None,
                subfiletype=0 if index == 0 else 1,
                metadata=None,
            )
    return path


def write_image_tool_tiff(path: Path, image: np.ndarray, *, dpi: float = 72.0) -> Path:
    """Write ``image`` as a tiled generic TIFF tagged ``dpi`` pixels per inch, as image tools do by default.

    OpenSlide turns the tag into a resolution: 72 dpi reads as 25400 / 72 = 352.78 µm/px.
    """
    tifffile.imwrite(
        path,
        image,
        tile=(256, 256),
        photometric="rgb",
        compression="jpeg",
        resolution=(dpi, dpi),
        resolutionunit="INCH",
    )
    return path


def tissue_image(
    width: int,
    height: int,
    *,
    blobs: Sequence[tuple[float, float, float, float]],
    pen: tuple[float, float, float, float] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Glass with textured tissue ellipses (cx, cy, rx, ry as fractions of the size) and an optional ink stroke."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = GLASS
    tissue = np.zeros((height, width), np.uint8)
    for cx, cy, rx, ry in blobs:
        cv2.ellipse(tissue, (int(cx * width), int(cy * height)), (int(rx * width), int(ry * height)), 0, 0, 360, 1, -1)
    nuclei = rng.random((height // 8, width // 8)) < 0.3
    nuclei = cv2.resize(nuclei.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    texture = np.where(nuclei[..., None] > 0, PURPLE, PINK).astype(np.uint8)
    image[tissue > 0] = texture[tissue > 0]
    if pen is not None:
        x0, y0, x1, y1 = pen
        cv2.line(
            image,
            (int(x0 * width), int(y0 * height)),
            (int(x1 * width), int(y1 * height)),
            GREEN_INK,
            thickness=max(4, width // 60),
        )
    noise = rng.integers(-3, 4, size=image.shape, dtype=np.int16)
    return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def corrupt_tiles(path: Path, level: int, tiles: Sequence[tuple[int, int]]) -> Path:
    """Overwrite the JPEG data of tiles (column, row) of pyramid ``level`` with garbage, as a damaged file has.

    The TIFF structure stays intact, so the slide opens and only reads touching those tiles fail.
    """
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[level]
        columns = -(-page.imagewidth // page.tilewidth)
        spans = [
            (page.dataoffsets[row * columns + col], page.databytecounts[row * columns + col]) for col, row in tiles
        ]
    garbage = np.random.default_rng(len(spans)).integers(0, 256, max(n for _, n in spans), dtype=np.uint8).tobytes()
    with open(path, "r+b") as file:
        for offset, size in spans:
            file.seek(offset)
            file.write(garbage[:size])
    return path
