"""Patch embedding: slides' patches (from their patch stores) through an encoder into feature stores.

One job embeds a chunk of slides (``mosare.features.embedding_chunks``) with the model loaded once. A DataLoader reads
patches in worker processes - each worker opens its own ``Slide`` (OpenSlide handles are never shared across
processes) - and resizes them to the encoder's input as uint8. Its batches run through the chunk's slides one
after another, each slide's rows cut into batches exactly as if it were embedded alone (the same rows reach
the model together, so its features are bit-identical), and the workers run ahead across slide boundaries:
while slide k is on the model, slide k+1's first batches are decoding. They start before the model is built,
forked before timm is imported, so they are small and the model's load overlaps the first decodes.

The main process moves uint8 batches to the device (pinned memory, non-blocking copies on CUDA), normalises
there and runs the model under ``torch.inference_mode()``. Features are streamed to each slide's store chunk by
chunk, so memory does not grow with the number of patches. A patch that fails to decode (a corrupt JPEG tile)
is logged, recorded in the store's ``failed_patches`` attr and dropped from both ``features`` and ``coords``;
when more than ``max_failed_fraction`` of a slide's patches fail, the slide is excluded (``slides.on_error:
exclude``, ``mosare.slides.exclusion``: its store becomes the record of why, and the chunk's other slides go on) or the
job fails naming the slide (``stop``). A slide excluded at tiling is passed on as excluded, without being read.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import logging
import math
import os
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from mosare.core.devices import resolve_device
from mosare.core.logs import slide_log
from mosare.core.resources import usable_cores
from mosare.features.encoder_specs import EncoderSpec, encoder_spec
from mosare.features.feature_store import CHUNK_ROWS, EmbeddingRecord, FeatureStore
from mosare.features.patch_preprocessing import spec_resize_crop
from mosare.features.weights_fingerprint import check_weights_unchanged, read_fingerprint, sha256_file
from mosare.slides.exclusion import EXCLUDE, STOP, SWITCH_HINT, SlideExclusion, check_on_error, exclude_slide
from mosare.slides.patch_store import PatchStore
from mosare.slides.reader import Slide, SlideReadError, open_slide

if TYPE_CHECKING:  # mosare.features.encoders imports timm, which the decode workers are forked without
    from mosare.features.encoders import Encoder

log = logging.getLogger(__name__)

# glibc's mallopt parameter number for the mmap threshold, and the buffer size below which the heap serves.
M_MMAP_THRESHOLD = -3
PR_SET_PDEATHSIG = 1  # Linux prctl: the signal a process gets when the thread that forked it dies
HEAP_BUFFER_LIMIT_BYTES = 1 << 30
VERSIONED_PACKAGES = ("torch", "torchvision", "timm", "openslide-python", "openslide-bin", "zarr", "numpy")


class EmbeddingError(RuntimeError):
    """A slide cannot be embedded (e.g. too many undecodable patches); the message names the slide and the fix."""


class PatchDataset(Dataset):
    """The patches of several slides, indexed by ``(slide, row)``, as ``(slide, row, uint8 (3, px, px), error or "")``.

    A Slide is opened lazily in whichever process reads (each DataLoader worker gets its own), one slide at a
    time, and reopened after a read error, because OpenSlide leaves a handle unusable once a tile fails to decode.
    """

    def __init__(self, grids: Sequence[PatchStore], resize_crop: Callable[[torch.Tensor], torch.Tensor], input_px: int):
        self.grids = list(grids)
        self.resize_crop = resize_crop
        self.input_px = input_px
        self._slide: Slide | None = None
        self._slide_index: int | None = None
        self._slide_pid: int | None = None

    def __len__(self) -> int:
        return sum(len(grid.coords) for grid in self.grids)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_slide": None, "_slide_index": None, "_slide_pid": None}

    def _open(self, slide_index: int) -> Slide:
        if self._slide is None or self._slide_index != slide_index or self._slide_pid != os.getpid():
            self.close()
            grid = self.grids[slide_index]
            # The patch store's mpp is authoritative here; reading patches does not depend on it.
            self._slide = open_slide(grid.slide_path, slide_id=grid.slide_id, mpp_override=grid.mpp_level0)
            self._slide_index, self._slide_pid = slide_index, os.getpid()
        return self._slide

    def close(self) -> None:
        if self._slide is not None and self._slide_pid == os.getpid():
            self._slide.close()
        self._slide = None

    def __getitem__(self, key: tuple[int, int]) -> tuple[int, int, torch.Tensor, str]:
        slide_index, row = key
        grid = self.grids[slide_index]
        x, y = (int(v) for v in grid.coords[row])
        slide = self._open(slide_index)
        try:
            patch = slide.read_patch(x, y, grid.read_level, grid.read_px, grid.patch_px)
        except SlideReadError as error:
            self.close()
            blank = torch.zeros((3, self.input_px, self.input_px), dtype=torch.uint8)
            return slide_index, row, blank, str(error)
        return slide_index, row, self.resize_crop(torch.from_numpy(patch).permute(2, 0, 1)), ""


def slide_batches(grids: Sequence[PatchStore], batch_size: int) -> list[list[tuple[int, int]]]:
    """Each slide's rows in batches of ``batch_size`` from its first row (its last batch shorter), slide after slide.

    No batch holds two slides' patches, so a slide's features do not depend on which slides share its job.
    """
    return [
        [(slide_index, row) for row in range(start, min(start + batch_size, len(grid.coords)))]
        for slide_index, grid in enumerate(grids)
        for start in range(0, len(grid.coords), batch_size)
    ]


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None  # not glibc (macOS, musl): their allocators behave differently


def reuse_batch_buffers() -> None:
    """Serve batch-sized buffers (activations of tens of MB) from glibc's heap, so they are reused batch after batch.

    By default glibc mmaps buffers above a threshold and unmaps them on free, so every layer of every batch
    page-faults its output in again: on efficientnet-lite0 that was about half the job's CPU time, in the kernel.
    ``release_free_heap_memory`` then hands freed pages back after each written chunk, which keeps memory flat
    in the number of patches (benchmarks/bench_embedding.py measures both).
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, HEAP_BUFFER_LIMIT_BYTES)


def release_free_heap_memory() -> None:
    """Return the heap's free pages to the OS (glibc ``malloc_trim``), so fragmentation never accumulates."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def package_versions() -> dict[str, str]:
    """Installed versions of ``VERSIONED_PACKAGES``, read once per process (each lookup parses a metadata file)."""
    return dict(_package_versions())


@functools.cache
def _package_versions() -> dict[str, str]:
    versions = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def forward_pieces(n_rows: int, piece_rows: int | None) -> list[int]:
    """Sizes of the pieces a batch of ``n_rows`` runs through the model in: ``piece_rows`` each, with the remainder
    joined to the last piece so that no piece is smaller (a batch under twice ``piece_rows`` stays whole)."""
    if piece_rows is None or n_rows < 2 * piece_rows:
        return [n_rows]
    sizes = [piece_rows] * (n_rows // piece_rows)
    sizes[-1] += n_rows % piece_rows
    return sizes


def embed_in_pieces(encoder: Encoder, images: torch.Tensor, piece_rows: int | None) -> np.ndarray:
    """``encoder.embed`` of a batch, run ``forward_pieces`` at a time (the batch's activations are never all live)."""
    pieces = torch.split(images, forward_pieces(len(images), piece_rows))
    return np.concatenate([encoder.embed(piece).cpu().numpy() for piece in pieces])


def die_with_the_job(job_pid: int, worker_id: int) -> None:
    """A decode worker's ``worker_init_fn``: the kernel SIGKILLs it when its job dies, even of a SIGKILL (Linux).

    PyTorch's own watchdog notes the worker's parent only after this runs, so a job killed while its workers were
    starting left them polling for work forever (found by tests/test_tiling_kill.py).
    """
    libc = _glibc()
    if libc is not None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != job_pid:  # the job died before the signal was armed
        os._exit(1)


def patch_loader(
    dataset: PatchDataset, *, batch_size: int, num_workers: int, pin_memory: bool, prefetch_batches: int = 4
) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=slide_batches(dataset.grids, batch_size),  # rows stay in patch-store order
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=prefetch_batches if num_workers > 0 else None,
        worker_init_fn=functools.partial(die_with_the_job, os.getpid()),
    )


@dataclass(frozen=True)
class PendingEncoder:
    """An encoder not built yet: its spec (enough for the decode workers' resizing) and how to build it."""

    spec: EncoderSpec
    load: Callable[[], Encoder]

    @property
    def resize_crop(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return spec_resize_crop(self.spec)


@dataclass(frozen=True)
class SlideJob:
    """One slide of a job: its patch store, the feature store to write and, optionally, its own log file."""

    patch_store: str | Path
    output: str | Path
    log: str | Path | None = None


def embed_slides(
    jobs: Sequence[SlideJob],
    encoder: Encoder | PendingEncoder,
    *,
    batch_size: int = 64,
    num_workers: int = 2,
    max_failed_fraction: float = 0.01,
    chunk_rows: int = CHUNK_ROWS,
    weights_sha256: str | None = None,
    forward_rows: int | None = None,
    on_error: str = STOP,
) -> list[dict[str, Any] | SlideExclusion]:
    """Embed every patch of each job's patch store into its feature store, slide after slide; returns their attrs,
    or the ``SlideExclusion`` written in place of the store of a slide left out.

    A ``PendingEncoder`` is built only once the decode workers have started, so loading the model overlaps the
    first slide's decoding. ``weights_sha256`` is the sha256 of the weights already known (the workflow's
    fingerprint); without it the file is hashed here. ``forward_rows`` (the spec's ``cpu_forward_rows``) runs the
    model on pieces of each batch on a CPU (``forward_pieces``); the batches, and so the features, stay the same.
    When more than ``max_failed_fraction`` of a slide's patches fail to decode, ``on_error`` ``exclude`` writes a
    ``SlideExclusion`` in its output's place and goes on; ``stop`` raises EmbeddingError naming the slide (that
    slide's output is then not created). A slide excluded at tiling gets its exclusion passed on in both modes.
    """
    check_on_error(on_error)
    reuse_batch_buffers()
    results: list[dict[str, Any] | SlideExclusion | None] = [None] * len(jobs)
    for index, job in enumerate(jobs):
        tiling_exclusion = SlideExclusion.read(job.patch_store)
        if tiling_exclusion is not None:
            with slide_log(job.log):
                tiling_exclusion.write(job.output)
                log.warning("%s; passed on to %s", tiling_exclusion.describe(), job.output)
            results[index] = tiling_exclusion
    embedded = [index for index, result in enumerate(results) if result is None]
    jobs = [jobs[index] for index in embedded]
    grids = [PatchStore.read(job.patch_store) for job in jobs]
    if isinstance(encoder, PendingEncoder):
        if encoder.spec.input_px is None:  # a timm architecture's input size is known once its model is built
            raise ValueError(f"encoder {encoder.spec.name!r}: build the model before embedding (input size unknown)")
        input_px = encoder.spec.input_px
    else:
        input_px = encoder.input_px
    dataset = PatchDataset(grids, encoder.resize_crop, input_px)
    device = resolve_device(None) if isinstance(encoder, PendingEncoder) else encoder.device
    loader = patch_loader(dataset, batch_size=batch_size, num_workers=num_workers, pin_memory=device.type == "cuda")
    batches = iter(loader)  # the workers start decoding here
    try:
        if isinstance(encoder, PendingEncoder):
            encoder = encoder.load()
        weights_sha256 = weights_sha256 or sha256_file(encoder.weights_path)
        for slide_index, (job, grid) in enumerate(zip(jobs, grids, strict=True)):
            n_batches = math.ceil(len(grid.coords) / batch_size)
            slide_batches = (next(batches) for _ in range(n_batches))
            with slide_log(job.log):
                try:
                    result: dict[str, Any] | SlideExclusion = _embed_one_slide(
                        job,
                        grid,
                        slide_index,
                        slide_batches,
                        encoder,
                        batch_size=batch_size,
                        num_workers=num_workers,
                        max_failed_fraction=max_failed_fraction,
                        chunk_rows=chunk_rows,
                        weights_sha256=weights_sha256,
                        forward_rows=None if device.type == "cuda" else forward_rows,
                    )
                except EmbeddingError as error:
                    if on_error != EXCLUDE:
                        raise EmbeddingError(f"{error}. {SWITCH_HINT}") from error
                    for _ in slide_batches:  # the loader runs across slides: the next slide starts at its own batch
                        pass
                    result = exclude_slide(
                        job.output, slide_id=grid.slide_id, slide_path=grid.slide_path, stage="embedding", error=error
                    )
            results[embedded[slide_index]] = result
        return [result for result in results if result is not None]
    finally:
        del batches  # stops the workers, also when a slide failed
        dataset.close()


def _embed_one_slide(
    job: SlideJob,
    grid: PatchStore,
    slide_index: int,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]],
    encoder: Encoder,
    *,
    batch_size: int,
    num_workers: int,
    max_failed_fraction: float,
    chunk_rows: int,
    weights_sha256: str,
    forward_rows: int | None,
) -> dict[str, Any]:
    n_patches = len(grid.coords)
    allowed_failures = int(np.floor(max_failed_fraction * n_patches))
    on_cuda = encoder.device.type == "cuda"
    failed: list[list[Any]] = []
    log.info(
        "slide %s: %d patches -> %s (%s, %d-d, %s on %s, batch %d, %d workers)",
        grid.slide_id,
        n_patches,
        job.output,
        encoder.name,
        encoder.dim,
        encoder.dtype_name,
        encoder.device,
        batch_size,
        num_workers,
    )
    with FeatureStore.appending(
        job.output, n_patches, encoder.dim, chunk_rows=chunk_rows, on_flush=release_free_heap_memory
    ) as writer:
        progress = tqdm(total=n_patches, unit="patch", desc=grid.slide_id, mininterval=5.0, smoothing=0.1)
        try:
            for slide_indices, rows, images, errors in batches:
                if slide_indices[0] != slide_index:  # cannot happen unless batching changes; never write it
                    raise RuntimeError(f"slide {grid.slide_id!r}: a batch of another slide reached its store")
                ok = torch.tensor([not error for error in errors], dtype=torch.bool)
                for row, error in zip(rows[~ok].tolist(), (e for e in errors if e), strict=True):
                    x, y = (int(v) for v in grid.coords[row])
                    log.warning("slide %s: patch %d at level-0 (%d, %d) skipped: %s", grid.slide_id, row, x, y, error)
                    failed.append([x, y, error])
                if len(failed) > allowed_failures:
                    raise EmbeddingError(
                        f"slide {grid.slide_id!r} ({grid.slide_path}): {len(failed)} of {n_patches} patches failed "
                        f"to decode, more than encoder.max_failed_fraction={max_failed_fraction} allows "
                        f"(first: {failed[0][2]}). The file is probably damaged: re-copy it from the scanner, "
                        "remove its row from the sample sheet, or raise encoder.max_failed_fraction in config.yaml"
                    )
                if ok.any():
                    # Indexing copies out of pinned memory, so only do it when a patch actually failed.
                    batch = (images if ok.all() else images[ok]).to(encoder.device, non_blocking=on_cuda)
                    writer.append(grid.coords[rows[ok].numpy()], embed_in_pieces(encoder, batch, forward_rows))
                progress.update(len(rows))
        finally:
            progress.close()
        attrs = writer.finish(
            EmbeddingRecord(
                slide_id=grid.slide_id,
                slide_path=grid.slide_path,
                patch_store=str(job.patch_store),
                encoder=encoder.name,
                weights_path=encoder.weights_path,
                weights_sha256=weights_sha256,
                dim=encoder.dim,
                input_px=encoder.input_px,
                interpolation=encoder.interpolation.value,
                mean=list(encoder.mean),
                std=list(encoder.std),
                dtype=encoder.dtype_name,
                device=str(encoder.device),
                mpp_level0=grid.mpp_level0,
                target_mpp=grid.target_mpp,
                patch_px=grid.patch_px,
                failed_patches=failed,
                versions=package_versions(),
            )
        )
    log.info("slide %s: %d features written, %d patches failed", grid.slide_id, writer.rows_written, len(failed))
    return attrs


def embed_slide(
    patch_store: str | Path, output: str | Path, encoder: Encoder, **options: Any
) -> dict[str, Any] | SlideExclusion:
    """``embed_slides`` for one slide (same options); returns its feature store's attrs (or its exclusion)."""
    return embed_slides([SlideJob(patch_store, output)], encoder, **options)[0]


def embed_slides_with_config(
    jobs: Sequence[SlideJob],
    encoder_config: Mapping[str, Any],
    *,
    threads: int,
    weights_fingerprint: str | Path,
    on_error: str = STOP,
) -> list[dict[str, Any] | SlideExclusion]:
    """``embed_slides`` with the config's ``encoder`` section and ``slides.on_error``, on CUDA when available, else on ``threads`` CPU threads.

    ``weights_fingerprint`` is the encoder's fingerprint file (``mosare.features.weights_fingerprint``): the weights loaded
    must still be the fingerprinted file (size and mtime; WeightsChangedError otherwise), and its sha256 is the one
    the stores record, so no job hashes the weights again.
    """
    fingerprint = read_fingerprint(weights_fingerprint)
    device = resolve_device(None)
    if device.type == "cpu":
        torch.set_num_threads(usable_cores(threads))
    spec = encoder_spec(encoder_config["name"])

    def load() -> Encoder:
        from mosare.features.encoders import create_encoder

        encoder = create_encoder(spec.name, checkpoint=encoder_config.get("checkpoint"), device=device)
        check_weights_unchanged(fingerprint, encoder.weights_path, weights_fingerprint)
        return encoder

    workers = encoder_config.get("num_workers")
    # A timm architecture's input size is known only once built; every registered spec states it.
    encoder = PendingEncoder(spec, load) if spec.input_px is not None else load()
    return embed_slides(
        jobs,
        encoder,
        batch_size=int(encoder_config.get("batch_size", 64)),
        num_workers=spec.decode_workers if workers is None else int(workers),
        max_failed_fraction=float(encoder_config.get("max_failed_fraction", 0.01)),
        weights_sha256=fingerprint.sha256,
        forward_rows=spec.cpu_forward_rows,
        on_error=on_error,
    )
