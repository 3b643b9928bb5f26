"""Figures are written atomically, and palette PNGs keep the colours a QC picture is read by."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from mosare.reporting.plots import save_png
from mosare.reporting.plots.gmm import component_colours


def photo_with_colour_swatches(n_colours: int) -> tuple[plt.Figure, np.ndarray]:
    """A noisy stained-tissue-like image with one small swatch per colour, like a QC map and its legend."""
    rng = np.random.default_rng(0)
    photo = np.clip(rng.normal([0.8, 0.5, 0.75], 0.15, size=(300, 300, 3)), 0, 1)
    figure, axis = plt.subplots(figsize=(4, 3))
    axis.imshow(photo)
    colours = component_colours(n_colours)
    for index, colour in enumerate(colours):
        axis.add_patch(plt.Rectangle((310, 10 + 18 * index), 12, 12, facecolor=colour, edgecolor="none", clip_on=False))
    axis.set_axis_off()
    return figure, np.round(colours * 255).astype(int)


def test_palette_png_is_smaller_and_keeps_every_key_colour_exact(tmp_path):
    figure, colours = photo_with_colour_swatches(16)
    save_png(figure, tmp_path / "full.png", dpi=150)
    figure, _ = photo_with_colour_swatches(16)
    save_png(figure, tmp_path / "palette.png", dpi=150, palette=True, key_colours=colours / 255)

    full, palette = (Image.open(tmp_path / name) for name in ("full.png", "palette.png"))
    assert palette.mode == "P" and palette.size == full.size
    assert (tmp_path / "palette.png").stat().st_size < 0.5 * (tmp_path / "full.png").stat().st_size
    present = {tuple(c) for c in np.asarray(palette.convert("RGB")).reshape(-1, 3)}
    assert all(tuple(colour) in present for colour in colours)


def test_saving_leaves_no_temporary_file_and_closes_the_figure(tmp_path):
    figure, _ = photo_with_colour_swatches(3)
    save_png(figure, tmp_path / "qc" / "picture.png", dpi=50, tight=True, palette=True)
    assert [p.name for p in (tmp_path / "qc").iterdir()] == ["picture.png"]
    assert not plt.fignum_exists(figure.number)
