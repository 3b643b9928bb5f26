"""Patch embedding: feature stores aligned with the patch store, corrupt tiles, failure threshold, streaming writes."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr
from synthetic_slides import tissue_image, write_slide
from torchvision.transforms import v2
from workflow_runs import make_workdir, planned_jobs

from mosare.core.stores import open_store, write_store
from mosare.features import embedding, weights_fingerprint
from mosare.features.embedding import EmbeddingError, SlideJob, embed_slide, embed_slides, embed_slides_with_config
from mosare.features.embedding_chunks import chunk_count, embedding_chunks
from mosare.features.encoder_specs import encoder_spec
from mosare.features.encoders import Encoder, create_encoder
from mosare.features.feature_store import EmbeddingRecord, FeatureStore
from mosare.features.weights_fingerprint import WeightsChangedError, fingerprint_encoder_weights, write_fingerprint
from mosare.slides.reader import open_slide

SLIDE_PX = 1024
TILE = 256
CORRUPT_TILE = (256, 256)  # level-0 x, y of the tile whose JPEG data gets damaged


def make_slide(path: Path, *, corrupt_tile: tuple[int, int] | None = None) -> Path:
    """A 1024 px Aperio-style slide of 256 px JPEG tiles; optionally one tile's entropy-coded data damaged."""
    write_slide(path, tissue_image(SLIDE_PX, SLIDE_PX, blobs=[(0.5, 0.5, 0.48, 0.48)], seed=3), mpp=0.5)
    if corrupt_tile is not None:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            tile_index = corrupt_tile[1] // TILE * (SLIDE_PX // TILE) + corrupt_tile[0] // TILE
            offset, size = page.dataoffsets[tile_index], page.databytecounts[tile_index]
        with open(path, "r+b") as stream:
            # Invalid markers mid-scan: libjpeg reports "Corrupt JPEG data", as with a damaged scanner file.
            stream.seek(offset + size // 2)
            stream.write(b"\xff\x01" * 4)
    return path


def make_patch_store(path: Path, slide: Path, coords: np.ndarray) -> Path:
    """A patch store as the tiling stage writes it: 256 px patches read at level 0 of a 0.5 µm/px slide."""
    attrs = {
        "slide_id": slide.stem,
        "slide_path": str(slide),
        "mpp_level0": 0.5,
        "target_mpp": 0.5,
        "patch_px": TILE,
        "footprint_px": TILE,
        "read_level": 0,
        "read_px": TILE,
        "n_patches": len(coords),
    }
    write_store(path, {"coords": np.asarray(coords, dtype=np.int64).reshape(-1, 2)}, attrs)
    return path


def tile_grid() -> np.ndarray:
    """Every 256 px tile's top-left, in a scrambled order (rows must follow the patch store, whatever its order)."""
    grid = np.array([(x, y) for y in range(0, SLIDE_PX, TILE) for x in range(0, SLIDE_PX, TILE)], dtype=np.int64)
    return grid[np.random.default_rng(0).permutation(len(grid))]


def features_of(encoder: Encoder, slide: Path, coords: np.ndarray) -> np.ndarray:
    with open_slide(slide) as handle:
        patches = [torch.from_numpy(handle.read_patch(x, y, 0, TILE, TILE)).permute(2, 0, 1) for x, y in coords]
    return encoder.embed(encoder.resize_crop(torch.stack(patches))).numpy()


def test_feature_store_rows_match_the_patch_store_coords_and_each_patch_embedding(tmp_path):
    lite0 = create_encoder("efficientnet-lite0", device="cpu")
    slide = make_slide(tmp_path / "slide-1.svs")
    coords = tile_grid()[:8]
    patches = make_patch_store(tmp_path / "patches.zarr", slide, coords)
    output = tmp_path / "features" / "slide-1.zarr"

    embed_slide(patches, output, lite0, batch_size=5, num_workers=0)

    store = open_store(output)
    assert store["features"].dtype == np.float16 and store["features"].shape == (8, 1280)
    np.testing.assert_array_equal(store["coords"][...], coords)
    expected = features_of(lite0, slide, coords[[0, 6]])
    np.testing.assert_allclose(store["features"][[0, 6]].astype(np.float32), expected, rtol=1e-2, atol=1e-2)
    attrs = store.attrs
    package_weights = Path(lite0.weights_path).read_bytes()
    assert attrs["encoder"] == "efficientnet-lite0" and attrs["weights_path"] == lite0.weights_path
    assert attrs["weights_sha256"] == hashlib.sha256(package_weights).hexdigest()
    assert (attrs["input_px"], attrs["mean"], attrs["std"]) == (224, [0.5] * 3, [0.5] * 3)
    assert (attrs["dtype"], attrs["mpp_level0"], attrs["target_mpp"], attrs["patch_px"]) == ("float32", 0.5, 0.5, 256)
    assert attrs["failed_patches"] == [] and attrs["n_patches"] == 8
    assert {"torch", "timm", "openslide-python", "zarr"} <= set(attrs["versions"])


def test_corrupt_jpeg_tile_drops_only_its_patch_and_records_its_coordinates(tmp_path, caplog):
    encoder = mean_colour_encoder(MeanColour(), tmp_path / "weights.bin")
    coords = tile_grid()
    damaged = make_slide(tmp_path / "damaged.svs", corrupt_tile=CORRUPT_TILE)
    intact = make_slide(tmp_path / "intact.svs")
    output = tmp_path / "damaged.zarr"

    with caplog.at_level(logging.WARNING, logger="mosare"):
        embed_slide(
            make_patch_store(tmp_path / "damaged-patches.zarr", damaged, coords),
            output,
            encoder,
            batch_size=4,
            num_workers=2,  # the worker that hits the bad tile must reopen its own handle and carry on
            max_failed_fraction=0.1,
        )
    embed_slide(
        make_patch_store(tmp_path / "intact-patches.zarr", intact, coords),
        tmp_path / "intact.zarr",
        encoder,
        batch_size=4,
        num_workers=0,
    )

    store, reference = open_store(output), open_store(tmp_path / "intact.zarr")
    kept = ~np.all(coords == CORRUPT_TILE, axis=1)
    np.testing.assert_array_equal(store["coords"][...], coords[kept])
    np.testing.assert_array_equal(store["features"][...], reference["features"][...][kept])
    [(x, y, error)] = store.attrs["failed_patches"]
    assert (x, y) == CORRUPT_TILE and "Corrupt JPEG data" in error and "damaged" in error
    assert store.attrs["n_patches"] == 15
    assert f"level-0 ({x}, {y}) skipped" in caplog.text


def test_too_many_undecodable_patches_fail_the_job_naming_the_slide_and_write_nothing(tmp_path):
    encoder = mean_colour_encoder(MeanColour(), tmp_path / "weights.bin")
    slide = make_slide(tmp_path / "bad-slide.svs", corrupt_tile=CORRUPT_TILE)
    patches = make_patch_store(tmp_path / "patches.zarr", slide, tile_grid())
    output = tmp_path / "features" / "bad-slide.zarr"

    with pytest.raises(EmbeddingError, match=r"'bad-slide'.*1 of 16 patches.*encoder\.max_failed_fraction=0\.05"):
        embed_slide(patches, output, encoder, batch_size=4, num_workers=0, max_failed_fraction=0.05)

    assert not output.exists() and list(output.parent.iterdir()) == []


class MeanColour(torch.nn.Module):
    """A cheap stand-in model: each patch's mean colour + 1 (never 0, the store's fill value)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3)) + 1.0


class StoreSpy(MeanColour):
    """MeanColour that, before each batch, records what the unfinished store already holds."""

    def __init__(self, output: Path) -> None:
        super().__init__()
        self.output = output
        self.on_disk_before_batch: list[np.ndarray] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        [temporary] = self.output.parent.glob(f".{self.output.name}.tmp-*")
        self.on_disk_before_batch.append(zarr.open_group(str(temporary), mode="r")["features"][...])
        return super().forward(images)


def mean_colour_encoder(model: MeanColour, weights: Path) -> Encoder:
    weights.write_bytes(b"no weights")
    return Encoder(
        name="mean-colour",
        model=model,
        dim=3,
        input_px=32,
        mean=(0.0,) * 3,
        std=(1.0,) * 3,
        interpolation=v2.InterpolationMode.BILINEAR,
        autocast_dtype=None,
        weights_path=str(weights),
        device=torch.device("cpu"),
    )


def test_features_reach_the_store_batch_by_batch_while_the_slide_is_embedded(tmp_path):
    slide = make_slide(tmp_path / "slide.svs")
    patches = make_patch_store(tmp_path / "patches.zarr", slide, tile_grid())
    output = tmp_path / "slide.zarr"
    encoder = mean_colour_encoder(StoreSpy(output), tmp_path / "weights.bin")

    embed_slide(patches, output, encoder, batch_size=4, num_workers=0, chunk_rows=4)

    final = open_store(output)["features"][...]
    snapshots = encoder.model.on_disk_before_batch
    assert len(snapshots) == 4 and np.all(final > 0)
    for batch, snapshot in enumerate(snapshots):
        # Every earlier batch is already on disk; nothing of this one or later ones is (fill value 0).
        np.testing.assert_array_equal(snapshot[: 4 * batch], final[: 4 * batch])
        assert np.all(snapshot[4 * batch :] == 0)


def test_feature_writer_never_buffers_a_whole_chunk_and_trims_unused_rows(tmp_path):
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, 10_000, (7, 2)), rng.standard_normal((7, 5))) for _ in range(13)]

    buffered = []
    with FeatureStore.appending(tmp_path / "store.zarr", n_rows=100, dim=5, chunk_rows=16) as writer:
        for coords, features in batches:
            writer.append(coords, features)
            buffered.append(writer.rows_buffered)
        attrs = writer.finish(EmbeddingRecord(encoder="test"))

    assert max(buffered) < 16 and writer.rows_written == attrs["n_patches"] == 91
    stored = FeatureStore.read(tmp_path / "store.zarr")
    np.testing.assert_array_equal(stored.coords, np.concatenate([c for c, _ in batches]))
    np.testing.assert_array_equal(stored.features, np.concatenate([f for _, f in batches]).astype(np.float16))
    assert stored.record.encoder == "test"


def test_slide_without_patches_gets_an_empty_feature_store(tmp_path):
    slide = make_slide(tmp_path / "blank.svs")
    patches = make_patch_store(tmp_path / "patches.zarr", slide, np.zeros((0, 2), dtype=np.int64))
    output = tmp_path / "blank.zarr"

    encoder = mean_colour_encoder(MeanColour(), tmp_path / "weights.bin")

    embed_slide(patches, output, encoder, batch_size=4, num_workers=0)

    store = open_store(output)
    assert store["features"].shape == (0, 3) and store["coords"].shape == (0, 2)
    assert store.attrs["n_patches"] == 0


LITE0_CONFIG = {"name": "efficientnet-lite0", "checkpoint": None, "batch_size": 4, "num_workers": 0}


def test_embedding_jobs_record_the_fingerprinted_sha256_and_never_hash_the_weights_again(
    tmp_path, monkeypatch, one_torch_thread
):
    hashed = []

    def counting_sha256(path):
        hashed.append(Path(path).name)
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()

    monkeypatch.setattr(weights_fingerprint, "sha256_file", counting_sha256)
    monkeypatch.setattr(embedding, "sha256_file", counting_sha256)
    fingerprint = fingerprint_encoder_weights(LITE0_CONFIG, tmp_path / "encoders" / "efficientnet-lite0.json")

    stores = []
    for slide_id in ("slide-1", "slide-2"):  # two jobs of one slide each
        slide = make_slide(tmp_path / f"{slide_id}.svs")
        patches = make_patch_store(tmp_path / f"{slide_id}-patches.zarr", slide, tile_grid()[:2])
        stores.append(tmp_path / "features" / f"{slide_id}.zarr")
        embed_slides_with_config(
            [SlideJob(patches, stores[-1])],
            LITE0_CONFIG,
            threads=1,
            weights_fingerprint=tmp_path / "encoders" / "efficientnet-lite0.json",
        )

    package_weights = Path(create_encoder("efficientnet-lite0", device="cpu").weights_path)
    assert hashed == [package_weights.name]  # once, by the fingerprint; not once per slide
    assert fingerprint.sha256 == hashlib.sha256(package_weights.read_bytes()).hexdigest()
    assert [open_store(store).attrs["weights_sha256"] for store in stores] == [fingerprint.sha256] * 2


def test_weights_changed_since_their_fingerprint_fail_the_embedding_job_and_write_no_store(tmp_path, one_torch_thread):
    fingerprint_file = tmp_path / "encoders" / "efficientnet-lite0.json"
    fingerprint = fingerprint_encoder_weights(LITE0_CONFIG, fingerprint_file)
    # As if the package had been reinstalled after the fingerprint was taken: its file has a newer mtime.
    write_fingerprint(dataclasses.replace(fingerprint, mtime_ns=fingerprint.mtime_ns - 10**9), fingerprint_file)
    slide = make_slide(tmp_path / "slide.svs")
    patches = make_patch_store(tmp_path / "patches.zarr", slide, tile_grid()[:2])
    output = tmp_path / "features" / "slide.zarr"

    with pytest.raises(WeightsChangedError) as raised:
        embed_slides_with_config(
            [SlideJob(patches, output)], LITE0_CONFIG, threads=1, weights_fingerprint=fingerprint_file
        )

    message = str(raised.value)
    assert fingerprint.path in message and str(fingerprint_file) in message
    assert "changed after it was fingerprinted" in message and "snakemake --forcerun fingerprint_encoder" in message
    assert not output.exists()


class CountingResize:
    """A resize_crop that appends one line per decoded patch to a file, readable from the main process."""

    def __init__(self, inner, path: Path) -> None:
        self.inner, self.path = inner, path

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        with open(self.path, "a") as stream:
            stream.write("x\n")
        return self.inner(image)


class WaitsForNextSlide(MeanColour):
    """MeanColour that, on the last batch of the first slide, waits until more patches than that slide has were
    decoded: only workers that already read the next slide can get there."""

    def __init__(self, decoded: Path, first_slide_patches: int, first_slide_batches: int) -> None:
        super().__init__()
        self.decoded, self.first_slide_patches, self.first_slide_batches = (
            decoded,
            first_slide_patches,
            first_slide_batches,
        )
        self.batches = 0
        self.decoded_during_last_batch = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.batches += 1
        if self.batches == self.first_slide_batches:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                self.decoded_during_last_batch = len(self.decoded.read_text().splitlines())
                if self.decoded_during_last_batch > self.first_slide_patches:
                    break
                time.sleep(0.05)
        return super().forward(images)


@dataclasses.dataclass
class CountingEncoder(Encoder):
    decoded: Path | None = None

    @property
    def resize_crop(self) -> CountingResize:
        return CountingResize(super().resize_crop, self.decoded)


def test_the_next_slides_patches_decode_while_the_current_slides_last_batch_is_on_the_model(tmp_path):
    slide = make_slide(tmp_path / "slide.svs")
    decoded = tmp_path / "decoded.txt"
    decoded.write_text("")
    model = WaitsForNextSlide(decoded, first_slide_patches=8, first_slide_batches=2)
    encoder = CountingEncoder(**vars(mean_colour_encoder(model, tmp_path / "weights.bin")), decoded=decoded)
    jobs = [
        SlideJob(make_patch_store(tmp_path / f"p{index}.zarr", slide, tile_grid()[:8]), tmp_path / f"f{index}.zarr")
        for index in range(2)
    ]

    embed_slides(jobs, encoder, batch_size=4, num_workers=2)

    assert model.decoded_during_last_batch > 8  # slide 2 was already decoding
    for job in jobs:
        assert open_store(job.output).attrs["n_patches"] == 8


def test_slides_embedded_together_are_bit_identical_to_each_slide_embedded_alone(tmp_path, caplog, one_torch_thread):
    """Real efficientnet-lite0 (whose CPU kernels depend on the batch's size): a job's slides keep their own batches,
    the last one short, so sharing a job, its workers and their read-ahead changes no bit of any feature."""
    lite0 = create_encoder("efficientnet-lite0", device="cpu")
    intact, damaged = (
        make_slide(tmp_path / "intact.svs"),
        make_slide(tmp_path / "damaged.svs", corrupt_tile=CORRUPT_TILE),
    )
    grid = tile_grid()
    patch_sets = [(intact, grid[:7]), (intact, grid[:0]), (damaged, grid[:13]), (intact, grid[5:10])]
    jobs = [
        SlideJob(
            make_patch_store(tmp_path / f"patches-{index}.zarr", slide, coords),
            tmp_path / "together" / f"{index}.zarr",
            tmp_path / "logs" / f"{index}.log",
        )
        for index, (slide, coords) in enumerate(patch_sets)
    ]

    with caplog.at_level(logging.INFO, logger="mosare"):
        embed_slides(jobs, lite0, batch_size=4, num_workers=2, max_failed_fraction=0.2)
    for index, job in enumerate(jobs):
        embed_slide(
            job.patch_store,
            tmp_path / "alone" / f"{index}.zarr",
            lite0,
            batch_size=4,
            num_workers=0,
            max_failed_fraction=0.2,
        )

    for index, job in enumerate(jobs):
        together, alone = open_store(job.output), open_store(tmp_path / "alone" / f"{index}.zarr")
        assert together["features"].shape[0] == len(patch_sets[index][1]) - (index == 2)
        np.testing.assert_array_equal(together["features"][...], alone["features"][...])
        np.testing.assert_array_equal(together["coords"][...], alone["coords"][...])
        assert together.attrs["failed_patches"] == alone.attrs["failed_patches"]
    # Each slide's log holds its own lines: the corrupt patch only in the damaged slide's.
    logs = [Path(job.log).read_text() for job in jobs]
    assert ["skipped: " in text for text in logs] == [False, False, True, False]
    assert [text.count("features written") for text in logs] == [1, 1, 1, 1]


@pytest.mark.parametrize(
    ("n_rows", "piece_rows", "sizes"),
    [
        (64, 16, [16, 16, 16, 16]),
        (37, 16, [16, 21]),
        (31, 16, [31]),
        (48, 16, [16, 16, 16]),
        (5, 16, [5]),
        (64, None, [64]),
    ],
)
def test_a_batch_runs_in_pieces_of_at_least_the_given_rows_the_remainder_joining_the_last(n_rows, piece_rows, sizes):
    assert embedding.forward_pieces(n_rows, piece_rows) == sizes


def test_efficientnet_lite0_features_are_bit_identical_whether_a_batch_runs_whole_or_in_its_specs_pieces(
    one_torch_thread,
):
    """The memory fix (issue 13) must not change features: the spec's cpu_forward_rows holds only while oneDNN gives
    every row of a piece of >= that many rows the bits it has in the whole batch. 37 rows: pieces of 16 and 21."""
    lite0 = create_encoder("efficientnet-lite0", device="cpu")
    rows = encoder_spec("efficientnet-lite0").cpu_forward_rows
    images = torch.randint(0, 256, (37, 3, 224, 224), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))

    pieces = embedding.embed_in_pieces(lite0, images, rows)

    assert embedding.forward_pieces(37, rows) == [16, 21]
    np.testing.assert_array_equal(pieces.view(np.uint32), lite0.embed(images).numpy().view(np.uint32))


def test_a_failing_slide_stops_its_job_naming_it_and_leaves_no_store_of_its_own(tmp_path):
    encoder = mean_colour_encoder(MeanColour(), tmp_path / "weights.bin")
    good, bad = make_slide(tmp_path / "good.svs"), make_slide(tmp_path / "bad-slide.svs", corrupt_tile=CORRUPT_TILE)
    jobs = [
        SlideJob(make_patch_store(tmp_path / f"{index}.zarr", slide, tile_grid()), tmp_path / "out" / f"{index}.zarr")
        for index, slide in enumerate((good, bad, good))
    ]

    with pytest.raises(EmbeddingError, match=r"'bad-slide'.*1 of 16 patches"):
        embed_slides(jobs, encoder, batch_size=4, num_workers=2, max_failed_fraction=0.0)

    # The slide before it is complete, nothing of it or after it exists (Snakemake deletes a failed job's outputs).
    assert [path.name for path in (tmp_path / "out").iterdir()] == ["0.zarr"]
    assert open_store(jobs[0].output).attrs["n_patches"] == 16


# ---------------------------------------------------------------- which slides share a job, and what a change reruns


def test_a_slides_chunk_depends_only_on_its_id_and_the_chunk_count_in_any_process():
    ids = [f"P{index:03d}-{suffix}" for index in range(40) for suffix in "AB"]
    chunks = embedding_chunks(ids, slides_per_job=16)

    assert len(chunks) == 8  # 80 / 16 = 5, rounded up to a power of two
    assert sorted(slide for chunk in chunks for slide in chunk.slide_ids) == sorted(ids)
    assert all(list(chunk.slide_ids) == [s for s in ids if s in chunk.slide_ids] for chunk in chunks)  # sheet order
    # Adding slides (without doubling the count) moves none of the others.
    grown = embedding_chunks([*ids, "new-1", "new-2"], slides_per_job=16)
    where = {slide: chunk.index for chunk in chunks for slide in chunk.slide_ids}
    assert all(where[slide] == chunk.index for chunk in grown for slide in chunk.slide_ids if slide in where)
    # Not Python's salted hash(): another interpreter with another hash seed chunks the same way.
    code = f"from mosare.features.embedding_chunks import embedding_chunks; print([c.slide_ids for c in embedding_chunks({ids!r}, 16)])"
    other = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert other.stdout.strip() == str([chunk.slide_ids for chunk in chunks])
    assert [len(c.slide_ids) for c in embedding_chunks(ids[:3], 16)] == [3] and chunk_count(0, 16) == 1


def _fake_finished_embedding(workdir: Path, slide_ids: list[str]) -> None:
    """Slide files, patch stores, fingerprint and feature stores as a finished run leaves them, oldest first."""
    results = workdir / "results"
    for slide_id in slide_ids:
        (workdir / "slides" / f"{slide_id}.svs").write_bytes(b"slide")
    time.sleep(0.05)
    for slide_id in slide_ids:
        (results / "c" / "patches" / f"{slide_id}.zarr").mkdir(parents=True, exist_ok=True)
    (results / "encoders").mkdir(parents=True, exist_ok=True)
    (results / "encoders" / "efficientnet-lite0.json").write_text("{}")
    time.sleep(0.05)
    for slide_id in slide_ids:
        (results / "c" / "features" / "efficientnet-lite0" / f"{slide_id}.zarr").mkdir(parents=True, exist_ok=True)


@pytest.mark.slow  # three dry runs of the workflow (about 20 s)
def test_changing_or_adding_one_slide_plans_only_its_chunks_embedding_job(tmp_path):
    slide_ids = [f"s{index:02d}" for index in range(12)]
    workdir = tmp_path / "work"
    (workdir / "slides").mkdir(parents=True)

    def write_sheet(ids: list[str]) -> None:
        rows = [
            f"p{slide_id}\t{slide_id}\tslides/{slide_id}.svs\t{'AB'[index % 2]}" for index, slide_id in enumerate(ids)
        ]
        (workdir / "samples.tsv").write_text("patient_id\tslide_id\tslide_path\tlabel\n" + "\n".join(rows) + "\n")

    write_sheet(slide_ids)
    config = {
        "cohorts": {"c": {"classes": ["A", "B"], "samples": "samples.tsv"}},
        "encoder": {"name": "efficientnet-lite0", "slides_per_job": 4},
    }
    make_workdir(workdir, config)
    _fake_finished_embedding(workdir, slide_ids)
    chunk_of = {slide: chunk.index for chunk in embedding_chunks(slide_ids, 4) for slide in chunk.slide_ids}

    def features(ids: list[str]) -> list[str]:
        return [f"results/c/features/efficientnet-lite0/{slide_id}.zarr" for slide_id in ids]

    assert planned_jobs(workdir, *features(slide_ids)) == {}
    time.sleep(0.05)
    (workdir / "results" / "c" / "patches" / "s05.zarr" / "retiled").write_text("")  # s05's patch store changed
    assert planned_jobs(workdir, *features(slide_ids)) == {f"embed_slides_c_{chunk_of['s05']}": 1}

    time.sleep(0.05)
    for store in (workdir / "results" / "c" / "features" / "efficientnet-lite0").iterdir():
        os.utime(store)  # s05's chunk embedded again
    (workdir / "slides" / "s12.svs").write_bytes(b"slide")
    (workdir / "results" / "c" / "patches" / "s12.zarr").mkdir()  # ... and a new slide tiled
    write_sheet([*slide_ids, "s12"])
    [new_chunk] = [chunk.index for chunk in embedding_chunks([*slide_ids, "s12"], 4) if "s12" in chunk.slide_ids]
    assert planned_jobs(workdir, *features([*slide_ids, "s12"])) == {f"embed_slides_c_{new_chunk}": 1}


def test_embedding_jobs_fork_their_decode_workers_before_timm_is_imported():
    """The workers are forked as soon as the job has read its patch stores; the model (timm) is built after, while
    they decode, so they never carry timm and the model's load overlaps the first slide's reads."""
    code = "import sys, mosare.features.embedding; print(sorted(m for m in ('timm', 'mosare.features.encoders') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
