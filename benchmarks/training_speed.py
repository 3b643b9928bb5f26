"""Training-stage speed on a demo-sized cohort held in memory (no stores, no upstream stages).

Prints, per model, the CPU seconds of one training (train.epochs epochs with validation) and the wall time of the whole
grid (every model x scenario) of one fold with one worker process and with ``--workers``; the ratio is the speed-up.
The full stage runs folds x that grid.

    .venv/bin/python benchmarks/training_speed.py --workers 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mosare.cohort.data import CohortData
from mosare.config import cohort_train_config, load_config
from mosare.evaluation.scenarios import scenarios, training_groups
from mosare.evaluation.splits import make_folds
from mosare.training.cross_validation import RunContext, model_dims, run_unit

REPO = Path(__file__).resolve().parents[1]


def demo_sized_cohort(
    patients: int, patches: int, wsi_dim: int, genes: int, text_dim: int, components: int
) -> CohortData:
    """Random inputs of the demo's sizes with a weak class signal in every modality; a few patients lack RNA/text."""
    rng = np.random.default_rng(0)
    labels = np.arange(patients) % 2
    sign = np.where(labels == 1, 1.0, -1.0)[:, None]
    counts = rng.integers(patches // 2, patches * 3 // 2, size=patients)
    patch_rows = np.concatenate([rng.normal(size=(n, wsi_dim)) + 0.3 * s for n, s in zip(counts, sign)])
    available = np.ones((patients, 3), dtype=bool)
    available[rng.random(patients) < 0.15, 1] = False
    available[rng.random(patients) < 0.15, 2] = False
    return CohortData(
        patient_ids=np.array([f"P{i:03d}" for i in range(patients)]),
        labels=labels,
        classes=["LUAD", "LUSC"],
        available=available,
        patches=patch_rows.astype(np.float16),
        patch_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        wsi_local=(rng.normal(size=(patients, components, wsi_dim)) + 0.3 * sign[:, :, None]).astype(np.float32),
        rna=(rng.normal(size=(patients, genes)) + 0.3 * sign).astype(np.float32),
        text_global=(rng.normal(size=(patients, text_dim)) + 0.3 * sign).astype(np.float32),
        text_local=(rng.normal(size=(patients, components, text_dim)) + 0.3 * sign[:, :, None]).astype(np.float32),
    )


def run_grid(data: CohortData, train_config: dict, workers: int, out: Path) -> float:
    """Wall seconds of every model x scenario on fold 0."""
    from mosare.model.factory import build_model
    from mosare.training.cross_validation import cohort_workers, submit

    folds = make_folds(data.patient_ids, data.labels, train_config["folds"], train_config["seed"])
    context = RunContext(folds[None], train_config, "bench", out, "cpu", build_model, model_dims(data, train_config))
    units = training_groups(scenarios(train_config["missing_rates"]))
    start = time.perf_counter()
    if workers == 1:
        torch.set_num_threads(1)
        for group in units:
            run_unit(data, context, 0, 0, group, progress=False)
    else:
        with cohort_workers(data, workers, torch.device("cpu")) as pool:
            for future in [submit(pool, data, run_unit, context, 0, 0, group, False) for group in units]:
                future.result()
    return time.perf_counter() - start


def per_model_cpu_seconds(data: CohortData, train_config: dict, out: Path) -> dict[str, float]:
    from mosare.model.factory import build_model

    torch.set_num_threads(1)
    folds = make_folds(data.patient_ids, data.labels, train_config["folds"], train_config["seed"])
    seconds = {}
    for name in train_config["models"]:
        context = RunContext(
            folds[None],
            {**train_config, "models": [name]},
            "bench",
            out,
            "cpu",
            build_model,
            model_dims(data, train_config),
        )
        start = time.process_time()
        run_unit(data, context, 0, 0, scenarios([]), progress=False)
        seconds[name] = time.process_time() - start
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cohort", default="nsclc")
    parser.add_argument("--patches", type=int, default=150, help="mean patches per patient")
    args = parser.parse_args()
    config = load_config(REPO / "config.yaml")
    train_config = cohort_train_config(config, args.cohort)
    data = demo_sized_cohort(40, args.patches, 1280, config["rna"]["top_genes"], 384, config["gmm"]["components"])
    print(
        f"demo-sized cohort: 40 patients, ~{args.patches} patches of 1280-d, {data.rna.shape[1]} genes, 384-d text, "
        f"C={data.wsi_local.shape[1]}; epochs={train_config['epochs']}, patches_per_step={train_config['patches_per_step']}, "
        f"hidden={train_config.get('hidden', 256)}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        per_model_cpu_seconds(data, {**train_config, "models": ["report_mlp"]}, Path(tmp))  # warm-up (lazy imports)
        for name, seconds in per_model_cpu_seconds(data, train_config, Path(tmp)).items():
            print(f"  {name:26s} {seconds:6.2f} CPU s per training (complete scenario, fold 0)")
        one = run_grid(data, train_config, 1, Path(tmp) / "w1")
        many = run_grid(data, train_config, args.workers, Path(tmp) / f"w{args.workers}")
    units = len(train_config["models"]) * len(training_groups(scenarios(train_config["missing_rates"])))
    print(
        f"one fold, {units} trainings: 1 worker {one:.1f} s, {args.workers} workers {many:.1f} s (speed-up x{one / many:.2f})"
    )
    print(
        f"estimated stage: {train_config['folds']} folds x {units} trainings = {many * train_config['folds']:.0f} s wall with {args.workers} workers"
    )


if __name__ == "__main__":
    main()
