"""The QC picture of a slide left out (``slides.on_error: exclude``): its id, the stage and the reason, in place of
the tissue or component map that could not be drawn, so the contact sheets and the report show why."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt

from mosare.reporting.plots import save_png

if TYPE_CHECKING:
    from mosare.slides.exclusion import SlideExclusion

WRAP_CHARS = 70


def plot_slide_exclusion(exclusion: SlideExclusion, path: str | Path) -> None:
    """A text-only picture naming the excluded slide, the stage that could not use it and why."""
    figure = plt.figure(figsize=(6.4, 4.0))
    figure.text(0.5, 0.9, f"{exclusion.slide_id}: excluded at {exclusion.stage}", ha="center", va="top",
                fontsize=12, weight="bold", color="#b71c1c")  # fmt: skip
    body = "\n".join(textwrap.wrap(exclusion.reason, WRAP_CHARS)[:14])
    figure.text(0.05, 0.78, body, ha="left", va="top", fontsize=8, family="monospace")
    figure.text(0.5, 0.04, "slides.on_error: exclude - the slide is left out of training", ha="center", fontsize=8)
    save_png(figure, path, dpi=100)
