"""Cost of the slide QC metrics in the tiling job: the fine pass with and without gathering them, same process.

Usage: python benchmarks/bench_slide_qc.py SLIDE [SLIDE ...] (e.g. results/demo/nsclc/slides/*.svs). Prints per
slide the fine pass's time without QC, with QC (gathering plus the final metrics), and the ratio; runs alternate,
best of ``REPEATS``, so load from other processes hits both alike.
"""

from __future__ import annotations

import sys
import time

from mosare.slides.patch_geometry import patch_geometry
from mosare.slides.patch_grid import grid_starts
from mosare.slides.qc_metrics import FinePassQC
from mosare.slides.reader import open_slide
from mosare.slides.tissue import TissueParams, detect_tissue, fine_cell_fractions

REPEATS = 3


def fine_pass_seconds(path: str, with_qc: bool) -> float:
    params = TissueParams()
    with open_slide(path, slide_id="bench") as slide:
        geometry = patch_geometry(slide.mpp, 0.5, 256, slide.level_downsamples)
        tissue = detect_tissue(slide, params, (256 * 0.5) ** 2)
        xs, ys = grid_starts(slide.dimensions, geometry.footprint_px)
        start = time.perf_counter()
        qc = FinePassQC() if with_qc else None
        fine_cell_fractions(slide, tissue, params, xs, ys, geometry.footprint_px, qc.add if qc else None)
        if qc is not None:
            qc.metrics()
        return time.perf_counter() - start


def main(paths: list[str]) -> None:
    ratios = []
    for path in paths:
        plain, with_qc = float("inf"), float("inf")
        for _ in range(REPEATS):
            plain = min(plain, fine_pass_seconds(path, False))
            with_qc = min(with_qc, fine_pass_seconds(path, True))
        ratios.append(with_qc / plain)
        print(f"{path}: fine pass {plain:.3f} s, with QC {with_qc:.3f} s, ratio {ratios[-1]:.2f}")
    print(f"median ratio over {len(paths)} slide(s): {sorted(ratios)[len(ratios) // 2]:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
