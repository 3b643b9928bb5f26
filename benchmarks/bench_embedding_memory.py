"""Memory of one embedding job (efficientnet-lite0 on the CPU, as in the demo), where it goes, and its wall time.

Runs ``embed_slides_with_config`` in a fresh process, exactly as the rule does, on a patch store of the bench slide
(``--patches``, default 240, the demo's largest slides), and samples the job's whole process tree every 50 ms from
/proc: the peak of the summed PSS (what the job really costs the machine: shared pages counted once) and of the
summed RSS (what Snakemake's benchmark `max_rss` adds up, shared pages counted in every process), split into the
main process and its decode workers, and the main process's PSS before the first batch. Variants:
  --workers N           decode workers (default: unset in the config, so the encoder spec's decode_workers, 1);
  --batch N             batch size (default 64, the config default);
  --no-heap-reuse       leave glibc's mmap threshold alone (mosare.features.embedding.reuse_batch_buffers off);
  --whole-batches       run each batch through the model at once (the spec's cpu_forward_rows ignored), as before.

    .venv/bin/python benchmarks/bench_embedding_memory.py [--patches 240] [--workers N] [--batch 64] [--no-heap-reuse]
        [--whole-batches]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_embedding import patch_store

JOB = """
import json, sys
args = json.loads(sys.argv[1])
from mosare.features import embedding
if not args["heap_reuse"]:
    embedding.reuse_batch_buffers = lambda: None
if args["whole_batches"]:
    embedding.forward_pieces = lambda n_rows, piece_rows: [n_rows]
from mosare.features.embedding import SlideJob, embed_slides_with_config
embed_slides_with_config([SlideJob(args["patches"], args["output"])], args["encoder"], threads=1,
                         weights_fingerprint=args["fingerprint"])
"""


def children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    except OSError:
        pass
    return found + [grandchild for child in found for grandchild in children(child)]


def memory_mb(pid: int) -> dict[str, float]:
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return {}
    values = {line.split()[0].rstrip(":"): int(line.split()[1]) / 1024 for line in lines[1:]}
    return {"rss": values.get("Rss", 0.0), "pss": values.get("Pss", 0.0), "pss_anon": values.get("Pss_Anon", 0.0)}


def run_job(args: argparse.Namespace, folder: Path) -> dict:
    from mosare.features.weights_fingerprint import fingerprint_encoder_weights

    encoder = {"name": "efficientnet-lite0", "checkpoint": None, "batch_size": args.batch, "num_workers": args.workers}
    fingerprint = folder / "fingerprint.json"
    fingerprint_encoder_weights(encoder, fingerprint)
    argument = json.dumps(
        {
            "patches": str(patch_store(folder, args.patches)),
            "output": str(folder / "out.zarr"),
            "encoder": encoder,
            "fingerprint": str(fingerprint),
            "heap_reuse": not args.no_heap_reuse,
            "whole_batches": args.whole_batches,
        }
    )
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", JOB, argument], stderr=subprocess.DEVNULL)
    peak = {"tree_pss": 0.0, "tree_rss": 0.0, "main_pss": 0.0, "workers_pss": 0.0, "main_pss_anon": 0.0}
    while process.poll() is None:
        main = memory_mb(process.pid)
        workers = [memory_mb(child) for child in children(process.pid)]
        sample = {
            "tree_pss": main.get("pss", 0) + sum(w.get("pss", 0) for w in workers),
            "tree_rss": main.get("rss", 0) + sum(w.get("rss", 0) for w in workers),
            "main_pss": main.get("pss", 0),
            "main_pss_anon": main.get("pss_anon", 0),
            "workers_pss": sum(w.get("pss", 0) for w in workers),
        }
        peak = {key: max(value, sample[key]) for key, value in peak.items()}
        time.sleep(0.05)
    if process.returncode:
        raise RuntimeError(f"embedding job failed ({process.returncode})")
    return {"seconds": round(time.perf_counter() - start, 1), **{f"peak_{k}_mb": round(v) for k, v in peak.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patches", type=int, default=240)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--no-heap-reuse", action="store_true")
    parser.add_argument("--whole-batches", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-embedding-memory-") as tmp:
        result = run_job(args, Path(tmp))
    print(
        json.dumps(
            {
                "encoder": "efficientnet-lite0",
                "device": "cpu",
                "patches": args.patches,
                "batch": args.batch,
                "workers": args.workers,
                "heap_reuse": not args.no_heap_reuse,
                "whole_batches": args.whole_batches,
                **result,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
