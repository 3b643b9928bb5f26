"""Slide quality metrics, computed by the tiling job from the pixels it already reads (no extra full-slide read).

One pure function per metric group, each on an RGB image (uint8) and a boolean tissue mask of the same shape:

- ``sharpness``: variance of the Laplacian of grey on tissue (lower = blurrier), at the fine pass's µm/px;
- ``brightness_contrast``: mean and standard deviation of grey on tissue;
- ``stain_densities``: mean hematoxylin and eosin optical density (``skimage.color.rgb2hed``) on tissue;
- ``macenko_stain_vectors``: the two dominant stain vectors in optical-density space (Macenko et al. 2009);
- ``dark_fraction``: share of tissue darker than ``DARK_GREY`` (folds, thick or overstained tissue);
- ``ink_fraction``, ``patch_coverage``, ``piece_count``: from the coarse masks and the patch grid.

``FinePassQC`` gathers the first four over the fine pass's regions (moments, plus a bounded, seeded sample of
tissue pixels for the stain statistics) and ``slide_qc_metrics`` turns everything into the flat ``qc`` dict stored
in the patch store's attributes. Keys are ``mosare.slides.qc_fields.QC_METRICS``, also read by the cohort table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from skimage.color import rgb2hed

from mosare.slides.qc_fields import DARK_GREY, QC_METRICS

# Tissue pixels kept for the stain statistics: enough for stable percentiles, bounded memory on any slide.
STAIN_SAMPLE_PX = 200_000
STAIN_SAMPLE_PER_REGION = 20_000
# Tissue is eroded by this many pixels before the Laplacian, so the tissue/glass border does not count as detail.
SHARPNESS_EROSION_PX = 2
# Macenko's recipe: background light, optical density threshold below which a pixel is too clear to fit (beta) and
# the angle percentile for the robust extremes (alpha).
MACENKO_IO = 255.0
MACENKO_BETA = 0.15
MACENKO_ALPHA = 1.0


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def _laplacian_on_tissue(rgb: np.ndarray, tissue: np.ndarray) -> np.ndarray:
    """Laplacian of grey at the tissue pixels at least ``SHARPNESS_EROSION_PX`` inside the tissue."""
    laplacian = cv2.Laplacian(_grey(rgb).astype(np.float32), cv2.CV_32F)
    size = 2 * SHARPNESS_EROSION_PX + 1
    inner = cv2.erode(tissue.astype(np.uint8), np.ones((size, size), np.uint8), borderValue=0) > 0
    return laplacian[inner].astype(np.float64)


def sharpness(rgb: np.ndarray, tissue: np.ndarray) -> float:
    """Variance of the Laplacian of grey on the tissue's interior; NaN without tissue."""
    values = _laplacian_on_tissue(rgb, tissue)
    return float(values.var()) if values.size else float("nan")


def brightness_contrast(rgb: np.ndarray, tissue: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of grey (0-255) on tissue; NaN without tissue."""
    grey = _grey(rgb)[tissue].astype(np.float64)
    return (float(grey.mean()), float(grey.std())) if grey.size else (float("nan"), float("nan"))


def stain_densities(pixels: np.ndarray) -> tuple[float, float]:
    """Mean hematoxylin and eosin optical density of (N, 3) uint8 RGB tissue pixels (``skimage.color.rgb2hed``)."""
    if len(pixels) == 0:
        return float("nan"), float("nan")
    hed = rgb2hed(pixels.reshape(-1, 1, 3)).reshape(-1, 3)
    return float(hed[:, 0].mean()), float(hed[:, 1].mean())


def optical_density(pixels: np.ndarray, io: float = MACENKO_IO) -> np.ndarray:
    """Optical density -ln((I + 1) / Io) of (N, 3) RGB pixels."""
    return -np.log((pixels.astype(np.float64) + 1.0) / io)


def macenko_stain_vectors(
    pixels: np.ndarray, *, beta: float = MACENKO_BETA, alpha: float = MACENKO_ALPHA
) -> np.ndarray:
    """The (2, 3) unit hematoxylin and eosin vectors in optical-density space of (N, 3) RGB pixels (Macenko 2009).

    The recipe: optical density; drop pixels with OD below ``beta`` in any channel; the plane of the two largest
    eigenvectors of the OD covariance; each pixel's angle in that plane; the ``alpha`` and ``100 - alpha``
    percentile angles, turned back into OD vectors, are the two stains; hematoxylin is the one absorbing more red.
    NaN when fewer than 10 pixels are dense enough.
    """
    od = optical_density(pixels.reshape(-1, 3))
    od = od[(od > beta).all(axis=1)]
    if len(od) < 10:
        return np.full((2, 3), np.nan)
    _, vectors = np.linalg.eigh(np.cov(od, rowvar=False))
    plane = vectors[:, [2, 1]]  # the two largest eigenvalues (eigh sorts ascending)
    plane *= np.where(plane.sum(axis=0) < 0, -1.0, 1.0)  # eigenvector signs are arbitrary: point into positive OD
    projected = od @ plane
    angles = np.arctan2(projected[:, 1], projected[:, 0])
    low, high = np.percentile(angles, [alpha, 100 - alpha])
    first = plane @ np.array([np.cos(low), np.sin(low)])
    second = plane @ np.array([np.cos(high), np.sin(high)])
    stains = np.stack([first, second] if first[0] > second[0] else [second, first])
    return stains / np.linalg.norm(stains, axis=1, keepdims=True)


def dark_fraction(rgb: np.ndarray, tissue: np.ndarray, dark_grey: int = DARK_GREY) -> float:
    """Share of tissue pixels whose grey level is below ``dark_grey``; NaN without tissue."""
    grey = _grey(rgb)[tissue]
    return float((grey < dark_grey).mean()) if grey.size else float("nan")


def ink_fraction(ink: np.ndarray | None, tissue: np.ndarray) -> float:
    """Share of ink among ink and tissue pixels of the coarse masks (0 when neither)."""
    ink_px = 0 if ink is None else int((ink & ~tissue).sum())
    total = ink_px + int(tissue.sum())
    return ink_px / total if total else 0.0


def patch_coverage(fractions: np.ndarray, kept: np.ndarray) -> float:
    """Share of the tissue (sum of grid-cell tissue fractions) inside kept cells; NaN without tissue."""
    total = float(fractions.sum())
    return float(fractions[kept].sum()) / total if total > 0 else float("nan")


def piece_count(tissue: np.ndarray) -> int:
    """Separate tissue pieces (8-connected components) of a mask."""
    count, _ = cv2.connectedComponents(tissue.astype(np.uint8), connectivity=8)
    return int(count - 1)


@dataclass
class FinePassQC:
    """Sharpness, grey, dark-area and stain statistics gathered over the fine pass's regions, one ``add`` each."""

    seed: int = 0
    laplacian_moments: np.ndarray = field(default_factory=lambda: np.zeros(3))  # n, sum, sum of squares
    grey_moments: np.ndarray = field(default_factory=lambda: np.zeros(3))
    dark_px: int = 0
    samples: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def add(self, rgb: np.ndarray, tissue: np.ndarray) -> None:
        """One region read by the fine pass (RGB uint8) and its tissue pixels."""
        if not tissue.any():
            return
        laplacian = _laplacian_on_tissue(rgb, tissue)
        self.laplacian_moments += (laplacian.size, laplacian.sum(), np.square(laplacian).sum())
        grey = _grey(rgb)[tissue].astype(np.float64)
        self.grey_moments += (grey.size, grey.sum(), np.square(grey).sum())
        self.dark_px += int((grey < DARK_GREY).sum())
        pixels = rgb[tissue]
        if len(pixels) > STAIN_SAMPLE_PER_REGION:
            pixels = pixels[self._rng.choice(len(pixels), STAIN_SAMPLE_PER_REGION, replace=False)]
        self.samples.append(pixels)

    def stain_sample(self) -> np.ndarray:
        """At most ``STAIN_SAMPLE_PX`` tissue pixels, (N, 3) uint8, drawn evenly from every region."""
        pixels = np.concatenate(self.samples) if self.samples else np.zeros((0, 3), np.uint8)
        if len(pixels) > STAIN_SAMPLE_PX:
            pixels = pixels[self._rng.choice(len(pixels), STAIN_SAMPLE_PX, replace=False)]
        return pixels

    def metrics(self) -> dict[str, float]:
        """The fine-pass metrics of ``QC_METRICS`` (NaN when the fine pass met no tissue)."""
        values = {key: float("nan") for key in ("sharpness", "brightness", "contrast", "dark_fraction")}
        n_lap, lap_sum, lap_sq = self.laplacian_moments
        if n_lap:
            values["sharpness"] = float(lap_sq / n_lap - (lap_sum / n_lap) ** 2)
        n_grey, grey_sum, grey_sq = self.grey_moments
        if n_grey:
            values["brightness"] = float(grey_sum / n_grey)
            values["contrast"] = float(np.sqrt(max(grey_sq / n_grey - (grey_sum / n_grey) ** 2, 0.0)))
            values["dark_fraction"] = self.dark_px / float(n_grey)
        pixels = self.stain_sample()
        values["od_hematoxylin"], values["od_eosin"] = stain_densities(pixels)
        stains = macenko_stain_vectors(pixels)
        for row, stain in enumerate("he"):
            for column, channel in enumerate("rgb"):
                values[f"stain_{stain}_{channel}"] = float(stains[row, column])
        return values


def slide_qc_metrics(
    *,
    fine: FinePassQC,
    tissue_mask: np.ndarray,
    tissue_mpp: float,
    ink: np.ndarray | None,
    fractions: np.ndarray,
    kept: np.ndarray,
    unreadable_fraction: float,
) -> dict[str, float | None]:
    """The patch store's ``qc`` dict, keys in ``QC_METRICS`` order (plain floats and ints, NaN as None for JSON)."""
    values: dict[str, float] = {
        "tissue_area_mm2": float(tissue_mask.sum()) * tissue_mpp**2 / 1e6,
        "n_pieces": piece_count(tissue_mask),
        "n_patches": int(kept.sum()),
        "patch_coverage": patch_coverage(fractions, kept),
        "ink_fraction": ink_fraction(ink, tissue_mask),
        "unreadable_fraction": float(unreadable_fraction),
        **fine.metrics(),
    }
    return {key: _json_number(values[key]) for key in QC_METRICS}


def _json_number(value: float) -> float | None:
    """NaN as None: the store's attributes are JSON, which has no NaN."""
    return None if isinstance(value, float) and np.isnan(value) else value
