"""kill -9 at random points of a per-slide stage (tiling, a chunk of slides' embedding or GMMs): no partial store is
ever taken as complete, and a rerun gives the stores of an uninterrupted run.

Each run is a forked child of the test process (so the imports are paid once) that SIGKILL stops at a random moment;
the kills are spread over the whole run, store writing included, and for a chunk job between and inside its slides.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pytest
import zarr
from synthetic_slides import tissue_image, write_slide

from mosare.core.stores import write_store
from mosare.slides.tiling import tile_slide

TILING = {"target_mpp": 0.5, "patch_px": 256, "min_tissue_fraction": 0.5, "tissue": {}}
GMM = {
    "components": 4,
    "max_iter": 50,
    "tol": 1e-3,
    "reg_covar": 1e-6,
    "select_by_bic": False,
    "seed": 0,
    "max_samples": None,
}
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


def _assert_gone_soon(processes: list[psutil.Process]) -> None:
    """A killed job's helpers (decode workers) must die with it, not linger as orphans."""
    deadline = time.monotonic() + 10

    def running() -> list[psutil.Process]:
        with contextlib.suppress(psutil.NoSuchProcess):
            return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        return running()

    while running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not running(), f"processes of the killed job outlive it: {running()}"


def _kill_at_random_points(run: Callable[[Path], object], tmp_path: Path) -> None:
    """``run(folder)`` writes a job's stores into ``folder``; each store found after a kill must equal its reference."""
    start = time.perf_counter()
    run(tmp_path / "reference")
    full_run = time.perf_counter() - start
    references = {store.name: _contents(store) for store in (tmp_path / "reference").glob("*.zarr")}
    folder = tmp_path / "out"
    finished = []
    for index, delay in enumerate(np.random.default_rng(0).uniform(0, 1.2 * full_run, size=KILLS)):
        # Half the kills hit a first run (no stores yet), half a rerun over finished stores.
        if index == KILLS // 2:
            run(folder)
        pid = _forked(run, folder)
        time.sleep(delay)
        helpers = psutil.Process(pid).children(recursive=True)  # decode workers
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        _assert_gone_soon(helpers)
        finished.append(os.WIFEXITED(status))
        assert not os.WIFEXITED(status) or os.WEXITSTATUS(status) == 0, "the stage failed in the child"
        for name, reference in references.items():
            if (folder / name).exists():
                _assert_same(folder / name, reference)  # the earlier complete store, or the new complete one
            else:
                assert index < KILLS // 2, f"a killed rerun removed the earlier complete store {name}"
        assert {store.name for store in folder.glob("*.zarr")} <= references.keys()
    run(folder)
    for name, reference in references.items():
        _assert_same(folder / name, reference)
    # The killed runs' temporaries (mosare.core.atomic_files) are gone once the rerun has written their stores again.
    assert sorted(p.name for p in folder.iterdir()) == sorted(references)
    assert not all(finished), "every kill came after the run had finished; the delays test nothing"


def test_a_kill_while_an_old_store_is_being_deleted_leaves_a_complete_store(slide, tmp_path, monkeypatch):
    """The slowest step of replacing a store is deleting the old one; a kill there must not leave half of it."""
    import mosare.core.stores

    def run(store):
        return tile_slide(slide, store, slide_id="killed", tiling=TILING)

    store, marker = tmp_path / "slide.zarr", tmp_path / "deleting"
    run(store)
    reference = _contents(store)

    rmtree = mosare.core.stores.shutil.rmtree

    def delete_slowly(path, *args, **kwargs):
        """Deleting a finished store (the old one) removes its metadata first, then hangs until killed."""
        if not (Path(path) / "coords").exists():
            return rmtree(path, *args, **kwargs)
        (Path(path) / "zarr.json").unlink()
        marker.touch()
        time.sleep(60)

    pid = _forked(run, store, lambda: monkeypatch.setattr(mosare.core.stores.shutil, "rmtree", delete_slowly))
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
    _kill_at_random_points(
        lambda folder: tile_slide(slide, folder / "killed.zarr", slide_id="killed", tiling=TILING), tmp_path
    )


def test_a_chunk_of_slides_gmms_killed_at_random_points_never_leaves_a_store_that_looks_complete(tmp_path):
    """The GMM job fits a chunk of slides one after another (mosare.features.slide_gmm.fit_slide_gmms)."""
    torch = pytest.importorskip("torch")
    from mosare.features.slide_gmm import SlideGMMJob, fit_slide_gmms

    torch.set_num_threads(1)  # a forked child must not wait on the parent's thread pool
    feature_stores = []
    for slide in range(3):
        rng = np.random.default_rng(slide)
        centres = rng.normal(0, 4, (4, 32))
        features = (centres[rng.integers(0, 4, 4000)] + rng.normal(0, 1, (4000, 32))).astype(np.float16)
        coords = np.stack([np.arange(4000) % 64, np.arange(4000) // 64], axis=1).astype(np.int64) * 256
        feature_stores.append(tmp_path / "features" / f"slide{slide}.zarr")
        write_store(feature_stores[-1], {"features": features, "coords": coords}, {"encoder": "test"})

    def run(folder: Path) -> None:
        jobs = [SlideGMMJob(store.stem, store, folder / store.name, "-", "-", "-") for store in feature_stores]
        fit_slide_gmms(jobs, GMM, draw=lambda mixture, job: None, device="cpu")

    _kill_at_random_points(run, tmp_path)


def test_a_chunk_of_slides_embedding_killed_at_random_points_never_leaves_a_store_that_looks_complete(tmp_path):
    """The embedding job writes one feature store per slide of its chunk, chunk by chunk of rows, with a decode worker
    reading ahead across slides; kills land between and inside the slides' stores."""
    torch = pytest.importorskip("torch")
    from torchvision.transforms import v2

    from mosare.features.embedding import SlideJob, embed_slides
    from mosare.features.encoders import Encoder

    class SlowMeanColour(torch.nn.Module):
        """Each patch's mean colour, 50 ms a batch, so the slides' stores take most of the job's time."""

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            time.sleep(0.05)
            return images.mean(dim=(2, 3)) + 1.0

    torch.set_num_threads(1)
    (tmp_path / "weights.bin").write_bytes(b"no weights")
    encoder = Encoder(
        name="mean-colour",
        model=SlowMeanColour(),
        dim=3,
        input_px=32,
        mean=(0.0,) * 3,
        std=(1.0,) * 3,
        interpolation=v2.InterpolationMode.BILINEAR,
        autocast_dtype=None,
        weights_path=str(tmp_path / "weights.bin"),
        device=torch.device("cpu"),
    )
    patch_stores = []
    for slide in range(3):
        image = tissue_image(1024, 1024, blobs=[(0.5, 0.5, 0.45, 0.45)], seed=slide)
        path = write_slide(tmp_path / f"slide{slide}.svs", image, mpp=0.5)
        coords = np.array([(x, y) for y in range(0, 512, 256) for x in range(0, 1024, 256)], dtype=np.int64)
        patch_stores.append(tmp_path / "patches" / f"slide{slide}.zarr")
        write_store(
            patch_stores[-1],
            {"coords": coords},
            {
                "slide_id": f"slide{slide}",
                "slide_path": str(path),
                "mpp_level0": 0.5,
                "target_mpp": 0.5,
                "patch_px": 256,
                "footprint_px": 256,
                "read_level": 0,
                "read_px": 256,
                "n_patches": len(coords),
            },
        )

    def run(folder: Path) -> None:
        jobs = [SlideJob(store, folder / store.name) for store in patch_stores]
        embed_slides(jobs, encoder, batch_size=4, num_workers=1, chunk_rows=4, weights_sha256="0" * 64)

    _kill_at_random_points(run, tmp_path)
