"""Memory layout of the encoder's forward on the CPU: channels-first against channels-last, same process, same inputs.

``mosare.features.encoders.memory_format`` runs convolutional encoders channels-last. This prints patches/s of the bare forward
of a registered encoder (default efficientnet-lite0, the demo's) in both layouts, their ratio, and the largest
difference between the two layouts' features.

    .venv/bin/python benchmarks/bench_encoder_layout.py [--encoder efficientnet-lite0] [--batch 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from mosare.features.encoders import create_encoder


def patches_per_second(model: torch.nn.Module, images: torch.Tensor, repeats: int) -> tuple[float, torch.Tensor]:
    """Best of ``repeats`` timed forwards after one warm-up, and the features."""
    with torch.inference_mode():
        features = model(images)
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            features = model(images)
            best = min(best, time.perf_counter() - started)
    return len(images) / best, features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", default="efficientnet-lite0")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    encoder = create_encoder(args.encoder, device="cpu")
    images = torch.rand(args.batch, 3, encoder.input_px, encoder.input_px, generator=torch.Generator().manual_seed(0))
    last_speed, last = patches_per_second(
        encoder.model.to(memory_format=torch.channels_last),
        images.contiguous(memory_format=torch.channels_last),
        args.repeats,
    )
    first_speed, first = patches_per_second(
        encoder.model.to(memory_format=torch.contiguous_format), images, args.repeats
    )
    print(f"{args.encoder}, batch {args.batch}, {args.threads} thread(s), CPU")
    print(f"channels-first {first_speed:7.1f} patches/s")
    print(f"channels-last  {last_speed:7.1f} patches/s   ratio {last_speed / first_speed:.2f}x")
    print(f"largest feature difference between layouts: {(first - last).abs().max().item():.1e}")


if __name__ == "__main__":
    main()
