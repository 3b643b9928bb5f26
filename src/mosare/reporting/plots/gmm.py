"""GMM QC picture: the slide thumbnail with every patch coloured by its most likely mixture component."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from mosare.features.slide_gmm import SlideMixture
from mosare.reporting.plots import save_png, shrink_to_axes
from mosare.slides.patch_store import PatchStore
from mosare.slides.reader import open_slide

OVERLAY_ALPHA = 0.6
QC_THUMBNAIL_PX = 1600


def component_colours(n_components: int) -> np.ndarray:
    """(C, 3) RGB in [0, 1]: tab20's strong shades then its pale ones (neighbours never look alike),
    evenly spaced turbo hues beyond 20."""
    if n_components <= 20:
        listed = plt.get_cmap("tab20")
        assert isinstance(listed, ListedColormap)  # a list of 20 colours
        tab20 = np.asarray(listed.colors)
        return np.concatenate([tab20[0::2], tab20[1::2]])[:n_components]
    return plt.get_cmap("turbo")(np.linspace(0.0, 1.0, n_components))[:, :3]


def plot_component_map(
    thumbnail: np.ndarray,
    slide_dimensions: tuple[int, int],
    coords: np.ndarray,
    footprint_px: int,
    labels: np.ndarray,
    weights: np.ndarray,
    path: str | Path,
    *,
    title: str,
    copy_of: np.ndarray | None = None,
) -> None:
    """Write the QC PNG to ``path`` (atomically).

    ``coords`` are level-0 top-left corners of patches covering ``footprint_px`` level-0 px, ``labels``
    their most likely component, ``weights`` the mixture weights (C,) shown in the legend, ``copy_of`` the
    component each padding copy duplicates (its own index when fitted), labelled as such in the legend.
    """
    thumbnail = np.asarray(thumbnail, dtype=np.uint8)[..., :3]
    height, width = thumbnail.shape[:2]
    scale = width / slide_dimensions[0]  # thumbnail px per level-0 px
    colours = component_colours(len(weights))

    # Paint labels first and blend once, so overlapping patches do not darken the picture.
    label_image = np.full((height, width), -1, dtype=np.int64)
    for (x, y), label in zip(np.asarray(coords), np.asarray(labels)):
        x0, y0 = int(x * scale), int(y * scale)
        x1 = max(x0 + 1, int(np.ceil((x + footprint_px) * scale)))
        y1 = max(y0 + 1, int(np.ceil((y + footprint_px) * scale)))
        label_image[y0:y1, x0:x1] = label
    painted = label_image >= 0
    overlay = thumbnail.astype(np.float32) / 255.0
    overlay[painted] = (1 - OVERLAY_ALPHA) * overlay[painted] + OVERLAY_ALPHA * colours[label_image[painted]]

    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(weights))
    fig_width = 10.0
    fig, ax = plt.subplots(figsize=(fig_width, max(3.0, fig_width * 0.75 * height / width) + 0.8))
    shown = ax.imshow(overlay)
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    copy_of = np.arange(len(weights)) if copy_of is None else np.asarray(copy_of)
    handles = [
        Patch(
            facecolor=colours[k],
            label=f"{k}: π={weights[k]:.3f}, {counts[k]} patches"
            + (f" (copy of {copy_of[k]})" if copy_of[k] != k else ""),
        )
        for k in range(len(weights))
        if weights[k] > 0
    ]
    if handles:
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    fig.tight_layout()
    shrink_to_axes(shown, dpi=120)
    save_png(fig, path, dpi=120, tight=True, palette=True, key_colours=colours.tolist())


def plot_slide_mixture(
    mixture: SlideMixture, patch_store: str | Path, slide_path: str | Path, path: str | Path
) -> None:
    """The component map of a fitted slide (``mosare.features.slide_gmm.fit_slide_gmm``) over its thumbnail, to ``path``.

    The slide is opened at the resolution its patch store recorded, so the patch footprints land where they were cut.
    """
    patches = PatchStore.read(patch_store)
    slide_id = mixture.store.slide_id
    with open_slide(slide_path, slide_id=slide_id, mpp_override=patches.mpp_level0) as slide:
        thumbnail = slide.thumbnail(QC_THUMBNAIL_PX)
        dimensions = slide.dimensions
    plot_component_map(
        thumbnail,
        dimensions,
        mixture.coords,
        patches.footprint_px,
        mixture.labels,
        mixture.store.tokens.weights,
        path,
        title=mixture.title,
        copy_of=mixture.copy_of,
    )
