"""The GPU check, in about 5 minutes on one CUDA GPU, offline: UNI, the embedding job, the GMM and a training epoch.

1. UNI (ViT-L/16, 224 px) fp16 bare forward, patches/s: ``Encoder.embed`` on a uint8 batch already on the GPU.
   Weights: ``--checkpoint`` (the real pytorch_model.bin), else random values for the real architecture (timm),
   saved to a file and loaded through the registry's real path (speed does not depend on the values).
2. The full embedding job on a generated 20,000-patch pyramidal slide (Aperio-style JPEG tiles, 0.5 µm/px): a fresh
   process running ``embed_slides_with_config`` exactly as the rule does (imports, weights load and check, decode
   workers, zarr store), with decode workers sized to keep up with the bare forward (measured decode rate per
   worker; ``--workers`` overrides). Prints patches/s end to end and the ratio to the bare forward (target >= 0.9).
3. The batched diagonal GMM (``mosare.features.gmm.DiagonalGMM``, 16 components) on 20,000 x 1024 features, CUDA vs CPU.
4. One training epoch of MoSARe (UNI-sized features) on CUDA with bf16 autocast, and the same in fp32.

    .venv/bin/python benchmarks/bench_uni_gpu.py [--checkpoint pytorch_model.bin] [--batch 256] [--workers N]
    .venv/bin/python benchmarks/bench_uni_gpu.py --smoke     # tiny sizes, runs on a CPU: checks the script works

Without CUDA (and without ``--smoke``) it says so and exits 0. One JSON line per measurement, then a summary.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
import torch

from mosare.core.stores import write_store
from mosare.features.embedding import PatchDataset
from mosare.features.encoder_plugins.uni import uni_architecture
from mosare.features.encoder_specs import encoder_spec
from mosare.features.encoders import Encoder, create_encoder
from mosare.features.gmm import DiagonalGMM
from mosare.features.patch_preprocessing import spec_resize_crop
from mosare.features.weights_fingerprint import fingerprint_encoder_weights
from mosare.model.factory import ModelDims, build_model
from mosare.slides.patch_store import PatchStore

PATCH_PX = 256
JOB = """
import json, sys
from mosare.features.embedding import SlideJob, embed_slides_with_config
args = json.loads(sys.argv[1])
embed_slides_with_config([SlideJob(args["patches"], args["output"])], args["encoder"], threads=args["threads"],
                         weights_fingerprint=args["fingerprint"])
"""


@dataclass(frozen=True)
class Sizes:
    batch: int
    batches: int
    slide_patches: int
    gmm_rows: int
    gmm_dim: int
    patients: int
    patches_per_patient: int
    genes: int
    train_batch: int


FULL = Sizes(
    batch=256,
    batches=40,
    slide_patches=20_000,
    gmm_rows=20_000,
    gmm_dim=1024,
    patients=256,
    patches_per_patient=2048,
    genes=2000,
    train_batch=32,
)
SMOKE = Sizes(
    batch=2,
    batches=2,
    slide_patches=12,
    gmm_rows=400,
    gmm_dim=32,
    patients=8,
    patches_per_patient=16,
    genes=50,
    train_batch=4,
)


def report(record: dict) -> dict:
    print(json.dumps(record), flush=True)
    return record


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_uni_checkpoint(folder: Path) -> Path:
    """UNI's exact keys and shapes with random values: overlapping views of one random buffer, so the file is small
    (torch.save keeps the sharing) and written in seconds, while no two tensors hold the same values."""
    shapes = [(key, value.shape) for key, value in uni_architecture().state_dict().items()]
    largest = max(shape.numel() for _, shape in shapes)
    buffer = torch.randn(largest + len(shapes), generator=torch.Generator().manual_seed(0)) * 0.02
    state = {key: buffer[index : index + shape.numel()].view(shape) for index, (key, shape) in enumerate(shapes)}
    path = folder / "uni-random.bin"
    torch.save(state, path)
    return path


def bare_forward(encoder: Encoder, sizes: Sizes) -> float:
    images = torch.randint(0, 256, (sizes.batch, 3, 224, 224), dtype=torch.uint8).to(encoder.device)
    encoder.embed(images)
    synchronize(encoder.device)
    start = time.perf_counter()
    for _ in range(sizes.batches):
        encoder.embed(images).cpu()
    synchronize(encoder.device)
    return sizes.batch * sizes.batches / (time.perf_counter() - start)


def write_pyramidal_slide(path: Path, n_patches: int, mpp: float = 0.5) -> tuple[Path, np.ndarray]:
    """An Aperio-style tiled JPEG pyramid (downsamples 1, 4, 16) of at least ``n_patches`` 256 px tiles, written
    tile by tile from a pool of 64 distinct textured tiles (memory stays small); returns it and the patch grid."""
    side = math.ceil(math.sqrt(n_patches))
    size = side * PATCH_PX
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:PATCH_PX, 0:PATCH_PX]
    pool = []
    for _ in range(64):
        waves = sum(
            np.sin(xx * rng.uniform(0.02, 0.3) + yy * rng.uniform(0.02, 0.3) + rng.uniform(0, 6)) for _ in range(4)
        )
        base = rng.uniform([150, 60, 120], [240, 170, 220])
        tile = base[None, None, :] + 12 * waves[..., None] + rng.normal(0, 8, (PATCH_PX, PATCH_PX, 3))
        pool.append(np.clip(tile, 0, 255).astype(np.uint8))
    description = (
        f"Aperio Image Library v12.0.16\r\n{size}x{size} ({PATCH_PX}x{PATCH_PX}) JPEG/RGB Q=90|AppMag = 20|MPP = {mpp}"
    )
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for index, downsample in enumerate((1, 4, 16)):
            level = max(PATCH_PX, size // downsample)
            tiles_per_side = math.ceil(level / PATCH_PX)
            small = [tile[::downsample, ::downsample] for tile in pool]

            def tiles(small=small, tiles_per_side=tiles_per_side, downsample=downsample):
                # A level's tile at (row, col) shows downsample x downsample level-0 tiles, each shrunk.
                for row in range(tiles_per_side):
                    for col in range(tiles_per_side):
                        yield np.concatenate(
                            [
                                np.concatenate(
                                    [
                                        small[((row * downsample + r) * 7 + (col * downsample + c) * 13) % 64]
                                        for c in range(downsample)
                                    ],
                                    axis=1,
                                )
                                for r in range(downsample)
                            ],
                            axis=0,
                        )

            tif.write(
                tiles(),
                shape=(tiles_per_side * PATCH_PX, tiles_per_side * PATCH_PX, 3),
                dtype=np.uint8,
                tile=(PATCH_PX, PATCH_PX),
                compression="jpeg",
                photometric="rgb",
                description=description if index == 0 else None,
                subfiletype=0 if index == 0 else 1,
                metadata=None,
            )
    grid = np.array([(x, y) for y in range(side) for x in range(side)], dtype=np.int64)[:n_patches] * PATCH_PX
    return path, grid


def decode_rate_per_worker(store: Path, samples: int) -> float:
    """Patches/s one process reads and resizes for UNI (what one decode worker sustains)."""
    dataset = PatchDataset([PatchStore.read(store)], spec_resize_crop(encoder_spec("uni")), 224)
    count = min(samples, len(dataset))
    dataset[(0, 0)]  # open the slide, import the resize
    start = time.perf_counter()
    for row in range(count):
        dataset[(0, row)]
    dataset.close()
    return count / (time.perf_counter() - start)


def embedding_job(folder: Path, checkpoint: Path, sizes: Sizes, bare: float, workers: int | None) -> dict:
    slide, grid = write_pyramidal_slide(folder / "uni-bench.svs", sizes.slide_patches)
    store = folder / "patches.zarr"
    write_store(
        store,
        {"coords": grid},
        {
            "slide_id": "uni-bench",
            "slide_path": str(slide),
            "mpp_level0": 0.5,
            "target_mpp": 0.5,
            "patch_px": PATCH_PX,
            "footprint_px": PATCH_PX,
            "read_level": 0,
            "read_px": PATCH_PX,
            "n_patches": len(grid),
        },
    )
    per_worker = decode_rate_per_worker(store, samples=200)
    cores = len(os.sched_getaffinity(0))
    needed = math.ceil(1.2 * bare / per_worker)
    workers = workers if workers is not None else max(1, min(needed, cores - 1))
    encoder_config = {"name": "uni", "checkpoint": str(checkpoint), "batch_size": sizes.batch, "num_workers": workers}
    fingerprint = folder / "uni.json"
    fingerprint_encoder_weights(encoder_config, fingerprint)
    argument = json.dumps(
        {
            "patches": str(store),
            "output": str(folder / "features.zarr"),
            "encoder": encoder_config,
            "threads": 4,
            "fingerprint": str(fingerprint),
        }
    )
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", JOB, argument], check=True)
    seconds = time.perf_counter() - start
    job = len(grid) / seconds
    return report(
        {
            "measure": "embedding job (fresh process, generated pyramidal slide)",
            "patches": len(grid),
            "decode_patches_per_s_per_worker": round(per_worker, 1),
            "workers_to_keep_up": needed,
            "workers": workers,
            "cores": cores,
            "seconds": round(seconds, 1),
            "job_patches_per_s": round(job, 1),
            "bare_patches_per_s": round(bare, 1),
            "ratio": round(job / bare, 3),
        }
    )


def clustered_features(rows: int, dim: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(16, dim)).astype(np.float32)
    return (centres[rng.integers(0, 16, rows)] + rng.normal(size=(rows, dim)).astype(np.float32)).astype(np.float32)


def gmm_speed(sizes: Sizes, device: torch.device) -> dict:
    features = clustered_features(sizes.gmm_rows, sizes.gmm_dim)
    seconds = {}
    for where in dict.fromkeys(["cpu", device.type]):
        DiagonalGMM(n_components=16, max_iter=5, device=where).fit(features[: 64 * 16])  # warm-up
        synchronize(torch.device(where))
        start = time.perf_counter()
        gmm = DiagonalGMM(n_components=16, max_iter=100, tol=1e-3, device=where).fit(features)
        synchronize(torch.device(where))
        seconds[where] = time.perf_counter() - start
    return report(
        {
            "measure": "batched GMM",
            "rows": sizes.gmm_rows,
            "dim": sizes.gmm_dim,
            "components": 16,
            "n_iter": int(gmm.n_iter_),
            "seconds": {k: round(v, 3) for k, v in seconds.items()},
            "cpu_over_device": round(seconds["cpu"] / seconds[device.type], 2),
        }
    )


def training_epoch(sizes: Sizes, device: torch.device) -> dict:
    generator = torch.Generator(device="cpu").manual_seed(0)
    dims = ModelDims(1024, sizes.genes, 384, local_tokens=16, hidden=256)
    n = sizes.patients
    data = {
        "wsi_patches": torch.randn(n, sizes.patches_per_patient, 1024, generator=generator).to(torch.float16),
        "wsi_local": torch.randn(n, 16, 1024, generator=generator),
        "rna": torch.randn(n, sizes.genes, generator=generator),
        "text_global": torch.randn(n, 384, generator=generator),
        "text_local": torch.randn(n, 16, 384, generator=generator),
        "label": torch.randint(0, 2, (n,), generator=generator),
    }
    data = {key: value.to(device) for key, value in data.items()}
    seconds = {}
    for dtype in ("bfloat16", "float32"):
        torch.manual_seed(0)
        model = build_model("mosare", dims, 2, {"prototypes_per_class": 4, "contrastive_warmup_epochs": 0}).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
        for _epoch in range(2):  # the first epoch warms up (kernels, allocator, MCL queue); the second is timed
            synchronize(device)
            start = time.perf_counter()
            for first in range(0, n, sizes.train_batch):
                rows = slice(first, first + sizes.train_batch)
                batch = {key: value[rows] for key, value in data.items()}
                batch["wsi_patches"] = batch["wsi_patches"].float()
                batch["wsi_patch_mask"] = torch.ones(batch["wsi_patches"].shape[:2], dtype=torch.bool, device=device)
                batch["present"] = torch.ones(len(batch["label"]), 3, dtype=torch.bool, device=device)
                optimizer.zero_grad(set_to_none=True)
                with autocast:
                    total, _ = model.compute_loss(batch, model(batch), epoch=100)
                total.backward()
                optimizer.step()
            synchronize(device)
            seconds[dtype] = time.perf_counter() - start
    return report(
        {
            "measure": "training epoch (mosare, UNI-sized features)",
            "device": str(device),
            "patients": n,
            "patches_per_patient": sizes.patches_per_patient,
            "batch": sizes.train_batch,
            "seconds": {k: round(v, 3) for k, v in seconds.items()},
            "fp32_over_bf16": round(seconds["float32"] / seconds["bfloat16"], 2),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="UNI's pytorch_model.bin (default: random weights)")
    parser.add_argument("--batch", type=int, help="UNI batch size (default 256)")
    parser.add_argument("--workers", type=int, help="decode workers of the job (default: sized to keep up)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on any device: checks that the script runs")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        print("bench_uni_gpu: no CUDA device visible; nothing measured (use --smoke to check the script on a CPU).")
        return
    sizes = SMOKE if args.smoke else FULL
    if args.batch:
        sizes = Sizes(**{**vars(sizes), "batch": args.batch})
    device = torch.device("cuda" if cuda else "cpu")
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    print(
        f"bench_uni_gpu: {name}, torch {torch.__version__}, {len(os.sched_getaffinity(0))} cores"
        f"{' (smoke sizes)' if args.smoke else ''}",
        flush=True,
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-uni-gpu-") as tmp:
        folder = Path(tmp)
        checkpoint = args.checkpoint or random_uni_checkpoint(folder)
        encoder = create_encoder("uni", checkpoint=checkpoint, device=device)
        bare = bare_forward(encoder, sizes)
        results.append(
            report(
                {
                    "measure": "UNI bare forward",
                    "dtype": encoder.dtype_name,
                    "batch": sizes.batch,
                    "patches_per_s": round(bare, 1),
                }
            )
        )
        del encoder
        if cuda:
            torch.cuda.empty_cache()
        results.append(embedding_job(folder, checkpoint, sizes, bare, args.workers))
    results.append(gmm_speed(sizes, device))
    results.append(training_epoch(sizes, device))
    print("\nsummary")
    for result in results:
        print("  " + ", ".join(f"{key} {value}" for key, value in result.items()))


if __name__ == "__main__":
    main()
