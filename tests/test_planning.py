"""Planning grows linearly with the cohort: the per-slide input functions are lookups in an index built once.

Each slide's tiling job once searched the whole sample sheet (and rebuilt its list of slide ids) on every call, and
Snakemake calls those functions several times per job, so planning 10,000 slides took 113 s. Counting calls, not
timing them: a dry run of a 4x larger cohort must make at most about 4x the workflow's own calls, and index the
sheet the same number of times.
"""

from __future__ import annotations

import pstats
import subprocess
import sys
from pathlib import Path

import pytest
from workflow_runs import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

from bench_planning import make_cohort
from synthetic_slides import tissue_image, write_slide


def planning_calls(workdir: Path, profile: Path) -> tuple[int, int]:
    """(calls of functions defined in workflow/rules/, calls that index or scan the sheet) in one dry run."""
    snakemake = Path(sys.executable).with_name("snakemake")
    command = [sys.executable, "-m", "cProfile", "-o", str(profile), str(snakemake), "--snakefile",
               str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
               "--dry-run", "--cores", "4", "results/big/metrics.tsv"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    rules = str(REPO / "workflow" / "rules")
    own = sum(calls for (filename, _, _), (_, calls, *_) in stats.items() if filename.startswith(rules))
    sheet_scans = sum(
        calls
        for (filename, _, name), (_, calls, *_) in stats.items()
        if filename.endswith("mosare/core/samples.py") and name in {"slide_rows", "__init__"}
    )
    return own, sheet_scans


@pytest.mark.slow  # four profiled dry runs, about a minute
def test_planning_calls_grow_linearly_with_the_cohort_and_the_sheet_is_indexed_once(tmp_path):
    slide = write_slide(tmp_path / "one.svs", tissue_image(256, 256, blobs=[(0.5, 0.5, 0.3, 0.3)]), mpp=0.5)
    small = planning_calls(make_cohort(tmp_path / "small", 60, slide), tmp_path / "small.prof")
    large = planning_calls(make_cohort(tmp_path / "large", 240, slide), tmp_path / "large.prof")
    assert large[1] == small[1] <= 4, f"the sheet was scanned {small[1]} and {large[1]} times"
    assert large[0] / small[0] < 4.4, f"own calls grew {large[0] / small[0]:.2f}x for 4x the slides"
