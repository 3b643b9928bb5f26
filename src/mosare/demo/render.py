"""Demo slides: synthetic H&E tissue rendered per patient phenotype and written as Aperio-style pyramidal TIFFs.

Slides are Aperio-style pyramidal TIFFs (JPEG tiles of 256 px, one top-level IFD per level, Aperio
ImageDescription with ``MPP`` and ``AppMag``). Tissue is painted in micrometres at 0.5 µm/px and a 40x
slide is that picture upsampled to 0.25 µm/px, so both magnifications of a class look alike at the
encoder's resolution. Class 0 leans to gland-like rings around lumens, the last class to solid nests;
each patient mixes both motifs in a class-dependent but overlapping proportion, so subtyping from the
slides alone is learnable but not trivial.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile

from mosare.core.atomic_files import atomic_file
from mosare.demo.plan import random_stream

RENDER_MPP = 0.5  # µm/px at which tissue is painted (the encoder's default resolution)
TILE_PX = 256
JPEG_QUALITY = 80
MIN_LEVEL_PX = 1000  # the pyramid halves until a level is smaller than this
ARCHITECTURE_UM = 2.0  # µm/px of the gland/nest layout grid
STAIN_UM = 1.0  # µm/px of the stain fields (nuclei are drawn at RENDER_MPP)
OUTLINE_UM = 4.0  # µm/px of the tissue-outline grid
MAGNIFICATION = {0.25: 40, 0.5: 20}

# Ruifrok & Johnston optical-density vectors (R, G, B) of haematoxylin and eosin.
HEMATOXYLIN_OD = np.array([0.650, 0.704, 0.286], dtype=np.float32)
EOSIN_OD = np.array([0.05, 0.80, 0.30], dtype=np.float32)  # a pinker eosin than Ruifrok's [0.07, 0.99, 0.11]
GLASS_OD = np.float32(0.015)  # mounting medium and glass: the background is near-white, not 255
H_STEPS, E_STEPS = 110.0, 170.0  # lookup-table steps per unit concentration
PEN_OD = {
    "green": np.array([0.95, 0.30, 0.75], dtype=np.float32),
    "blue": np.array([0.95, 0.55, 0.12], dtype=np.float32),
    "black": np.array([0.95, 0.95, 0.90], dtype=np.float32),
}


@dataclass(frozen=True)
class Phenotype:
    """A patient's tissue look; both of a patient's slides share it."""

    gland_fraction: float
    nucleus_radius_um: float
    epithelial_density: float
    lymphocyte_level: float


def patient_phenotype(seed: int, patient_index: int, class_position: float) -> Phenotype:
    # Class-dependent means with wide patient-level spread: the classes overlap on every feature.
    rng = random_stream(seed, 4, patient_index)
    mean_glands = 0.62 - 0.24 * class_position
    concentration = 5.5
    return Phenotype(
        gland_fraction=float(rng.beta(mean_glands * concentration, (1 - mean_glands) * concentration)),
        nucleus_radius_um=float(np.clip(rng.normal(3.9 + 0.35 * class_position, 0.35), 2.8, 5.5)),
        epithelial_density=float(np.clip(rng.normal(0.55 + 0.1 * class_position, 0.12), 0.25, 0.9)),
        lymphocyte_level=float(rng.uniform(0.0, 1.0)),
    )


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Gaussian random field with correlation length ~``scale_px``, unit standard deviation."""
    height, width = shape
    grid_h, grid_w = int(math.ceil(height / scale_px)) + 3, int(math.ceil(width / scale_px)) + 3
    coarse = rng.standard_normal((grid_h, grid_w), dtype=np.float32)
    size = (int(round(grid_w * scale_px)), int(round(grid_h * scale_px)))
    field: np.ndarray = cv2.resize(coarse, size, interpolation=cv2.INTER_CUBIC)[:height, :width]
    field -= field[::7, ::7].mean()
    field /= field[::7, ::7].std() + 1e-6
    return field


def _resize(array: np.ndarray, side: int, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    return cv2.resize(array, (side, side), interpolation=interpolation)


def _tissue_outline(rng: np.random.Generator, side: int, field_um: float) -> np.ndarray:
    """Signed tissue score on a grid of ``side`` px (> 0 inside): 2-4 lobed pieces with ragged edges and holes,
    split by narrow strips of glass where they would touch."""
    um = field_um / side
    coords = (np.arange(side, dtype=np.float32) + 0.5) * um
    xx, yy = np.meshgrid(coords, coords)
    n_pieces = int(rng.integers(2, 5))
    coverage = rng.uniform(0.62, 0.78)
    shares = rng.dirichlet(np.full(n_pieces, 4.0))
    pieces = []
    centers: list[tuple[float, float, float]] = []
    for share in shares:
        area = share * coverage * field_um**2
        aspect = rng.uniform(1.0, 1.8)
        semi_major = math.sqrt(area * aspect / math.pi)
        semi_minor = area / (math.pi * semi_major)
        margin = min(0.85 * semi_major, field_um / 2)
        candidates = rng.uniform(margin, field_um - margin, size=(32, 2))
        if centers:
            # Keep the candidate that overlaps the pieces placed so far the least.
            placed = np.array(centers)
            gap = np.linalg.norm(candidates[:, None, :] - placed[None, :, :2], axis=2) - placed[None, :, 2]
            cx, cy = candidates[np.argmax(gap.min(axis=1) - semi_major)]
        else:
            cx, cy = candidates[0]
        centers.append((cx, cy, semi_major))
        angle = rng.uniform(0, math.pi)
        dx, dy = xx - cx, yy - cy
        u = (dx * math.cos(angle) + dy * math.sin(angle)) / semi_major
        v = (-dx * math.sin(angle) + dy * math.cos(angle)) / semi_minor
        theta = np.arctan2(v, u)
        lobes = np.ones_like(theta)
        for k in range(2, 6):
            lobes += rng.normal(0, 0.16 / math.sqrt(k)) * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
        pieces.append(1.0 - np.sqrt(u * u + v * v) / np.clip(lobes, 0.5, None))
        for _ in range(int(rng.integers(0, 3))):
            # Vessel or airspace: a clean hole well inside the piece.
            hole_r = rng.uniform(30, 90)
            r, phi = rng.uniform(0, 0.55), rng.uniform(0, 2 * math.pi)
            hx = cx + r * semi_major * math.cos(phi)
            hy = cy + r * semi_minor * math.sin(phi)
            hole = np.sqrt((xx - hx) ** 2 + (yy - hy) ** 2 * rng.uniform(0.5, 1.5)) / hole_r - 1.0
            pieces[-1] = np.minimum(pieces[-1], hole * 0.3)
    ranked = np.sort(np.stack(pieces), axis=0)
    # Where two pieces meet, a strip of glass keeps them apart (pieces of a biopsy, not one blob).
    score = np.minimum(ranked[-1], ranked[-1] - ranked[-2] - 0.16)
    score += 0.07 * _smooth_noise(rng, (side, side), 45 / um) + 0.03 * _smooth_noise(rng, (side, side), 12 / um)
    tears = _smooth_noise(rng, (side, side), 70 / um)
    return np.minimum(score, 0.12 * (2.1 - tears))


@dataclass
class _Architecture:
    gland_q: np.ndarray  # distance to the nearest gland centre / that gland's radius (1 = gland edge)
    gland_angle: np.ndarray  # direction from the nearest gland centre (for radial nuclei)
    lumen_ratio: np.ndarray  # per-pixel lumen radius / gland radius
    nest: np.ndarray  # > 0 inside a solid nest
    is_gland_region: np.ndarray


def _architecture(rng: np.random.Generator, side: int, field_um: float, phenotype: Phenotype) -> _Architecture:
    """Gland and nest layout on a grid of ``side`` px covering the field."""
    um = field_um / side
    region = _smooth_noise(rng, (side, side), 220 / um)
    is_gland_region = region < np.quantile(region[::4, ::4], phenotype.gland_fraction)

    spacing = rng.uniform(85, 120)
    n_cells = int(math.ceil(field_um / spacing))
    grid = (np.stack(np.meshgrid(np.arange(n_cells), np.arange(n_cells)), axis=-1).reshape(-1, 2) + 0.5) * spacing
    centers = grid + rng.uniform(-0.3, 0.3, size=grid.shape) * spacing
    centers_px = np.clip((centers / um).astype(int), 0, side - 1)
    keep = is_gland_region[centers_px[:, 1], centers_px[:, 0]]
    centers_px = centers_px[keep]
    # Glands differ in size, elongation, orientation and lumen width.
    radii_um = rng.uniform(0.26, 0.5, size=len(centers_px)) * spacing
    elongation = rng.uniform(1.0, 1.9, size=len(centers_px))
    orientation = rng.uniform(0, math.pi, size=len(centers_px))
    lumen_ratios = rng.uniform(0.3, 0.7, size=len(centers_px))
    seeds = np.ones((side, side), dtype=np.uint8)
    seeds[centers_px[:, 1], centers_px[:, 0]] = 0
    if len(centers_px):
        _, labels = cv2.distanceTransformWithLabels(seeds, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
        # Labels number the seed pixels; map each back to its gland, then measure exact distances.
        label_of_center = labels[centers_px[:, 1], centers_px[:, 0]]
        lookup = np.zeros(labels.max() + 1, dtype=np.int64)
        lookup[label_of_center] = np.arange(len(centers_px))
        nearest = lookup[labels]
        yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
        dx, dy = xx - centers_px[nearest, 0], yy - centers_px[nearest, 1]
        wobble = 1.0 + 0.12 * _smooth_noise(rng, (side, side), 12 / um)
        cos, sin = np.cos(orientation)[nearest], np.sin(orientation)[nearest]
        stretch = np.sqrt(elongation)[nearest]
        along, across = (dx * cos + dy * sin) / stretch, (-dx * sin + dy * cos) * stretch
        gland_q = (np.sqrt(along**2 + across**2) * um / radii_um[nearest] * wobble).astype(np.float32)
        gland_angle = np.arctan2(dy, dx).astype(np.float32)
        lumen_ratio = lumen_ratios[nearest].astype(np.float32)
    else:
        gland_q = np.full((side, side), 9.0, dtype=np.float32)
        gland_angle = np.zeros((side, side), dtype=np.float32)
        lumen_ratio = np.full((side, side), 0.5, dtype=np.float32)
    gland_q[~is_gland_region] = 9.0

    nest = _smooth_noise(rng, (side, side), 55 / um) + 0.45 * _smooth_noise(rng, (side, side), 18 / um) + 0.35
    nest[is_gland_region] = -1.0
    return _Architecture(gland_q, gland_angle, lumen_ratio, nest.astype(np.float32), is_gland_region)


def _draw_nuclei(
    canvas: np.ndarray,
    x_px: np.ndarray,
    y_px: np.ndarray,
    semi_axes_px: np.ndarray,
    angle_deg: np.ndarray,
    intensity: np.ndarray,
) -> None:
    """Filled anti-aliased ellipses, one OpenCV call per nucleus (thousands per slide, not per pixel)."""
    shift = 4
    scale = 1 << shift
    centers = np.round(np.stack([x_px, y_px], axis=1) * scale).astype(np.int64).tolist()
    axes = np.round(np.maximum(semi_axes_px, 0.8) * scale).astype(np.int64).tolist()
    angles = angle_deg.astype(float).tolist()
    values = np.clip(intensity * 255, 1, 255).astype(int).tolist()
    for center, axis, angle, value in zip(centers, axes, angles, values, strict=True):
        cv2.ellipse(canvas, center, axis, angle, 0, 360, value, -1, cv2.LINE_AA, shift)


def _fibres(rng: np.random.Generator, side: int, angle_deg: float) -> np.ndarray:
    """Wavy collagen fibres in [0, 1] running along ``angle_deg`` (grid at :data:`STAIN_UM`)."""
    streaks: np.ndarray = rng.standard_normal((side, side), dtype=np.float32)
    streaks = cv2.GaussianBlur(streaks, (0, 0), sigmaX=8 / STAIN_UM, sigmaY=0.8 / STAIN_UM)
    rotation = cv2.getRotationMatrix2D((side / 2, side / 2), angle_deg, 1.0)
    streaks = cv2.warpAffine(streaks, rotation, (side, side), borderMode=cv2.BORDER_REFLECT)
    grid_x, grid_y = np.meshgrid(np.arange(side, dtype=np.float32), np.arange(side, dtype=np.float32))
    grid_x += (4 / STAIN_UM) * _smooth_noise(rng, (side, side), 40 / STAIN_UM)
    grid_y += (4 / STAIN_UM) * _smooth_noise(rng, (side, side), 40 / STAIN_UM)
    streaks = cv2.remap(streaks, grid_x, grid_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.clip(0.5 + streaks / (4 * streaks[::7, ::7].std() + 1e-6), 0, 1)


def _pen_stroke(rng: np.random.Generator, side: int) -> np.ndarray:
    """Marker ink density (0..1) on a ``side`` px grid: a curved arc, as drawn to circle a region of interest."""
    center = rng.uniform(0.3, 0.7, size=2) * side
    radius = rng.uniform(0.3, 0.5) * side
    start = rng.uniform(0, 2 * math.pi)
    sweep = rng.uniform(0.4, 1.2) * math.pi
    t = np.linspace(start, start + sweep, 64)
    wobble = 1 + 0.04 * np.sin(t * rng.uniform(2, 5) + rng.uniform(0, 6))
    points = np.stack([center[0] + radius * wobble * np.cos(t), center[1] + radius * wobble * np.sin(t)], axis=1)
    ink: np.ndarray = np.zeros((side, side), dtype=np.uint8)
    thickness = max(2, int(side * rng.uniform(0.035, 0.06)))
    cv2.polylines(ink, [np.round(points).astype(np.int32)], False, 255, thickness, cv2.LINE_AA)
    ink = cv2.GaussianBlur(ink, (0, 0), 1.5).astype(np.float32) / 255
    return ink * (0.85 + 0.1 * np.clip(_smooth_noise(rng, (side, side), side / 60), -1.5, 1.5))


def _stain_lut(rng: np.random.Generator, stain_shift: float = 0.0) -> np.ndarray:
    """RGB for every quantised (haematoxylin, eosin) pair, with this slide's stain hue and strength; ``stain_shift``
    is a site's systematic difference: haematoxylin ``1 + shift`` times stronger, eosin ``1 - shift`` times."""
    h_vector = HEMATOXYLIN_OD * rng.uniform(0.92, 1.08, size=3).astype(np.float32) * np.float32(1.0 + stain_shift)
    e_vector = EOSIN_OD * rng.uniform(0.92, 1.08, size=3).astype(np.float32) * np.float32(1.0 - stain_shift)
    h = np.arange(256, dtype=np.float32)[:, None, None] / H_STEPS
    e = np.arange(256, dtype=np.float32)[None, :, None] / E_STEPS
    density = h * h_vector + e * e_vector + GLASS_OD
    return np.clip(255.0 * np.power(10.0, -density) + 0.5, 0, 255).astype(np.uint8).reshape(-1, 3)


def render_tissue(
    seed: int, slide_index: int, phenotype: Phenotype, field_um: float, *, pen: bool, stain_shift: float = 0.0
) -> np.ndarray:
    """An H&E-like RGB picture (uint8) of ``field_um`` x ``field_um`` at :data:`RENDER_MPP`.

    Stain fields (stroma, cytoplasm, lumens) are painted at :data:`STAIN_UM` and nuclei at full
    resolution; concentrations become colours through a Beer-Lambert lookup table.
    """
    rng = random_stream(seed, 1, slide_index)
    side = int(round(field_um / RENDER_MPP))
    stain_side = int(round(field_um / STAIN_UM))
    outline = _tissue_outline(rng, int(round(field_um / OUTLINE_UM)), field_um)
    tissue = cv2.GaussianBlur((_resize(outline, stain_side) > 0).astype(np.float32), (0, 0), 0.7)

    arch = _architecture(rng, int(round(field_um / ARCHITECTURE_UM)), field_um, phenotype)
    gland_q = _resize(arch.gland_q, stain_side)
    lumen_ratio = _resize(arch.lumen_ratio, stain_side, cv2.INTER_NEAREST)
    lumen = gland_q < lumen_ratio
    epithelium = ((gland_q >= lumen_ratio) & (gland_q < 1.0)) | (_resize(arch.nest, stain_side) > 0)
    stroma = ~(lumen | epithelium)

    fibre_angle = rng.uniform(0, 180)
    fibres = _fibres(rng, stain_side, fibre_angle)
    eosin = np.where(stroma, 0.13 + 0.22 * fibres, np.float32(0.0))
    eosin += epithelium * np.float32(rng.uniform(0.22, 0.32)) + lumen * np.float32(0.03)
    eosin *= 1.0 + 0.12 * _smooth_noise(rng, (stain_side, stain_side), 8 / STAIN_UM)
    hematoxylin = 0.025 + epithelium * np.float32(rng.uniform(0.06, 0.11))
    drift = tissue * (1.0 + 0.1 * _smooth_noise(rng, (stain_side, stain_side), 400 / STAIN_UM))
    # A slight blur anti-aliases compartment edges drawn on the coarser stain grid.
    eosin = _resize(cv2.GaussianBlur(eosin * drift, (0, 0), 0.7), side)
    hematoxylin = _resize(cv2.GaussianBlur(hematoxylin * drift, (0, 0), 0.7), side)

    nuclei = _nuclei_layer(rng, side, arch, phenotype, fibre_angle, tissue)
    nuclei = cv2.multiply(nuclei, rng.integers(150, 256, size=(side, side), dtype=np.uint8), scale=1 / 255)
    hematoxylin += nuclei * np.float32(rng.uniform(0.8, 1.1) / 255)
    eosin *= 1.0 - nuclei * np.float32(0.5 / 255)
    index: np.ndarray = cv2.convertScaleAbs(hematoxylin, alpha=H_STEPS).astype(np.uint16) << 8
    index |= cv2.convertScaleAbs(eosin, alpha=E_STEPS)
    rgb = _stain_lut(rng, stain_shift)[index]
    if pen:
        _apply_pen(rng, rgb, stain_side)
    return rgb


def _apply_pen(rng: np.random.Generator, rgb: np.ndarray, stain_side: int) -> None:
    """Darken ``rgb`` in place under a marker stroke (only its bounding box is touched)."""
    colour = PEN_OD[list(PEN_OD)[int(rng.integers(len(PEN_OD)))]] * np.float32(rng.uniform(0.5, 0.9))
    ink = _resize(_pen_stroke(rng, stain_side), rgb.shape[0])
    rows, cols = np.nonzero(ink[::8, ::8] > 0.01)
    top, bottom = max(0, rows.min() * 8 - 8), min(rgb.shape[0], rows.max() * 8 + 16)
    left, right = max(0, cols.min() * 8 - 8), min(rgb.shape[1], cols.max() * 8 + 16)
    # Beer-Lambert through a lookup table: quantised ink density -> per-channel transmission (x255).
    transmission = np.round(255 * np.power(10.0, -np.arange(256)[:, None] / 255 * colour)).astype(np.uint8)
    ink_level = cv2.convertScaleAbs(ink[top:bottom, left:right], alpha=255)
    region = rgb[top:bottom, left:right]
    rgb[top:bottom, left:right] = cv2.multiply(region, transmission[ink_level], scale=1 / 255)


def _jittered_grid(rng: np.random.Generator, field_um: float, spacing_um: float) -> np.ndarray:
    """Candidate nucleus centres (µm): one per grid cell, jittered, so nuclei rarely pile up."""
    n = int(field_um / spacing_um)
    grid = (np.stack(np.meshgrid(np.arange(n), np.arange(n)), axis=-1).reshape(-1, 2) + 0.5) * spacing_um
    return grid + rng.uniform(-0.3, 0.3, size=grid.shape) * spacing_um


def _nuclei_layer(
    rng: np.random.Generator,
    side: int,
    arch: _Architecture,
    phenotype: Phenotype,
    fibre_angle: float,
    tissue: np.ndarray,
) -> np.ndarray:
    """Nuclei intensity (uint8, ``side`` px): epithelial nuclei in gland rings and nests, fibroblasts and
    lymphocytes in stroma."""
    field_um = side * RENDER_MPP
    epithelial_points = _jittered_grid(rng, field_um, 2 * phenotype.nucleus_radius_um + 3.0)
    stromal_points = _jittered_grid(rng, field_um, 7.0)
    points = np.concatenate([epithelial_points, stromal_points])
    on_epithelial_grid = np.arange(len(points)) < len(epithelial_points)

    def sample(grid: np.ndarray, step_um: float) -> np.ndarray:
        index = np.clip((points / step_um).astype(int), 0, grid.shape[0] - 1)
        return grid[index[:, 1], index[:, 0]]

    in_tissue = sample(tissue, STAIN_UM) > 0.5
    q = sample(arch.gland_q, ARCHITECTURE_UM)
    lumen_ratio = sample(arch.lumen_ratio, ARCHITECTURE_UM)
    in_ring = (q >= lumen_ratio) & (q < 1.0)
    in_nest = sample(arch.nest, ARCHITECTURE_UM) > 0
    in_lumen = q < lumen_ratio
    in_stroma = ~(in_ring | in_nest | in_lumen)
    lymph_field = _smooth_noise(rng, arch.gland_q.shape, 40 / ARCHITECTURE_UM)
    lymphocyte = in_stroma & (sample(lymph_field, ARCHITECTURE_UM) > 1.7 - 0.9 * phenotype.lymphocyte_level)

    # Gland nuclei sit in a band of the ring; nests are packed; stroma is sparse.
    ring_pos = (q - lumen_ratio) / np.maximum(1.0 - lumen_ratio, 1e-3)
    p = np.zeros(len(points))
    p[in_ring] = phenotype.epithelial_density * 1.6 * np.exp(-(((ring_pos[in_ring] - 0.55) / 0.35) ** 2))
    p[in_nest] = phenotype.epithelial_density
    p[in_lumen] = 0.02
    p[on_epithelial_grid & in_stroma] = 0.0
    p[~on_epithelial_grid & ~in_stroma] = 0.0
    p[~on_epithelial_grid & in_stroma] = 0.07
    p[~on_epithelial_grid & lymphocyte] = 0.6
    keep = in_tissue & (rng.random(len(p)) < p)

    count = len(p)
    radius = phenotype.nucleus_radius_um * rng.lognormal(0, 0.15, count)
    elongation = rng.uniform(1.0, 1.6, count)
    semi_major, semi_minor = radius * np.sqrt(elongation), radius / np.sqrt(elongation)
    angle = rng.uniform(0, 180, count)
    intensity = rng.uniform(0.65, 0.95, count)
    # Columnar gland nuclei point away from the lumen.
    angle[in_ring] = np.degrees(sample(arch.gland_angle, ARCHITECTURE_UM)[in_ring])
    fibroblast = in_stroma & ~lymphocyte
    semi_major[fibroblast] = rng.uniform(4, 6.5, fibroblast.sum())
    semi_minor[fibroblast] = rng.uniform(1.0, 1.6, fibroblast.sum())
    angle[fibroblast] = -fibre_angle + rng.normal(0, 12, fibroblast.sum())
    semi_major[lymphocyte] = semi_minor[lymphocyte] = rng.uniform(2.2, 2.9, lymphocyte.sum())
    intensity[fibroblast | lymphocyte] = rng.uniform(0.9, 1.0, (fibroblast | lymphocyte).sum())

    canvas = np.zeros((side, side), dtype=np.uint8)
    semi_axes = np.stack([semi_major, semi_minor], axis=1)[keep] / RENDER_MPP
    centres = points[keep] / RENDER_MPP
    _draw_nuclei(canvas, centres[:, 0], centres[:, 1], semi_axes, angle[keep], intensity[keep])
    return canvas


def _pyramid(level0: np.ndarray) -> list[np.ndarray]:
    levels = [level0]
    while min(levels[-1].shape[:2]) >= MIN_LEVEL_PX:
        height, width = levels[-1].shape[:2]
        levels.append(cv2.resize(levels[-1], (width // 2, height // 2), interpolation=cv2.INTER_AREA))
    return levels


def write_aperio_tiff(path: Path, level0: np.ndarray, mpp: float, *, workers: int = 1) -> None:
    """Write an RGB image as an Aperio-style pyramidal SVS that OpenSlide reads (vendor ``aperio``).

    Written to a temporary sibling and renamed, so a killed job never leaves a truncated slide.
    """
    height, width = level0.shape[:2]
    magnification = MAGNIFICATION.get(mpp, round(10 / mpp))
    header = f"Aperio Image Library v12.0.16 \r\n{width}x{height} [0,0 {width}x{height}] ({TILE_PX}x{TILE_PX}) JPEG/RGB Q={JPEG_QUALITY}"
    # Fixed date and time keep the file byte-identical across runs.
    fields = f"|AppMag = {magnification}|MPP = {mpp}|Date = 01/01/25|Time = 00:00:00|ScanScope ID = MOSARE-DEMO"
    with atomic_file(path) as tmp, tifffile.TiffWriter(tmp) as tiff:
        for number, level in enumerate(_pyramid(level0)):
            description = header + fields if number == 0 else f"Aperio Image Library v12.0.16 \r\nlevel {number}"
            tiff.write(
                level,
                photometric="rgb",
                tile=(TILE_PX, TILE_PX),
                compression="jpeg",
                compressionargs={"level": JPEG_QUALITY},
                description=description,
                metadata=None,
                maxworkers=workers,
            )


def write_demo_slide(
    path: Path,
    *,
    seed: int,
    slide_index: int,
    phenotype: Phenotype,
    mpp: float,
    slide_px: int,
    pen: bool = False,
    stain_shift: float = 0.0,
    workers: int = 1,
) -> np.ndarray:
    """Render one demo slide and write it at ``mpp`` (0.25 or 0.5); return the 0.5 µm/px picture.

    ``slide_px`` is the level-0 side of a 40x slide; every slide covers the same ``slide_px * 0.25`` µm.
    ``stain_shift``: a site's stain difference (see :func:`_stain_lut`).
    """
    field_um = slide_px * 0.25
    picture = render_tissue(seed, slide_index, phenotype, field_um, pen=pen, stain_shift=stain_shift)
    side = int(round(field_um / mpp))
    level0 = picture if side == picture.shape[0] else cv2.resize(picture, (side, side), interpolation=cv2.INTER_CUBIC)
    write_aperio_tiff(path, level0, mpp, workers=workers)
    return picture
