"""Generated H&E-like tiles and slides, and altered copies (blurred, pen-marked, faded, folded), for the QC tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from synthetic_slides import write_slide

# Ruifrok & Johnston's optical-density stain vectors (unit length): what the generated tissue is stained with.
HEMATOXYLIN = np.array([0.65, 0.70, 0.29]) / np.linalg.norm([0.65, 0.70, 0.29])
EOSIN = np.array([0.07, 0.99, 0.11]) / np.linalg.norm([0.07, 0.99, 0.11])
INKS = {"green": (40, 150, 60), "blue": (30, 60, 160), "black": (20, 20, 25)}


def stain_concentrations(height: int, width: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hematoxylin (nuclei of 3-8 px radius) and eosin (smoothly varying stroma) concentrations, H&E-dark."""
    rng = np.random.default_rng(seed)
    hematoxylin = np.zeros((height, width), np.float32)
    for _ in range(height * width // 400):
        centre = (int(rng.integers(width)), int(rng.integers(height)))
        cv2.circle(hematoxylin, centre, int(rng.integers(3, 9)), float(rng.uniform(1.2, 2.0)), -1)
    eosin = cv2.GaussianBlur(rng.uniform(0.4, 1.2, (height, width)).astype(np.float32), (0, 0), 6)
    return hematoxylin, eosin


def stained_rgb(hematoxylin: np.ndarray, eosin: np.ndarray) -> np.ndarray:
    """Beer-Lambert: RGB uint8 of tissue holding these stain concentrations."""
    od = hematoxylin[..., None] * HEMATOXYLIN + eosin[..., None] * EOSIN
    return np.clip(255.0 * np.exp(-od), 0, 255).astype(np.uint8)


def he_tile(size: int = 512, *, seed: int = 0, h_scale: float = 1.0, e_scale: float = 1.0) -> np.ndarray:
    """A square of tissue only; ``h_scale``/``e_scale`` below 1 fade a stain."""
    hematoxylin, eosin = stain_concentrations(size, size, seed=seed)
    return stained_rgb(h_scale * hematoxylin, e_scale * eosin)


def blurred(rgb: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(rgb, (0, 0), sigma)


def folded(rgb: np.ndarray, share: float = 0.3) -> np.ndarray:
    """The left ``share`` of the image seen through two layers of tissue (optical density doubled)."""
    out = rgb.copy()
    columns = int(share * rgb.shape[1])
    transmitted = rgb[:, :columns].astype(np.float64) / 255.0
    out[:, :columns] = np.clip(255.0 * transmitted**2, 0, 255).astype(np.uint8)
    return out


def qc_slide_image(
    size: int = 2048,
    *,
    seed: int = 0,
    h_scale: float = 1.0,
    e_scale: float = 1.0,
    blur_sigma: float = 0.0,
    ink: str | None = None,
    fold: bool = False,
) -> np.ndarray:
    """Glass with two discs of generated H&E tissue, optionally faded, blurred, folded or crossed by a marker."""
    hematoxylin, eosin = stain_concentrations(size, size, seed=seed)
    image = stained_rgb(h_scale * hematoxylin, e_scale * eosin)
    if fold:
        image = folded(image, 0.5)
    tissue = np.zeros((size, size), np.uint8)
    for cx, cy in ((0.3, 0.35), (0.68, 0.62)):
        cv2.circle(tissue, (int(cx * size), int(cy * size)), int(0.22 * size), 1, -1)
    glass = np.full_like(image, (243, 243, 245))
    image = np.where(tissue[..., None] > 0, image, glass)
    if blur_sigma:
        image = blurred(image, blur_sigma)
    if ink is not None:
        cv2.line(image, (int(0.1 * size), int(0.9 * size)), (int(0.9 * size), int(0.1 * size)), INKS[ink], size // 16)
    noise = np.random.default_rng(seed + 1).integers(-2, 3, size=image.shape, dtype=np.int16)
    return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def write_qc_slide(path: Path, **kwargs) -> Path:
    """``qc_slide_image`` as a 0.5 µm/px pyramidal slide (1 mm wide at the default size)."""
    return write_slide(path, qc_slide_image(**kwargs), mpp=0.5, downsamples=(1, 4, 16))
