"""Forward + backward of one training step (all loss terms on) for every model, against the ABMIL baseline.

Demo-sized batch by default: 32 patients x 256 patches x 1280-d (efficientnet-lite0), 2000 genes, 384-d report
(all-MiniLM-L6), 16 local tokens, hidden 256, all modalities present. Prints the median step time per model, its
ratio to ABMIL's in the same run, and the top operators of one MoSARe step from torch.profiler.

    .venv/bin/python benchmarks/bench_model.py [--batch 32] [--patches 256] [--genes 2000] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from mosare.model.factory import ModelDims, build_model
from mosare.model.specs import model_specs

MODEL_NAMES = tuple(model_specs())


def demo_batch(args: argparse.Namespace, generator: torch.Generator) -> dict[str, torch.Tensor]:
    b, c = args.batch, args.tokens
    return {
        "wsi_patches": torch.randn(b, args.patches, args.wsi_dim, generator=generator),
        "wsi_patch_mask": torch.ones(b, args.patches, dtype=torch.bool),
        "wsi_local": torch.randn(b, c, args.wsi_dim, generator=generator),
        "rna": torch.randn(b, args.genes, generator=generator),
        "text_global": torch.randn(b, args.text_dim, generator=generator),
        "text_local": torch.randn(b, c, args.text_dim, generator=generator),
        "present": torch.ones(b, 3, dtype=torch.bool),
        "label": torch.randint(0, 2, (b,), generator=generator),
    }


def step(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> None:
    model.zero_grad(set_to_none=True)
    total, _ = model.compute_loss(batch, model(batch), epoch=100)
    total.backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--patches", type=int, default=256)
    parser.add_argument("--wsi-dim", type=int, default=1280)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--text-dim", type=int, default=384)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dims = ModelDims(args.wsi_dim, args.genes, args.text_dim, local_tokens=args.tokens, hidden=args.hidden)
    batch = demo_batch(args, torch.Generator().manual_seed(0))
    print(
        f"batch={args.batch} patches={args.patches}x{args.wsi_dim} genes={args.genes} text={args.text_dim} "
        f"tokens={args.tokens} hidden={args.hidden}; torch threads={torch.get_num_threads()}"
    )

    seconds: dict[str, float] = {}
    for name in ("abmil", *[n for n in MODEL_NAMES if n != "abmil"]):
        model = build_model(name, dims, 2, {"prototypes_per_class": 4, "contrastive_warmup_epochs": 0}).train()
        step(model, batch)  # warm-up (allocations, MCL queue)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            step(model, batch)
            times.append(time.perf_counter() - start)
        seconds[name] = statistics.median(times)
        parameters = sum(p.numel() for p in model.parameters())
        print(
            f"{name:26s} {seconds[name] * 1000:8.1f} ms/step  x{seconds[name] / seconds['abmil']:5.2f} of abmil  "
            f"{parameters / 1e6:6.2f} M parameters"
        )

    model = build_model("mosare", dims, 2, {"prototypes_per_class": 4, "contrastive_warmup_epochs": 0}).train()
    step(model, batch)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        step(model, batch)
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
