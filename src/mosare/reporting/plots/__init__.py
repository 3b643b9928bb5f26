"""QC and result figures, one submodule per stage (tissue, gmm, training), saved through :func:`save_png`."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.image import AxesImage
from PIL import Image

from mosare.core.atomic_files import atomic_file

# Per-slide QC pictures are thumbnails with coloured overlays: as 256-colour palette PNGs they are 3-4x smaller
# (demo tissue QC 1.7 MB -> 0.6 MB, GMM map 1.0 -> 0.26 MB) and look the same, which keeps a cohort's report
# embeddable. A quantiser alone may merge a small legend swatch into a nearby photo colour (median cut moved a GMM
# component's blue to green), so the colours a picture is read by are reserved in the palette exactly.
PALETTE_COLOURS = 256


def save_png(
    figure: plt.Figure,
    path: str | Path,
    *,
    dpi: int,
    tight: bool = False,
    palette: bool = False,
    key_colours: Sequence[Sequence[float]] = (),
) -> None:
    """Write ``figure`` to ``path`` as PNG atomically (a temporary file renamed into place) and close it.

    ``tight`` trims the margins to the drawn content. ``palette`` stores 256 colours instead of full RGBA:
    ``key_colours`` (RGB in [0, 1], e.g. legend colours) are kept exactly, the rest of the palette is fitted
    to the picture.
    """
    try:
        with atomic_file(path) as tmp:
            if palette:
                buffer = io.BytesIO()
                # Uncompressed: this PNG is only decoded again below (zlib here cost ~1 s per QC picture).
                figure.savefig(
                    buffer,
                    format="png",
                    dpi=dpi,
                    bbox_inches="tight" if tight else None,
                    pil_kwargs={"compress_level": 0},
                )
                buffer.seek(0)
                with Image.open(buffer) as image:
                    _palette_image(image.convert("RGB"), key_colours).save(tmp, format="PNG", optimize=True)
            else:
                figure.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    finally:
        plt.close(figure)


def shrink_to_axes(image: AxesImage, dpi: float) -> None:
    """Replace a large picture's pixels by an area-averaged copy about the size its axes take at ``dpi``.

    Call after the layout is final. Matplotlib resamples a 1,600 px thumbnail at every draw (lanczos: 0.7 s a QC
    picture; nearest: aliasing); one OpenCV area average to the shown size looks as good and costs milliseconds.
    The image's extent is unchanged, so everything drawn over it in data coordinates stays where it was.
    """
    box = image.axes.get_window_extent()
    scale = dpi / image.axes.figure.dpi
    pixels = np.asarray(image.get_array())
    height, width = pixels.shape[:2]
    shrink = min(1.0, box.width * scale / width, box.height * scale / height)
    if shrink < 1.0:
        size = (max(1, round(width * shrink)), max(1, round(height * shrink)))
        image.set_data(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA))
    image.set_interpolation("nearest")


def _palette_image(image: Image.Image, key_colours: Sequence[Sequence[float]]) -> Image.Image:
    """``image`` mapped (without dithering) onto its key colours plus the rest of 256 fitted by median cut."""
    keys = np.unique(np.round(np.asarray(key_colours, dtype=float).reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    # Fitted on a half-size copy: 4x less work (0.2 -> 0.05 s per QC picture) for a mean error of ~1% of the range.
    sample = image.reduce(2) if min(image.size) >= 2 else image
    fitted = sample.quantize(PALETTE_COLOURS - len(keys), method=Image.Quantize.MEDIANCUT).getpalette() or []
    colours = np.concatenate([keys, np.asarray(fitted, dtype=np.uint8).reshape(-1, 3)])[:PALETTE_COLOURS]
    palette = Image.new("P", (1, 1))
    palette.putpalette(colours.ravel().tolist())
    return image.quantize(palette=palette, dither=Image.Dither.NONE)
