"""Tiling speed and memory on a 40,000 x 40,000 px slide at 0.25 µm/px, and our patch reader against bare OpenSlide.

The slide is an Aperio-style pyramidal tiled TIFF (JPEG tiles 256 px, levels 1/4/16/64), written once with
tifffile from a small bank of tissue-like tiles laid out as two large tissue pieces and a pen stroke, and
cached under .cache/bench/ (about a minute to build the first time).

1. Tissue detection + patch coordinates (mosare.slides.tissue.detect_tissue + fine_cell_fractions, then patch_coords:
   the coarse pass, the fine pass around tissue and the grid), measured in a fresh
   subprocess: wall time (target < 2 s) and peak RSS (target < 1 GiB; imports alone are reported too).
2. Patch reading: mosare.slides.reader.Slide.read_patch (RGB, resized to 256 px) against a bare
   ``openslide.OpenSlide.read_region`` loop (RGBA PIL image at the read size) over the same coordinates, each
   with its own handle, patch by patch in alternating order after a warm-up; best of ``--rounds`` rounds.
   Target: ratio (ours / bare throughput) >= 0.8.

    .venv/bin/python benchmarks/bench_tiling.py [--patches 400] [--rounds 3] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import openslide
import tifffile

from mosare.slides.patch_geometry import patch_geometry
from mosare.slides.reader import open_slide
from mosare.slides.tissue import TissueParams

REPO = Path(__file__).resolve().parents[1]
SLIDE = REPO / ".cache" / "bench" / "bench-40k-0.25mpp.svs"
ONE_LEVEL_SLIDE = REPO / ".cache" / "bench" / "bench-40k-0.25mpp-one-level.svs"
SIZE = 40_000
MPP = 0.25
TILE = 256
DOWNSAMPLES = (1, 4, 16, 64)
TARGET_MPP = 0.5
PATCH_PX = 256


def _tissue_at(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Layout in level-0 px: two elliptical tissue pieces; returns 0 glass, 1 tissue, 2 green ink."""
    first = ((x - 14_000) / 9_000) ** 2 + ((y - 16_000) / 11_000) ** 2 < 1
    second = ((x - 29_000) / 7_000) ** 2 + ((y - 25_000) / 10_000) ** 2 < 1
    ink = (np.abs(y - (0.25 * x + 30_000)) < 250) & (x > 3_000) & (x < 22_000)
    return np.where(ink, 2, np.where(first | second, 1, 0))


def _tile_bank(seed: int = 0) -> list[np.ndarray]:
    """Glass, ink, and eight H&E-like textures (pink stroma with purple nuclei), each TILE x TILE RGB."""
    rng = np.random.default_rng(seed)
    glass = np.clip(rng.normal(243, 2, (TILE, TILE, 3)), 0, 255).astype(np.uint8)
    ink = np.empty((TILE, TILE, 3), np.uint8)
    ink[:] = (40, 150, 60)
    textures = []
    for _ in range(8):
        image = np.empty((TILE, TILE, 3), np.uint8)
        image[:] = (232, 160, 200)
        centres = rng.integers(0, TILE, size=(60, 2))
        for cx, cy in centres:
            cv2.circle(image, (int(cx), int(cy)), int(rng.integers(3, 7)), (120, 70, 160), -1)
        noise = rng.normal(0, 6, image.shape)
        textures.append(np.clip(image + noise, 0, 255).astype(np.uint8))
    return [glass, ink, *textures]


def build_slide(path: Path, downsamples: tuple[int, ...]) -> None:
    bank = _tile_bank()
    rng = np.random.default_rng(1)
    description = (
        f"Aperio Image Library v12.0.16\r\n{SIZE}x{SIZE} ({TILE}x{TILE}) JPEG/RGB Q=80|AppMag = 40|MPP = {MPP}"
    )
    tmp = path.with_suffix(".part")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(tmp, bigtiff=True) as tif:
        for index, downsample in enumerate(downsamples):
            size = SIZE // downsample
            n_tiles = -(-size // TILE)
            centres = (np.arange(n_tiles) * TILE + TILE / 2) * downsample
            kind = _tissue_at(centres[None, :], centres[:, None])  # (rows, cols)
            choice = np.where(kind == 1, 2 + rng.integers(0, 8, kind.shape), kind)

            def tiles(choice: np.ndarray = choice):
                for row in choice:
                    for item in row:
                        yield bank[item]

            tif.write(
                tiles(),
                shape=(size, size, 3),
                dtype=np.uint8,
                tile=(TILE, TILE),
                compression="jpeg",
                compressionargs={"level": 80},
                photometric="rgb",
                description=description if index == 0 else None,
                subfiletype=0 if index == 0 else 1,
                metadata=None,
                maxworkers=2,
            )
    tmp.replace(path)


DETECTION_SCRIPT = """
import json, resource, sys, time
import numpy as np
from mosare.slides.patch_geometry import patch_geometry
from mosare.slides.patch_grid import grid_starts
from mosare.slides.reader import open_slide
from mosare.slides.tiling import patch_coords
from mosare.slides.tissue import TissueParams, detect_tissue, fine_cell_fractions
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
with open_slide(sys.argv[1]) as slide:
    geometry = patch_geometry(slide.mpp, float(sys.argv[2]), int(sys.argv[3]), slide.level_downsamples)
    params = TissueParams()
    tissue = detect_tissue(slide, params, params.min_piece_um2((int(sys.argv[3]) * float(sys.argv[2])) ** 2))
    coarse_seconds = time.perf_counter() - start
    xs, ys = grid_starts(slide.dimensions, geometry.footprint_px)
    fractions = fine_cell_fractions(slide, tissue, params, xs, ys, geometry.footprint_px)
    coords = patch_coords(fractions, xs, ys, 0.5)
seconds = time.perf_counter() - start
np.save(sys.argv[4], coords)
print(json.dumps({"seconds": seconds, "coarse_seconds": coarse_seconds, "n_patches": len(coords), "mask_shape": tissue.mask.shape,
                  "detection_mpp": tissue.mpp, "area_mm2": tissue.area_um2 / 1e6,
                  "baseline_rss_mib": baseline / 1024,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure_detection(slide: Path, coords_path: Path) -> dict:
    runs = []
    for _ in range(2):  # the first run also warms the OS file cache
        out = subprocess.run(
            [sys.executable, "-c", DETECTION_SCRIPT, str(slide), str(TARGET_MPP), str(PATCH_PX), str(coords_path)],
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(out.stdout))
    return min(runs, key=lambda run: run["seconds"])


def measure_reading(coords: np.ndarray, target_mpp: float, rounds: int) -> dict:
    """Patches/s of both readers. Each patch is read by both, in alternating order, so the load of a
    shared machine hits both equally; each reader has its own handle (and OpenSlide tile cache)."""
    with open_slide(SLIDE) as slide:
        geometry = patch_geometry(slide.mpp, target_mpp, PATCH_PX, slide.level_downsamples)
        level, read_px = geometry.read_level, geometry.read_px
        bare = openslide.OpenSlide(str(SLIDE))
        for x, y in coords:  # warm-up: OS page cache
            bare.read_region((int(x), int(y)), level, (read_px, read_px))

        def ours_read(x: int, y: int) -> None:
            slide.read_patch(x, y, level, read_px, PATCH_PX)

        def bare_read(x: int, y: int) -> None:
            bare.read_region((x, y), level, (read_px, read_px))

        ours_times, bare_times = [], []
        for _ in range(rounds):
            seconds = {ours_read: 0.0, bare_read: 0.0}
            for index, (x, y) in enumerate(coords.tolist()):
                for reader in (ours_read, bare_read) if index % 2 else (bare_read, ours_read):
                    start = time.perf_counter()
                    reader(x, y)
                    seconds[reader] += time.perf_counter() - start
            ours_times.append(seconds[ours_read])
            bare_times.append(seconds[bare_read])
        bare.close()
    ours, bare_best = len(coords) / min(ours_times), len(coords) / min(bare_times)
    return {"geometry": geometry, "ours": ours, "bare": bare_best, "ratio": ours / bare_best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patches", type=int, default=400, help="patches per reading round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached benchmark slide")
    parser.add_argument(
        "--one-level",
        action="store_true",
        help="also time detection on the same slide stored without a pyramid (strip-wise path; slow: "
        "decodes all 1.6 gigapixels)",
    )
    args = parser.parse_args()

    slides = [(SLIDE, DOWNSAMPLES)] + ([(ONE_LEVEL_SLIDE, (1,))] if args.one_level else [])
    for path, downsamples in slides:
        if args.rebuild or not path.exists():
            start = time.perf_counter()
            build_slide(path, downsamples)
            print(f"built {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.0f} s")
        detection = measure_detection(path, path.with_suffix(".coords.npy"))
        print(
            f"tissue detection + coords, {SIZE}x{SIZE} px at {MPP} µm/px, levels {downsamples}: "
            f"{detection['seconds']:.3f} s (target < 2 s for the pyramid), mask {detection['mask_shape']} at "
            f"{detection['detection_mpp']:.1f} µm/px, tissue {detection['area_mm2']:.0f} mm², "
            f"{detection['n_patches']} patches of {PATCH_PX} px at {TARGET_MPP} µm/px"
        )
        print(
            f"  of which the {TissueParams().detection_mpp:g} µm/px pass {detection['coarse_seconds']:.3f} s and the "
            f"{TissueParams().fraction_mpp:g} µm/px pass around tissue "
            f"{detection['seconds'] - detection['coarse_seconds']:.3f} s "
            f"({(detection['seconds'] - detection['coarse_seconds']) / detection['coarse_seconds']:.1f}x the first)"
        )
        print(
            f"  peak RSS {detection['peak_rss_mib']:.0f} MiB (target < 1024 MiB; "
            f"{detection['baseline_rss_mib']:.0f} MiB of it is the interpreter and imports)"
        )

    coords_path = SLIDE.with_suffix(".coords.npy")

    coords = np.load(coords_path)
    rng = np.random.default_rng(0)
    sample = coords[rng.choice(len(coords), size=min(args.patches, len(coords)), replace=False)]
    for target_mpp in (TARGET_MPP, MPP, 1.0):
        result = measure_reading(sample, target_mpp, args.rounds)
        geometry = result["geometry"]
        print(
            f"read {len(sample)} patches at {target_mpp} µm/px (level {geometry.read_level}, "
            f"{geometry.read_px} px -> {PATCH_PX} px): ours {result['ours']:.0f} patches/s, bare "
            f"openslide.read_region {result['bare']:.0f} patches/s, ratio {result['ratio']:.2f} (target >= 0.8)"
        )


if __name__ == "__main__":
    main()
