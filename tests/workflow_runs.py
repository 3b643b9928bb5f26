"""Running the real workflow on a tiny demo cohort from tests: working directories, snakemake calls, planned jobs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
COHORT = "tiny"

# Deepest first: the first target whose rule exists is what a "whole pipeline" test runs. Paths are relative to
# results/{cohort}/ ; {slide} stands for every slide of the cohort and {encoder} for the encoder slug.
TARGETS_BY_RULE = (
    ("train_and_evaluate", "metrics.tsv"),
    ("assemble_cohort", "cohort.tsv"),
    ("fit_slide_gmms", "gmm/{encoder}/{slide}.zarr"),
    ("tile_slide", "patches/{slide}.zarr"),
)


def tiny_demo_config() -> dict:
    """A demo cohort of 8 patients with 2048 px slides, 2 GMM components and one short training run."""
    return {
        "cohorts": {
            COHORT: {
                "classes": ["A", "B"],
                "demo": {
                    "patients": 8,
                    "seed": 7,
                    "slide_px": 2048,
                    "genes": 60,
                    "fraction_two_slides": 0.0,
                    # 8 slides over 5 sites: each site's stain shift alone would flag half of them in slide QC.
                    "site_stain_shift": 0.0,
                },
            }
        },
        # The slides are only ~0.5 mm wide: the default minimum tissue area (0.25 mm²) would drop every piece.
        "tiling": {"tissue": {"min_tissue_area_um2": 5000.0, "min_hole_area_um2": 2000.0, "detection_mpp": 4.0}},
        "encoder": {"name": "efficientnet-lite0", "batch_size": 16, "num_workers": 0},
        "gmm": {"components": 2, "max_iter": 20},
        "rna": {"top_genes": 20},
        "train": {
            "folds": 2,
            "epochs": 1,
            "batch_size": 2,
            "warmup_epochs": 0,
            "contrastive_warmup_epochs": 0,
            "missing_rates": [0.5],
            "val_fraction": 0.5,
            "patches_per_step": 8,
            "prototypes_per_class": 1,
            "models": ["mosare"],
        },
    }


def make_workdir(path: Path, config: dict) -> Path:
    """A working directory holding config.yaml (the Snakefile's configfile); results/ land inside it."""
    path.mkdir(parents=True, exist_ok=True)
    write_config(path, config)
    return path


def write_config(workdir: Path, config: dict) -> None:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def snakemake(workdir: Path, *args: str, repo: Path = REPO, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the workflow of ``repo`` (the repository, or a snapshot of it) in ``workdir``; raise when it fails."""
    # A snapshot's src/ shadows the installed package in snakemake and in every job it starts (sbatch exports it).
    env = {**os.environ, "PYTHONPATH": str(repo / "src")} if repo != REPO else None
    result = subprocess.run(
        [str(SNAKEMAKE), "--snakefile", str(repo / "Snakefile"), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def parse_job_stats(output: str) -> dict[str, int]:
    """{rule: jobs} from snakemake's "Job stats" table (empty when nothing is to be done); `all` left out."""
    match = re.search(r"Job stats:\njob\s+count\n[- ]+\n(.*?)\ntotal\s+\d+", output, re.S)
    if match is None:
        if "Nothing to be done" in output:
            return {}
        raise AssertionError(f"no job stats in snakemake's output:\n{output}")
    jobs = {}
    for line in match.group(1).splitlines():
        rule, count = line.split()
        jobs[rule] = int(count)
    jobs.pop("all", None)
    return jobs


def planned_jobs(workdir: Path, *args: str, repo: Path = REPO) -> dict[str, int]:
    """{rule: jobs} a dry run of the workflow would execute."""
    # Options taking several values (--quiet, --forcerun) would swallow targets placed after them.
    result = snakemake(workdir, *args, "--dry-run", "--quiet", "rules", repo=repo)
    return parse_job_stats(result.stdout + result.stderr)


def chunk_jobs(planned: dict[str, int], stage: str) -> dict[str, int]:
    """The planned jobs of the rules generated per chunk of slides for ``stage`` (``<stage>_<cohort>_<k>``)."""
    return {rule: jobs for rule, jobs in planned.items() if rule.startswith(f"{stage}_")}


def workflow_rules(workdir: Path, repo: Path = REPO) -> set[str]:
    result = snakemake(workdir, "--list-rules", repo=repo)
    return {line.split()[0] for line in result.stdout.splitlines() if line.strip()}


def _buildable(workdir: Path, targets: list[str], repo: Path) -> bool:
    """Whether the workflow has rules for everything the targets need (a dry run succeeds)."""
    try:
        snakemake(workdir, *targets, "--dry-run", "--quiet", "all", repo=repo)
    except AssertionError:
        return False
    return True


def _has_rule(rules: Iterable[str], rule: str) -> bool:
    """Whether ``rule`` is among ``rules``, itself or as the rules generated per chunk (``<rule>_<cohort>_<k>``)."""
    return any(name == rule or name.startswith(f"{rule}_") for name in rules)


def deepest_targets(
    workdir: Path, cohort: str = COHORT, rules: tuple[str, ...] | None = None, repo: Path = REPO
) -> list[str]:
    """The deepest outputs of the cohort that the workflow's current rules (or those of ``rules``) produce."""
    from mosare.demo.plan import plan_demo_cohort

    config = yaml.safe_load((workdir / "config.yaml").read_text())
    cohort_config = config["cohorts"][cohort]
    sheet = plan_demo_cohort(
        cohort, cohort_config["demo"], cohort_config["classes"], workdir / "results" / "demo" / cohort
    )
    encoder = config["encoder"]["name"].replace(":", "-")
    available = workflow_rules(workdir, repo)
    for rule, target in TARGETS_BY_RULE:
        if _has_rule(available, rule) and (rules is None or _has_rule(rules, rule)):
            pattern = f"results/{cohort}/{target}"
            targets = sorted({pattern.format(encoder=encoder, slide=slide) for slide in sheet["slide_id"]})
            if _buildable(workdir, targets, repo):
                return targets
    raise AssertionError(
        f"none of {[rule for rule, _ in TARGETS_BY_RULE]} can be built yet with rules {sorted(available)}"
    )


@dataclass
class FinishedRun:
    workdir: Path
    targets: list[str]
    # The snapshot of the workflow (Snakefile, rules, scripts, package) the run used; later calls on the run use it
    # too, so edits landing in the repository during a long test session do not look like reruns.
    repo: Path


def snapshot_workflow(target: Path) -> Path:
    """A copy of the workflow and its package under ``target``; returns ``target`` (pass it as ``repo``)."""
    ignore = shutil.ignore_patterns("__pycache__", ".snakemake")
    for name in ("workflow", "profiles", "envs", "src/mosare"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, target / name, ignore=ignore)  # copy2 keeps mtimes: no script looks newer
    shutil.copy2(REPO / "Snakefile", target / "Snakefile")
    return target


_FINISHED_RUNS: list[FinishedRun] = []


@pytest.fixture(scope="session")
def finished_tiny_run(tmp_path_factory) -> FinishedRun:
    """A tiny demo cohort run once, for real, to the deepest targets the workflow has.

    Test modules import this fixture, and pytest then keeps one instance per module; the cache makes every
    module share the single run."""
    if not _FINISHED_RUNS:
        base = tmp_path_factory.mktemp("finished")
        run = FinishedRun(make_workdir(base / "work", tiny_demo_config()), [], snapshot_workflow(base / "workflow"))
        run.targets = deepest_targets(run.workdir, repo=run.repo)
        snakemake(run.workdir, *run.targets, repo=run.repo)
        _FINISHED_RUNS.append(run)
    return _FINISHED_RUNS[0]
