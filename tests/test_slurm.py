"""The SLURM profile on a real single-node SLURM (tests/slurm/local_cluster.sh start; .ci/run starts it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from mosare.stores import open_store
from workflow_runs import REPO, deepest_targets, make_workdir, snakemake, tiny_demo_config

pytestmark = pytest.mark.slurm

CLUSTER_SCRIPT = REPO / "tests" / "slurm" / "local_cluster.sh"
SLURM_PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
# Per-slide work only: the demo job plus one grouped job keep the (slowly polled) SLURM run to two rounds.
PER_SLIDE_RULES = ("fit_slide_gmm", "embed_slide", "tile_slide")


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
        for site_specific in ("gpu", "gres", "slurm_partition"):
            resources.pop(site_specific, None)
        resources["mem_mb"] = min(resources["mem_mb"], memory_mb // 4)
        resources["cpus_per_task"] = min(resources.get("cpus_per_task", 1), cpus)
    profile["cores"] = cpus
    profile["resources"] = [f"mem_mb={memory_mb // 2}"]
    profile["slurm-init-seconds-before-status-checks"] = 5
    target_dir.mkdir(parents=True)
    (target_dir / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return target_dir


@pytest.fixture(scope="module")
def slurm_and_local_runs(tmp_path_factory) -> tuple[Path, Path, list[str], str]:
    if not cluster_running():
        pytest.skip("local SLURM is not running: start it with `bash tests/slurm/local_cluster.sh start` (as root)")
    base = tmp_path_factory.mktemp("slurm")
    profile = profile_for_this_node(base / "profile")
    slurm_dir = make_workdir(base / "on_slurm", tiny_demo_config())
    local_dir = make_workdir(base / "local", tiny_demo_config())
    targets = deepest_targets(slurm_dir, rules=PER_SLIDE_RULES)

    slurm_run = snakemake(slurm_dir, "--profile", str(profile), "--workflow-profile", "none", *targets)
    snakemake(local_dir, *deepest_targets(local_dir, rules=PER_SLIDE_RULES))
    return slurm_dir, local_dir, targets, slurm_run.stdout + slurm_run.stderr


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
    per_slide_jobs = len(re.findall(r"^\s*rule (?:demo_slide|tile_slide|embed_slide|fit_slide_gmm):", log, re.M))

    group_submissions = re.findall(r"SLURM jobid \d+ \(log: [^)]*group_per_slide", log)
    assert per_slide_jobs >= len(targets)
    assert len(group_submissions) == 1


def test_slurm_outputs_equal_a_local_runs(slurm_and_local_runs):
    slurm_dir, local_dir, targets, _ = slurm_and_local_runs
    for target in targets:
        on_slurm, local = open_store(slurm_dir / target), open_store(local_dir / target)
        assert sorted(on_slurm.array_keys()) == sorted(local.array_keys()), target
        for name in on_slurm.array_keys():
            np.testing.assert_allclose(on_slurm[name][...], local[name][...], rtol=1e-3, atol=1e-4, err_msg=f"{target}:{name}")
    patches = sorted((slurm_dir / "results").rglob("patches/*.zarr"))
    assert patches
    for store in patches:
        local_store = local_dir / store.relative_to(slurm_dir)
        assert np.array_equal(open_store(store)["coords"][...], open_store(local_store)["coords"][...]), store.name
