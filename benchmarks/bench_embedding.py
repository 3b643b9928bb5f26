"""Embedding throughput (the pipeline against the bare model) and peak memory against the number of patches.

1. Throughput, per encoder: ``mosare.features.embedding.embed_slide`` on a patch store of a generated demo slide
   (DataLoader workers reading through ``Slide.read_patch``, resizing, streaming to zarr) against the bare
   ``Encoder.embed`` on pre-made uint8 batches already on the device - same device, batch size, dtype and
   torch threads. Target: pipeline / bare >= 0.9 (reading is hidden behind compute).
   efficientnet-lite0 uses its real weights; UNI uses random weights (speed does not depend on them).
2. Peak RSS of ``embed_slide`` for 50,000 and 5,000 patches (a slide region's patch grid repeated), each in a
   fresh subprocess, with a parameter-free 1024-d stand-in model on 32 px patches so the run takes about a
   minute; also the growth over the RSS just before embedding (50,000 x 1024 fp16 features are 100 MB, so
   holding them would show). Target: 50k / 5k within +-10% (features stream to disk).

    .venv/bin/python benchmarks/bench_embedding.py [--threads 2] [--workers 2] [--skip-uni] [--skip-memory]

Prints one JSON object per measurement and a summary; device and thread counts are part of every line.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms import v2

from mosare.core.devices import resolve_device
from mosare.core.stores import write_store
from mosare.demo.writer import patient_phenotype, write_demo_slide
from mosare.features.embedding import embed_slide
from mosare.features.encoder_plugins.uni import uni_architecture
from mosare.features.encoders import Encoder, create_encoder

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench"
SLIDE = CACHE / "bench-embedding-4096px-0.5mpp.svs"
SLIDE_PX = 4096  # level 0 at 0.5 µm/px: 256 distinct 256 px patches
PATCH_PX = 256


def bench_slide() -> Path:
    if not SLIDE.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        phenotype = patient_phenotype(seed=7, patient_index=0, class_position=0.0)
        write_demo_slide(SLIDE, seed=7, slide_index=0, phenotype=phenotype, mpp=0.5, slide_px=2 * SLIDE_PX)
    return SLIDE


def patch_store(folder: Path, n_patches: int, patch_px: int = PATCH_PX, region_px: int = SLIDE_PX) -> Path:
    """A patch store over a regular grid of the bench slide's top-left ``region_px`` square, repeated until it
    holds ``n_patches`` coordinates."""
    grid = np.array(
        [(x, y) for y in range(0, region_px, patch_px) for x in range(0, region_px, patch_px)], dtype=np.int64
    )
    coords = np.resize(grid, (n_patches, 2))
    path = folder / f"patches-{n_patches}-{patch_px}.zarr"
    attrs = {
        "slide_id": "bench",
        "slide_path": str(bench_slide()),
        "mpp_level0": 0.5,
        "target_mpp": 0.5,
        "patch_px": patch_px,
        "footprint_px": patch_px,
        "read_level": 0,
        "read_px": patch_px,
        "n_patches": n_patches,
    }
    write_store(path, {"coords": coords}, attrs)
    return path


def random_uni(folder: Path, device: torch.device) -> Encoder:
    """UNI through the registry's real loading path, with random weights written to a temporary .bin."""
    generator = torch.Generator().manual_seed(0)
    shapes = {key: value.shape for key, value in uni_architecture().state_dict().items()}
    state = {key: torch.empty(shape).normal_(std=0.02, generator=generator) for key, shape in shapes.items()}
    weights = folder / "uni-random.bin"
    torch.save(state, weights)
    del state
    return create_encoder("uni", checkpoint=weights, device=device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_throughput(encoder: Encoder, *, batch_size: int, batches: int) -> float:
    """Patches/s of encoder.embed alone on pre-made uint8 batches already on the device (after one warm-up)."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(
        0, 256, (batch_size, 3, encoder.input_px, encoder.input_px), dtype=torch.uint8, generator=generator
    ).to(encoder.device)
    encoder.embed(images)
    synchronize(encoder.device)
    start = time.perf_counter()
    for _ in range(batches):
        encoder.embed(images).cpu()
    synchronize(encoder.device)
    return batches * batch_size / (time.perf_counter() - start)


def pipeline_throughput(encoder: Encoder, store: Path, output: Path, *, batch_size: int, workers: int) -> float:
    """Patches/s of embed_slide end to end (workers start, read, resize, embed, write, rename)."""
    n_patches = int(store.name.split("-")[1])
    start = time.perf_counter()
    embed_slide(store, output, encoder, batch_size=batch_size, num_workers=workers)
    return n_patches / (time.perf_counter() - start)


def compare(
    name: str, encoder: Encoder, folder: Path, *, batch_size: int, batches: int, workers: int, threads: int, rounds: int
) -> dict:
    """Best of ``rounds`` alternating runs of each, so a burst of load from other processes hits both alike."""
    store = patch_store(folder, batch_size * batches)
    # Warm-up outside the timing: first forward (allocator, kernels) and the slide file in the page cache.
    pipeline_throughput(
        encoder, patch_store(folder, batch_size), folder / f"warm-{name}.zarr", batch_size=batch_size, workers=0
    )
    bare, pipeline = [], []
    for _ in range(rounds):
        bare.append(bare_throughput(encoder, batch_size=batch_size, batches=batches))
        pipeline.append(
            pipeline_throughput(encoder, store, folder / f"{name}.zarr", batch_size=batch_size, workers=workers)
        )
    result = {
        "measure": "throughput",
        "encoder": name,
        "device": str(encoder.device),
        "dtype": encoder.dtype_name,
        "batch_size": batch_size,
        "patches": batch_size * batches,
        "workers": workers,
        "torch_threads": threads,
        "rounds": rounds,
        "bare_patches_per_s": round(max(bare), 2),
        "pipeline_patches_per_s": round(max(pipeline), 2),
        "ratio": round(max(pipeline) / max(bare), 3),
    }
    print(json.dumps(result), flush=True)
    return result


class PixelFeatures(torch.nn.Module):
    """A parameter-free stand-in model: the first ``dim`` normalised pixel values of each patch.

    Memory is about what the pipeline holds per patch (features, coords, batches), not about the model,
    and this keeps 50,000 patches to about a minute on two cores.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.flatten(1)[:, : self.dim]


def current_rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def peak_rss_mb() -> float:
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def memory_child(n_patches: int, folder: Path, workers: int) -> None:
    """Run in a fresh process: embed n_patches; print RSS before, peak during, and the workers' peak (MB)."""
    encoder = Encoder(
        name="pixel-features",
        model=PixelFeatures(1024),
        dim=1024,
        input_px=32,
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
        interpolation=v2.InterpolationMode.BILINEAR,
        autocast_dtype=None,
        weights_path=__file__,
        device=torch.device("cpu"),
    )
    # 32 px patches from a 1024 px region (16 JPEG tiles, all in OpenSlide's tile cache): cheap reads, so the
    # run measures the loader and the writer, not JPEG decoding.
    store = patch_store(folder, n_patches, patch_px=32, region_px=1024)
    encoder.embed(torch.zeros((256, 3, 32, 32), dtype=torch.uint8))
    before = current_rss_mb()
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    start = time.perf_counter()
    embed_slide(store, folder / f"memory-{n_patches}.zarr", encoder, batch_size=256, num_workers=workers)
    seconds = time.perf_counter() - start
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "n_patches": n_patches,
                "seconds": round(seconds, 1),
                "rss_before_mb": round(before, 1),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "growth_mb": round(peak_rss_mb() - before, 1),
                "worker_peak_rss_mb": round(worker_mb, 1),
            }
        )
    )


def memory_comparison(folder: Path, workers: int) -> dict:
    runs = {}
    for n_patches in (5_000, 50_000):
        completed = subprocess.run(
            [
                sys.executable,
                __file__,
                "--memory-child",
                str(n_patches),
                "--folder",
                str(folder),
                "--workers",
                str(workers),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        runs[n_patches] = json.loads(completed.stdout.strip().splitlines()[-1])
    result = {
        "measure": "peak_rss",
        "encoder": "pixel features (32 px, 1024-d)",
        "workers": workers,
        "runs": list(runs.values()),
        "main_ratio_50k_over_5k": round(runs[50_000]["peak_rss_mb"] / runs[5_000]["peak_rss_mb"], 3),
    }
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on the CPU")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--rounds", type=int, default=2, help="alternating timing rounds (best of)")
    parser.add_argument("--lite0-batches", type=int, default=4, help="batches of 64 for efficientnet-lite0")
    parser.add_argument("--uni-batch", type=int, default=None, help="UNI batch size (default 8 on CPU, 256 on CUDA)")
    parser.add_argument("--uni-batches", type=int, default=4)
    parser.add_argument("--skip-uni", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child, args.folder, args.workers)
        return
    bench_slide()
    device = resolve_device()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-embedding-") as tmp:
        folder = Path(tmp)
        lite0 = create_encoder("efficientnet-lite0", device=device)
        results.append(
            compare(
                "efficientnet-lite0",
                lite0,
                folder,
                batch_size=64,
                batches=args.lite0_batches,
                workers=args.workers,
                threads=args.threads,
                rounds=args.rounds,
            )
        )
        del lite0
        if not args.skip_uni:
            uni = random_uni(folder, device)
            batch = args.uni_batch or (256 if device.type == "cuda" else 8)
            results.append(
                compare(
                    "uni (random weights)",
                    uni,
                    folder,
                    batch_size=batch,
                    batches=args.uni_batches,
                    workers=args.workers,
                    threads=args.threads,
                    rounds=args.rounds,
                )
            )
            del uni
        if not args.skip_memory:
            results.append(memory_comparison(folder, args.workers))
    print("\nsummary")
    for result in results:
        if result["measure"] == "throughput":
            print(
                f"  {result['encoder']:<22} {result['device']:<5} {result['dtype']:<8} batch {result['batch_size']:>3}: "
                f"bare {result['bare_patches_per_s']:>8} patches/s, pipeline {result['pipeline_patches_per_s']:>8} "
                f"patches/s, ratio {result['ratio']} (target >= 0.9)"
            )
        else:
            sizes = ", ".join(
                f"{r['n_patches']} patches: {r['peak_rss_mb']} MB (+{r['growth_mb']} MB while embedding, "
                f"{r['seconds']} s)"
                for r in result["runs"]
            )
            print(f"  peak RSS (main process) {sizes}; 50k/5k = {result['main_ratio_50k_over_5k']} (target 0.9-1.1)")


if __name__ == "__main__":
    main()
