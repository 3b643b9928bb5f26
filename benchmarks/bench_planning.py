"""How planning grows with the cohort: `snakemake --dry-run` of a whole cohort of N slides, for several N.

Each cohort is a sample sheet of N slides, every one a hard link of one small slide file and its own patient (half
of each class), with no RNA or reports, so planning sees N tiling, embedding-chunk and GMM-chunk jobs and one
training job. Each dry run is a fresh `snakemake` process planning `results/<cohort>/metrics.tsv`; the script prints
its wall seconds, seconds per 1,000 slides, the per-slide cost relative to the smallest cohort (a ratio near 1 is
linear planning), its peak RSS, and how much of the time the profiler puts in this workflow's own functions
(`--profile`). `--slurm` plans the largest cohort again, in this process through Snakemake's API, with the SLURM
profile's `groups` and `group-components` (profiles/slurm/config.yaml), and counts the SLURM jobs the per-slide work
(tiling, embedding, GMMs) is grouped into.

    .venv/bin/python benchmarks/bench_planning.py [--slides 1000 5000 10000 20000] [--repo .] [--profile] [--slurm]
"""

from __future__ import annotations

import argparse
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from synthetic_slides import tissue_image, write_slide  # noqa: E402


def make_cohort(root: Path, n_slides: int, slide: Path) -> Path:
    """A workdir whose config names one cohort of ``n_slides`` hard-linked slides; returns the workdir."""
    slides = root / "slides"
    slides.mkdir(parents=True)
    rows = ["patient_id\tslide_id\tslide_path\tlabel"]
    for index in range(n_slides):
        path = slides / f"s{index:06d}.svs"
        os.link(slide, path)
        rows.append(f"p{index:06d}\ts{index:06d}\t{path}\t{'AB'[index % 2]}")
    (root / "samples.tsv").write_text("\n".join(rows) + "\n")
    config = {
        "cohorts": {"big": {"classes": ["A", "B"], "samples": str(root / "samples.tsv")}},
        "encoder": {"name": "efficientnet-lite0"},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return root


def dry_run(workdir: Path, repo: Path, *extra: str, profile: Path | None = None) -> tuple[float, float, str]:
    """(wall s, peak RSS MB, stdout) of one `snakemake --dry-run` of the cohort's metrics."""
    command = [str(Path(sys.executable).with_name("snakemake"))]
    if profile is not None:
        command = [sys.executable, "-m", "cProfile", "-o", str(profile), command[0]]
    command += ["--snakefile", str(repo / "Snakefile"), "--directory", str(workdir), "--configfile",
                str(workdir / "config.yaml"), "--dry-run", "--cores", "16", *extra, "results/big/metrics.tsv"]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=workdir)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"dry run failed:\n{result.stderr[-3000:]}")
    peak = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, before) / 1024
    return seconds, peak, result.stdout


def workflow_share(profile: Path, repo: Path) -> float:
    """Cumulative seconds the profiler puts in functions defined in this workflow's rule files (input functions)."""
    stats = pstats.Stats(str(profile))
    rules = str(repo / "workflow" / "rules")
    return sum(
        cumulative
        for (filename, _, _), (_, _, _, cumulative, callers) in stats.stats.items()  # type: ignore[attr-defined]
        if filename.startswith(rules) and not any(caller[0].startswith(rules) for caller in callers)
    )


def slurm_groups(workdir: Path, repo: Path) -> tuple[int, int]:
    """(jobs in a group, SLURM jobs they form) when the cohort is planned with the SLURM profile's grouping."""
    import immutables
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import ConfigSettings, DAGSettings, GroupSettings, OutputSettings, ResourceSettings

    profile = yaml.safe_load((repo / "profiles" / "slurm" / "config.yaml").read_text())
    groups = dict(entry.split("=") for entry in profile.get("groups", []))
    components = {name: int(n) for name, n in (entry.split("=") for entry in profile.get("group-components", []))}
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=16),
            config_settings=ConfigSettings(configfiles=[workdir / "config.yaml"]),
            snakefile=repo / "Snakefile",
            workdir=workdir,
        )
        dag = workflow.dag(dag_settings=DAGSettings(targets={"results/big/metrics.tsv"}))
        settings = GroupSettings(overwrite_groups=immutables.Map(groups), group_components=immutables.Map(components))
        dag.execute_workflow(executor="dryrun", group_settings=settings)
        grouped = workflow._workflow.dag._group  # job -> its group job (Snakemake's DAG; no public accessor)
        return len(grouped), len({id(group) for group in grouped.values()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slides", type=int, nargs="+", default=[1000, 5000, 10000, 20000])
    parser.add_argument("--repo", type=Path, default=HERE.parent, help="the checkout whose workflow is planned")
    parser.add_argument("--profile", action="store_true", help="profile each dry run (slower)")
    parser.add_argument("--slurm", action="store_true", help="count the SLURM jobs of the largest cohort")
    args = parser.parse_args()
    repo = args.repo.resolve()
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        slide = write_slide(scratch / "one.svs", tissue_image(512, 512, blobs=[(0.5, 0.5, 0.3, 0.3)]), mpp=0.5)
        print(f"planning {repo} (results/big/metrics.tsv, --dry-run)")
        print(f"{'slides':>8} {'seconds':>8} {'s/1000':>8} {'per-slide x':>12} {'peak MB':>8} {'own code s':>11}")
        base = None
        for n_slides in args.slides:
            workdir = make_cohort(scratch / f"cohort{n_slides}", n_slides, slide)
            profile = scratch / f"plan{n_slides}.prof" if args.profile else None
            seconds, peak, _ = dry_run(workdir, repo, profile=profile)
            per_slide = seconds / n_slides
            base = base or per_slide
            own = f"{workflow_share(profile, repo):11.1f}" if profile else f"{'-':>11}"
            print(f"{n_slides:8d} {seconds:8.1f} {1000 * per_slide:8.2f} {per_slide / base:12.2f} {peak:8.0f} {own}")
            if args.slurm and n_slides == max(args.slides):
                grouped, slurm_jobs = slurm_groups(workdir, repo)
                print(f"SLURM profile, {n_slides} slides: {grouped} per-slide jobs in {slurm_jobs} SLURM jobs")
            shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
