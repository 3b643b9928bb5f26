"""UNI patches/s on a CUDA GPU: bare model and the whole embedding pipeline, fp16 and bf16, batch 256.

UNI (ViT-L/16, 224 px) is built through the registry's real loading path with random weights (speed does
not depend on them). For each autocast dtype it measures
  - bare: ``Encoder.embed`` on a pre-made uint8 batch already on the GPU (normalise + forward + copy back);
  - pipeline: ``mosare.embedding.embed_slide`` on a patch store of the generated bench slide (DataLoader
    workers reading through ``Slide.read_patch``, pinned memory, non-blocking copies, zarr streaming);
and prints patches/s and pipeline / bare (target >= 0.9). Without CUDA it says so and exits 0.

    .venv/bin/python benchmarks/bench_uni_gpu.py [--batch 256] [--batches 40] [--workers 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

from bench_embedding import bare_throughput, bench_slide, patch_store, pipeline_throughput, random_uni

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--batches", type=int, default=40, help="batches per measurement")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["float16", "bfloat16"])
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_uni_gpu: no CUDA device visible (torch.cuda.is_available() is False); nothing measured. "
              "Run it on a machine with an NVIDIA GPU; the CPU path is measured by bench_embedding.py.")
        sys.exit(0)
    device = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}, {args.workers} workers", flush=True)
    bench_slide()
    with tempfile.TemporaryDirectory(prefix="bench-uni-gpu-") as tmp:
        folder = Path(tmp)
        encoder = random_uni(folder, device)
        store = patch_store(folder, args.batch * args.batches)
        warm_store = patch_store(folder, args.batch)
        for name in args.dtypes:
            encoder.autocast_dtype = DTYPES[name]
            pipeline_throughput(encoder, warm_store, folder / "warm.zarr", batch_size=args.batch, workers=args.workers)
            bare = bare_throughput(encoder, batch_size=args.batch, batches=args.batches)
            pipeline = pipeline_throughput(encoder, store, folder / f"uni-{name}.zarr", batch_size=args.batch,
                                           workers=args.workers)
            print(json.dumps({
                "encoder": "uni (random weights)", "device": torch.cuda.get_device_name(device), "dtype": name,
                "batch_size": args.batch, "patches": args.batch * args.batches, "workers": args.workers,
                "bare_patches_per_s": round(bare, 1), "pipeline_patches_per_s": round(pipeline, 1),
                "ratio": round(pipeline / bare, 3),
            }), flush=True)


if __name__ == "__main__":
    main()
