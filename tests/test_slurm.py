"""The SLURM profile on a real single-node SLURM (tests/slurm/local_cluster.sh start; .ci/run starts it)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from workflow_runs import (
    COHORT,
    REPO,
    deepest_targets,
    finished_tiny_run,  # noqa: F401 (session fixture: the local run to compare with)
    make_workdir,
    snakemake,
    tiny_demo_config,
)

from mosare.core.stores import open_store

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

CLUSTER_SCRIPT = REPO / "tests" / "slurm" / "local_cluster.sh"
SLURM_PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
# Per-slide work only: the demo job plus one grouped job keep the (slowly polled) SLURM run to two rounds.
PER_SLIDE_RULES = ("fit_slide_gmms", "tile_slide")


def cluster_running() -> bool:
    return subprocess.run(["bash", str(CLUSTER_SCRIPT), "status"], capture_output=True).returncode == 0


def node_capacity() -> tuple[int, int]:
    """(CPUs, RealMemory in MB) of the test node."""
    line = subprocess.run(["scontrol", "show", "node", "localhost"], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"CPUTot=(\d+)", line).group(1)), int(re.search(r"RealMemory=(\d+)", line).group(1))


def profile_for_this_node(target_dir: Path) -> Path:
    """profiles/slurm with only what a site adapts changed: no GPUs, and sizes that fit the one test node."""
    cpus, memory_mb = node_capacity()
    profile = yaml.safe_load(SLURM_PROFILE.read_text())
    for resources in profile["set-resources"].values():
        for site_specific in ("gres", "slurm_partition"):
            resources.pop(site_specific, None)
        resources["gpu"] = 0  # the test node has none; the training rules ask for one each
        if "mem_mb" in resources:
            resources["mem_mb"] = min(resources["mem_mb"], memory_mb // 4)
    profile["cores"] = cpus
    profile["resources"] = [f"mem_mb={memory_mb // 2}"]
    profile["slurm-init-seconds-before-status-checks"] = 5
    target_dir.mkdir(parents=True)
    (target_dir / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return target_dir


@pytest.fixture(scope="module")
def slurm_and_local_runs(tmp_path_factory, finished_tiny_run) -> tuple[Path, Path, list[str], str]:
    """The tiny demo's per-slide outputs built through SLURM, and the same cohort's local run."""
    if not cluster_running():
        message = "local SLURM is not running: start it with `bash tests/slurm/local_cluster.sh start` (as root)"
        if os.environ.get("MOSARE_REQUIRE_SLURM") == "1":  # set by .ci/run: CI must exercise SLURM, never skip it
            pytest.fail(message)
        pytest.skip(message)
    local = finished_tiny_run
    base = tmp_path_factory.mktemp("slurm")
    profile = profile_for_this_node(base / "profile")
    slurm_dir = make_workdir(base / "on_slurm", tiny_demo_config())
    # The local run's workflow snapshot, so both runs use the same code.
    targets = deepest_targets(slurm_dir, rules=PER_SLIDE_RULES, repo=local.repo)

    slurm_run = snakemake(slurm_dir, "--profile", str(profile), "--workflow-profile", "none", *targets, repo=local.repo)
    return slurm_dir, local.workdir, targets, slurm_run.stdout + slurm_run.stderr


def submitted_job_ids(log: str) -> list[str]:
    return re.findall(r"has been submitted with SLURM jobid (\d+)", log)


def test_every_job_went_through_sbatch_and_completed(slurm_and_local_runs):
    *_, log = slurm_and_local_runs
    job_ids = submitted_job_ids(log)

    assert job_ids, f"no SLURM submissions in snakemake's output:\n{log}"
    for job_id in job_ids:
        state = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
        assert "JobState=COMPLETED" in state, state


def test_per_slide_rules_share_one_grouped_slurm_job(slurm_and_local_runs):
    slurm_dir, _, targets, log = slurm_and_local_runs
    per_slide_jobs = len(
        re.findall(r"^\s*rule (?:demo_slide|tile_slide|embed_slides_\w+|fit_slide_gmms_\w+):", log, re.M)
    )

    group_submissions = re.findall(r"SLURM jobid \d+ \(log: [^)]*group_per_slide", log)
    assert per_slide_jobs >= len(targets)
    assert len(group_submissions) == 1


def test_slurm_outputs_equal_a_local_runs(slurm_and_local_runs):
    slurm_dir, local_dir, targets, _ = slurm_and_local_runs
    slides = sorted((slurm_dir / "results" / "demo").rglob("*.svs"))
    stores = sorted((slurm_dir / "results").rglob("*.zarr"))
    assert slides and {str(slurm_dir / t) for t in targets} <= {str(s) for s in stores}

    for slide in slides:
        assert slide.read_bytes() == (local_dir / slide.relative_to(slurm_dir)).read_bytes(), slide.name
    for store in stores:
        on_slurm, local = open_store(store), open_store(local_dir / store.relative_to(slurm_dir))
        assert sorted(on_slurm.array_keys()) == sorted(local.array_keys()), store
        for name in on_slurm.array_keys():
            a, b = on_slurm[name][...], local[name][...]
            if a.dtype.kind == "f":
                np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4, err_msg=f"{store}:{name}")
            else:
                assert np.array_equal(a, b), f"{store}:{name}"


@pytest.fixture(scope="module")
def slurm_training_log(slurm_and_local_runs, finished_tiny_run) -> str:
    """The same cohort trained and evaluated through SLURM, after its per-slide work (the log of that run)."""
    slurm_dir, *_ = slurm_and_local_runs
    profile = slurm_dir.parent / "profile"
    target = f"results/{COHORT}/metrics.tsv"
    run = snakemake(
        slurm_dir, "--profile", str(profile), "--workflow-profile", "none", target, repo=finished_tiny_run.repo
    )
    return run.stdout + run.stderr


def test_training_runs_as_one_slurm_job_per_fold_and_the_evaluation_waits_for_all(
    slurm_and_local_runs, slurm_training_log
):
    slurm_dir, local_dir, *_ = slurm_and_local_runs
    log = slurm_training_log
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: [^)]*/rule_(\w+)/", log)
    rules = [rule for _, rule in submitted]
    folds = tiny_demo_config()["train"]["folds"]
    assert rules.count("train_fold") == folds and rules.count("train_final_models") == 1, rules
    # The evaluation is submitted only once every fold job has finished.
    finished_folds = [match.start() for match in re.finditer(r"Finished jobid: \d+ \(Rule: train_fold\)", log)]
    evaluation = re.search(r"has been submitted with SLURM jobid \d+ \(log: [^)]*/rule_train_and_evaluate/", log)
    assert len(finished_folds) == folds and evaluation and evaluation.start() > max(finished_folds)
    metrics = Path("results") / COHORT / "metrics.tsv"
    assert (slurm_dir / metrics).read_bytes() == (local_dir / metrics).read_bytes()
