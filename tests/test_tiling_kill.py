"""kill -9 at random points of a per-slide stage (tiling, GMM): no partial store is ever taken as complete, and a
rerun gives the store of an uninterrupted run.

Each run is a forked child of the test process (so the imports are paid once) that SIGKILL stops at a random moment;
the kills are spread over the whole run, store writing included.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import zarr
from synthetic_slides import tissue_image, write_slide

from mosare.stores import write_store
from mosare.tiling import tile_slide

TILING = {"target_mpp": 0.5, "patch_px": 256, "min_tissue_fraction": 0.5, "tissue": {}}
GMM = {"components": 4, "max_iter": 50, "tol": 1e-3, "reg_covar": 1e-6, "select_by_bic": False, "seed": 0,
       "max_samples": None}
KILLS = 8


def _contents(path: Path) -> dict:
    group = zarr.open_group(str(path), mode="r")
    return {"attrs": dict(group.attrs), **{name: array[...] for name, array in group.arrays()}}


def _assert_same(path: Path, reference: dict) -> None:
    contents = _contents(path)
    assert contents.keys() == reference.keys()
    for key, value in reference.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(contents[key], value, err_msg=f"{path}: {key}")
        else:
            assert contents[key] == value


def _forked(run: Callable[[Path], object], store: Path, in_child: Callable[[], object] = lambda: None) -> int:
    pid = os.fork()
    if pid == 0:  # the child: run the stage, never return into pytest
        try:
            in_child()
            run(store)
        except BaseException:
            os._exit(1)
        os._exit(0)
    return pid


def _kill_at_random_points(run: Callable[[Path], object], tmp_path: Path) -> None:
    reference_store = tmp_path / "reference.zarr"
    start = time.perf_counter()
    run(reference_store)
    full_run = time.perf_counter() - start
    reference = _contents(reference_store)
    store = tmp_path / "out" / "slide.zarr"
    finished = []
    for index, delay in enumerate(np.random.default_rng(0).uniform(0, 1.2 * full_run, size=KILLS)):
        # Half the kills hit a first run (no store yet), half a rerun over a finished store.
        if index == KILLS // 2:
            run(store)
        pid = _forked(run, store)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        finished.append(os.WIFEXITED(status))
        assert not os.WIFEXITED(status) or os.WEXITSTATUS(status) == 0, "the stage failed in the child"
        if store.exists():
            _assert_same(store, reference)  # the earlier complete store, or the new complete one
        else:
            assert index < KILLS // 2, "a killed rerun removed the earlier complete store"
    run(store)
    _assert_same(store, reference)
    assert not all(finished), "every kill came after the run had finished; the delays test nothing"


def test_a_kill_while_an_old_store_is_being_deleted_leaves_a_complete_store(slide, tmp_path, monkeypatch):
    """The slowest step of replacing a store is deleting the old one; a kill there must not leave half of it."""
    import mosare.stores

    def run(store):
        return tile_slide(slide, store, slide_id="killed", tiling=TILING)

    store, marker = tmp_path / "slide.zarr", tmp_path / "deleting"
    run(store)
    reference = _contents(store)

    rmtree = mosare.stores.shutil.rmtree

    def delete_slowly(path, *args, **kwargs):
        """Deleting a finished store (the old one) removes its metadata first, then hangs until killed."""
        if not (Path(path) / "coords").exists():
            return rmtree(path, *args, **kwargs)
        (Path(path) / "zarr.json").unlink()
        marker.touch()
        time.sleep(60)

    pid = _forked(run, store, lambda: monkeypatch.setattr(mosare.stores.shutil, "rmtree", delete_slowly))
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert marker.exists()
    _assert_same(store, reference)


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    image = tissue_image(3072, 3072, blobs=[(0.4, 0.4, 0.3, 0.3), (0.75, 0.75, 0.15, 0.2)])
    return write_slide(tmp_path_factory.mktemp("kill") / "killed.svs", image, mpp=0.5, downsamples=(1, 4))


def test_tiling_killed_at_random_points_never_leaves_a_store_that_looks_complete(slide, tmp_path):
    _kill_at_random_points(lambda store: tile_slide(slide, store, slide_id="killed", tiling=TILING), tmp_path)


def test_gmm_killed_at_random_points_never_leaves_a_store_that_looks_complete(tmp_path):
    torch = pytest.importorskip("torch")
    from mosare.slide_gmm import fit_slide_gmm

    torch.set_num_threads(1)  # a forked child must not wait on the parent's thread pool
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (4, 32))
    features = (centres[rng.integers(0, 4, 4000)] + rng.normal(0, 1, (4000, 32))).astype(np.float16)
    coords = np.stack([np.arange(4000) % 64, np.arange(4000) // 64], axis=1).astype(np.int64) * 256
    feature_store = tmp_path / "features.zarr"
    write_store(feature_store, {"features": features, "coords": coords}, {"encoder": "test"})
    _kill_at_random_points(lambda store: fit_slide_gmm(feature_store, store, GMM, slide_id="killed"), tmp_path)
