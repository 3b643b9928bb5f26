"""Per-slide fixed cost of the GMM stage: one job per slide against one job per chunk of slides.

A chunk of generated slides (default 16, the default ``encoder.slides_per_job``; 200-2,000 patches each,
log-uniform, 1,280-d features as efficientnet-lite0 gives) is fitted twice, each time exactly as
``workflow/scripts/fit_slide_gmm.py`` does it (imports, ``fit_slide_gmms``, the component-map QC picture over the
slide's thumbnail), in fresh Python processes run one after another:
  - the old layout: one process per slide;
  - the workflow's layout: one process for the whole chunk.
It prints the CPU seconds of both (user + system of the processes, which a machine shared with other work disturbs
less than wall time), their ratio, and the per-slide fixed cost: (one-per-slide - one-per-chunk) / (slides - 1),
what each extra process pays before it fits anything, against the chunk's amortised cost per slide (target 0.5 s).

    .venv/bin/python benchmarks/bench_gmm_jobs.py [--slides 16] [--components 16]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_embedding import bench_slide, patch_store

from mosare.core.stores import open_store, write_store

FEATURE_DIM = 1280  # efficientnet-lite0

JOB = """
import json, sys
import torch
from mosare.reporting.plots.gmm import plot_slide_mixture
from mosare.features.slide_gmm import SlideGMMJob, fit_slide_gmms
args = json.loads(sys.argv[1])
torch.set_num_threads(1)
fit_slide_gmms([SlideGMMJob(*job) for job in args["jobs"]], args["gmm"],
               draw=lambda mixture, job: plot_slide_mixture(mixture, job.patch_store, job.slide_path, job.qc_picture))
"""


def feature_store(folder: Path, index: int, n_patches: int, rng: np.random.Generator) -> Path:
    """Features of ``n_patches`` patches in a few clusters, as a slide's tissue types give them."""
    centres = rng.normal(scale=2.0, size=(6, FEATURE_DIM))
    features = centres[rng.integers(6, size=n_patches)] + rng.normal(size=(n_patches, FEATURE_DIM))
    coords = np.asarray(open_store(patch_store(folder, n_patches))["coords"][...])
    path = folder / f"features-{index}.zarr"
    write_store(path, {"features": features.astype(np.float16), "coords": coords}, {"encoder": "efficientnet-lite0"})
    return path


def run_jobs(job_lists: list[list[list[str]]], gmm: dict) -> tuple[float, float]:
    """Run each list of slides as one fresh process, one after another; (wall s, CPU s of the processes)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    for jobs in job_lists:
        subprocess.run([sys.executable, "-c", JOB, json.dumps({"jobs": jobs, "gmm": gmm})], check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slides", type=int, default=16)
    parser.add_argument("--components", type=int, default=16)
    args = parser.parse_args()

    from mosare.core.config_schema import schema_defaults

    gmm = {**schema_defaults("gmm"), "components": args.components}
    rng = np.random.default_rng(0)
    sizes = np.exp(rng.uniform(math.log(200), math.log(2000), args.slides)).astype(int)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        slide = str(bench_slide())
        jobs = [
            [
                f"s{i}",
                str(feature_store(folder, i, int(n), rng)),
                str(folder / f"gmm-{i}.zarr"),
                str(patch_store(folder, int(n))),
                slide,
                str(folder / f"qc-{i}.png"),
                str(folder / f"s{i}.log"),
            ]
            for i, n in enumerate(sizes)
        ]
        print(
            f"{args.slides} slides, {sizes.sum()} patches ({sizes.min()}-{sizes.max()} per slide), "
            f"{FEATURE_DIM}-d features, {args.components} components"
        )
        chunk_wall, chunk_cpu = run_jobs([jobs], gmm)
        alone_wall, alone_cpu = run_jobs([[job] for job in jobs], gmm)
    fixed = (alone_cpu - chunk_cpu) / (args.slides - 1)
    print(f"one job per slide : {alone_cpu:7.1f} CPU s ({alone_wall:.1f} s wall)")
    print(f"one job per chunk : {chunk_cpu:7.1f} CPU s ({chunk_wall:.1f} s wall)")
    print(f"ratio (per slide / per chunk): {alone_cpu / chunk_cpu:.2f}x CPU, {alone_wall / chunk_wall:.2f}x wall")
    print(
        f"fixed cost of a job: {fixed:.2f} CPU s; per slide in a chunk of {args.slides}: "
        f"{fixed / args.slides:.2f} s (target <= 0.5 s)"
    )


if __name__ == "__main__":
    main()
