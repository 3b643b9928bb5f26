"""Per-embedding-job cost of the weights' provenance: hashing the file (before) vs. checking its fingerprint (now).

Before, every embedding job (one per slide) hashed the encoder's weights for its store's ``weights_sha256``; now rule
fingerprint_encoder hashes them once and each job reads the fingerprint JSON and stats the file. A stand-in weights
file of ``--mb`` random bytes is written to a temporary directory; it stays in the page cache, so the hash times are
the optimistic (CPU-bound) case - a cold read from network storage costs more. Projections use the measured rate.

    .venv/bin/python benchmarks/bench_weights_fingerprint.py [--mb 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mosare.features.weights_fingerprint import (
    check_weights_unchanged,
    fingerprint_weights,
    read_fingerprint,
    sha256_file,
    write_fingerprint,
)

CHECKPOINT_GB = {"uni": 1.21, "uni2-h": 2.7}
SLIDES = 1000


def median_seconds(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=256, help="size of the stand-in weights file")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "pytorch_model.bin"
        with weights.open("wb") as stream:
            for _ in range(args.mb):
                stream.write(os.urandom(1 << 20))
        fingerprint_file = Path(folder) / "uni.json"
        write_fingerprint(fingerprint_weights("uni", weights), fingerprint_file)

        def check_fingerprint() -> None:
            check_weights_unchanged(read_fingerprint(fingerprint_file), weights, fingerprint_file)

        hash_s = median_seconds(lambda: sha256_file(weights), args.repeats)
        check_s = median_seconds(check_fingerprint, args.repeats * 20)

    gb = args.mb / 1024
    print(f"stand-in weights: {args.mb} MB (page-cached), median of {args.repeats} hashes")
    print(f"before, per job: sha256 of the file    {hash_s * 1e3:9.1f} ms  ({gb / hash_s:.2f} GB/s)")
    print(f"now, per job:    read JSON + stat check {check_s * 1e3:9.3f} ms")
    print(f"ratio before/now: {hash_s / check_s:,.0f}x")
    for encoder, size_gb in CHECKPOINT_GB.items():
        per_job = size_gb / (gb / hash_s)
        print(
            f"{encoder} ({size_gb} GB): {per_job:.1f} s per job saved; {SLIDES} slides: "
            f"{per_job * SLIDES / 60:.0f} CPU min before, {per_job:.1f} s once now"
        )


if __name__ == "__main__":
    main()
