"""kill -9 during tiling: no partial patch store is ever taken as complete, and a rerun gives the uninterrupted store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from synthetic_slides import tissue_image, write_slide

from mosare.tiling import tile_slide

TILING = {"target_mpp": 0.5, "patch_px": 256, "min_tissue_fraction": 0.5, "tissue": {}}
SRC = Path(__file__).resolve().parents[1] / "src"
TILE_SCRIPT = """
import sys
from mosare.tiling import tile_slide
tile_slide(sys.argv[1], sys.argv[2], slide_id="killed", tiling={tiling!r})
print("done", flush=True)
""".format(tiling=TILING)


def _store(path: Path) -> tuple[np.ndarray, dict]:
    group = zarr.open_group(str(path), mode="r")
    return group["coords"][:], dict(group.attrs)


def _assert_same(path: Path, reference: tuple[np.ndarray, dict]) -> None:
    coords, attrs = _store(path)
    np.testing.assert_array_equal(coords, reference[0])
    assert attrs == reference[1]


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    image = tissue_image(3072, 3072, blobs=[(0.4, 0.4, 0.3, 0.3), (0.75, 0.75, 0.15, 0.2)])
    return write_slide(tmp_path_factory.mktemp("kill") / "killed.svs", image, mpp=0.5, downsamples=(1, 4))


def test_tiling_killed_at_random_points_never_leaves_a_store_that_looks_complete(slide, tmp_path):
    store = tmp_path / "out" / "killed.zarr"
    tile_slide(slide, tmp_path / "reference.zarr", slide_id="killed", tiling=TILING)
    reference = _store(tmp_path / "reference.zarr")
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-c", TILE_SCRIPT, str(slide), str(store)]
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, capture_output=True)
    full_run = time.perf_counter() - start
    _assert_same(store, reference)
    rng = np.random.default_rng(0)
    outcomes = []
    # Kill at random points of a run (import, detection, fine pass, store writing), each time over the last store.
    for delay in rng.uniform(0.3 * full_run, 1.05 * full_run, size=6):
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        finished = process.wait() == 0
        outcomes.append(finished)
        # Whatever the moment, the final path holds a complete store: the earlier one or the new one.
        _assert_same(store, reference)
    # The same after killing a first run that had no earlier store to fall back on.
    fresh = tmp_path / "fresh" / "killed.zarr"
    process = subprocess.Popen([*command[:-1], str(fresh)], env=env, stderr=subprocess.DEVNULL)
    time.sleep(0.8 * full_run)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not fresh.exists() or _assert_same(fresh, reference) is None
    # Leftover temporaries of killed runs are never mistaken for the store, and a rerun replaces nothing wrongly.
    tile_slide(slide, fresh, slide_id="killed", tiling=TILING)
    _assert_same(fresh, reference)
    assert not all(outcomes), "every kill came after the run had finished; the delays test nothing"
