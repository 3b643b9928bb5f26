"""Embedding-stage efficiency over a cohort: the stage's jobs against one process with the model loaded once.

A cohort of generated slides (default 44, 200-2,000 patches each, log-uniform) is embedded
  - as the workflow's embedding stage runs it: the slides in chunks of ``--slides-per-job``
    (``mosare.features.embedding_chunks``, as planned by ``common.smk``), each chunk one fresh Python process running
    ``embed_slides_with_config`` exactly as ``workflow/scripts/embed_slide.py`` does (imports, model load from its
    checkpoint, weights check, decode workers, atomic stores), one after another as on one GPU;
  - as the ideal: this process, model already loaded, decoding and forwarding the same patches in the same
    batches with the same workers and threads, writing nothing.
It prints both wall times and the efficiency ideal / stage (target >= 0.85), and the same for CPU seconds (the
jobs' and their workers' user + system time), which a machine shared with other work disturbs less. The encoder stands in for a GPU:
``timm:test_vit`` (a tiny ViT) with random weights through the real registry path (a checkpoint file), batch 64,
so decoding, not the model, sets the pace, as with UNI on an H100. ``--slides-per-job 1`` is the old layout, one
job per slide.

    .venv/bin/python benchmarks/bench_cohort_embedding.py [--slides 44] [--slides-per-job 1 16] [--workers 2]
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
import torch
from bench_embedding import CACHE, PATCH_PX, bench_slide

from mosare.core.stores import write_store
from mosare.demo.render import patient_phenotype, write_demo_slide
from mosare.features.embedding import PatchDataset, patch_loader
from mosare.features.embedding_chunks import embedding_chunks
from mosare.features.encoders import create_encoder
from mosare.features.weights_fingerprint import fingerprint_encoder_weights
from mosare.slides.patch_store import PatchStore

ARCHITECTURE = "test_vit"  # timm's tiny test ViT (160 px, 64-d): decoding, not the model, sets the pace
SLIDE_FILES = 4  # distinct generated 8192 px slides; the patch stores spread over them
GRID = 8192 // PATCH_PX  # 32 x 32 patch positions per slide

JOB = """
import json, sys
from mosare.features.embedding import SlideJob, embed_slides_with_config
args = json.loads(sys.argv[1])
embed_slides_with_config([SlideJob(p, o) for p, o in args["jobs"]], args["encoder"], threads=args["threads"],
                         weights_fingerprint=args["fingerprint"])
"""


def slide_files() -> list[Path]:
    files = [bench_slide()]
    for seed in range(1, SLIDE_FILES):
        path = CACHE / f"bench-cohort-{seed}-8192px-0.5mpp.svs"
        if not path.exists():
            phenotype = patient_phenotype(seed=seed, patient_index=seed, class_position=seed / SLIDE_FILES)
            write_demo_slide(path, seed=seed, slide_index=0, phenotype=phenotype, mpp=0.5, slide_px=8192)
        files.append(path)
    return files


def cohort_patch_stores(folder: Path, n_slides: int, low: int, high: int) -> list[Path]:
    """``n_slides`` patch stores with log-uniform patch counts in [low, high], each over one of the slide files."""
    rng = np.random.default_rng(0)
    files = slide_files()
    grid = np.array([(x, y) for y in range(GRID) for x in range(GRID)], dtype=np.int64) * PATCH_PX
    stores = []
    for index in range(n_slides):
        n_patches = int(round(math.exp(rng.uniform(math.log(low), math.log(high)))))
        coords = np.resize(grid[rng.permutation(len(grid))], (n_patches, 2))
        slide_id = f"bench-{index:03d}"
        path = folder / "patches" / f"{slide_id}.zarr"
        attrs = {
            "slide_id": slide_id,
            "slide_path": str(files[index % len(files)]),
            "mpp_level0": 0.5,
            "target_mpp": 0.5,
            "patch_px": PATCH_PX,
            "footprint_px": PATCH_PX,
            "read_level": 0,
            "read_px": PATCH_PX,
            "n_patches": n_patches,
        }
        write_store(path, {"coords": coords}, attrs)
        stores.append(path)
    return stores


def random_checkpoint(folder: Path) -> Path:
    import timm

    model = timm.create_model(ARCHITECTURE, pretrained=False, num_classes=0)
    path = folder / f"{ARCHITECTURE}-random.pth"
    torch.save(model.state_dict(), path)
    return path


def cpu_seconds() -> float:
    """User + system CPU of this process and of its finished children (the jobs, and their decode workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_stage(
    stores: list[Path], folder: Path, encoder_config: dict, fingerprint: Path, *, slides_per_job: int, threads: int
) -> dict:
    """The stage as the workflow runs it: one fresh process per chunk, one after another."""
    by_id = {store.name.removesuffix(".zarr"): store for store in stores}
    chunks = embedding_chunks(list(by_id), slides_per_job)
    output = folder / f"features-{slides_per_job}"
    job_seconds = []
    start, start_cpu = time.perf_counter(), cpu_seconds()
    for chunk in chunks:
        jobs = [(str(by_id[slide_id]), str(output / f"{slide_id}.zarr")) for slide_id in chunk.slide_ids]
        argument = json.dumps(
            {"jobs": jobs, "encoder": encoder_config, "threads": threads, "fingerprint": str(fingerprint)}
        )
        job_start = time.perf_counter()
        subprocess.run([sys.executable, "-c", JOB, argument], check=True, capture_output=True)
        job_seconds.append(time.perf_counter() - job_start)
    return {
        "seconds": time.perf_counter() - start,
        "cpu_seconds": cpu_seconds() - start_cpu,
        "jobs": len(chunks),
        "slides_per_job_max": max(len(chunk.slide_ids) for chunk in chunks),
        "job_seconds": job_seconds,
    }


def run_ideal(
    stores: list[Path], encoder_config: dict, checkpoint: Path, *, workers: int, threads: int
) -> tuple[float, float]:
    """One process, model loaded once (not timed): decode and forward every patch in the same batches."""
    torch.set_num_threads(threads)
    encoder = create_encoder(encoder_config["name"], checkpoint=checkpoint, device="cpu")
    encoder.embed(torch.zeros((encoder_config["batch_size"], 3, encoder.input_px, encoder.input_px), dtype=torch.uint8))
    dataset = PatchDataset([PatchStore.read(store) for store in stores], encoder.resize_crop, encoder.input_px)
    loader = patch_loader(dataset, batch_size=encoder_config["batch_size"], num_workers=workers, pin_memory=False)
    start, start_cpu = time.perf_counter(), cpu_seconds()
    for _, _, images, _ in loader:
        encoder.embed(images)
    seconds = time.perf_counter() - start
    del loader  # the workers exit, so their CPU time is counted
    return seconds, cpu_seconds() - start_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slides", type=int, default=44)
    parser.add_argument("--min-patches", type=int, default=200)
    parser.add_argument("--max-patches", type=int, default=2000)
    parser.add_argument("--slides-per-job", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--workers", type=int, default=2, help="decode workers (DataLoader processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cohort-embedding-") as tmp:
        folder = Path(tmp)
        stores = cohort_patch_stores(folder, args.slides, args.min_patches, args.max_patches)
        checkpoint = random_checkpoint(folder)
        encoder_config = {
            "name": f"timm:{ARCHITECTURE}",
            "checkpoint": str(checkpoint),
            "batch_size": args.batch,
            "num_workers": args.workers,
            "max_failed_fraction": 0.01,
        }
        fingerprint = folder / "fingerprint.json"
        fingerprint_encoder_weights(encoder_config, fingerprint)
        n_patches = sum(PatchStore.read(store).coords.shape[0] for store in stores)
        # Warm the page cache and the interpreter's files for both sides alike.
        run_ideal(stores[:2], encoder_config, checkpoint, workers=args.workers, threads=args.threads)
        ideal, ideal_cpu = run_ideal(stores, encoder_config, checkpoint, workers=args.workers, threads=args.threads)
        print(
            json.dumps(
                {
                    "measure": "ideal",
                    "slides": len(stores),
                    "patches": n_patches,
                    "seconds": round(ideal, 1),
                    "cpu_seconds": round(ideal_cpu, 1),
                    "patches_per_s": round(n_patches / ideal, 1),
                }
            ),
            flush=True,
        )
        results = []
        for slides_per_job in args.slides_per_job:
            stage = run_stage(
                stores, folder, encoder_config, fingerprint, slides_per_job=slides_per_job, threads=args.threads
            )
            result = {
                "measure": "stage",
                "slides_per_job": slides_per_job,
                "jobs": stage["jobs"],
                "largest_job_slides": stage["slides_per_job_max"],
                "seconds": round(stage["seconds"], 1),
                "ideal_seconds": round(ideal, 1),
                "efficiency": round(ideal / stage["seconds"], 3),
                "overhead_per_job_s": round((stage["seconds"] - ideal) / stage["jobs"], 2),
                "cpu_seconds": round(stage["cpu_seconds"], 1),
                "ideal_cpu_seconds": round(ideal_cpu, 1),
                "cpu_efficiency": round(ideal_cpu / stage["cpu_seconds"], 3),
                "cpu_overhead_per_job_s": round((stage["cpu_seconds"] - ideal_cpu) / stage["jobs"], 2),
            }
            print(json.dumps(result), flush=True)
            results.append(result)
    print(
        f"\nsummary: {len(stores)} slides, {n_patches} patches, {ARCHITECTURE} (random weights) batch {args.batch}, "
        f"{args.workers} decode workers, {args.threads} torch thread(s)"
    )
    print(f"  ideal (one process, model loaded once): {ideal:.1f} s wall, {ideal_cpu:.1f} s CPU")
    for result in results:
        print(
            f"  stage, {result['slides_per_job']:>3} slides per job ({result['jobs']} jobs): {result['seconds']} s, "
            f"efficiency {result['efficiency']} (target >= 0.85), {result['overhead_per_job_s']} s overhead per job; "
            f"CPU {result['cpu_seconds']} s, CPU efficiency {result['cpu_efficiency']} "
            f"({result['cpu_overhead_per_job_s']} CPU s per job)"
        )


if __name__ == "__main__":
    main()
