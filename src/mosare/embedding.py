"""Patch embedding: a slide's patches (from its patch store) through an encoder into a feature store.

A DataLoader reads patches in worker processes - each worker opens its own ``Slide`` (OpenSlide handles are
never shared across processes) - and resizes them to the encoder's input as uint8. The main process moves
uint8 batches to the device (pinned memory, non-blocking copies on CUDA), normalises there and runs the model
under ``torch.inference_mode()``. Features are streamed to the store chunk by chunk, so memory does not grow
with the number of patches. A patch that fails to decode (a corrupt JPEG tile) is logged, recorded in the
store's ``failed_patches`` attr and dropped from both ``features`` and ``coords``; when more than
``max_failed_fraction`` of a slide's patches fail, the job fails naming the slide.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from mosare.encoders import Encoder, create_encoder, default_device, sha256_file
from mosare.resources import usable_cores
from mosare.slides import Slide, SlideReadError, open_slide
from mosare.stores import atomic_store, open_store
from mosare.weights_fingerprint import check_weights_unchanged, read_fingerprint

log = logging.getLogger(__name__)

# Rows per zarr chunk of the feature store; also the most rows the writer ever buffers.
CHUNK_ROWS = 1024
# glibc's mallopt parameter number for the mmap threshold, and the buffer size below which the heap serves.
M_MMAP_THRESHOLD = -3
HEAP_BUFFER_LIMIT_BYTES = 1 << 30
VERSIONED_PACKAGES = ("torch", "torchvision", "timm", "openslide-python", "openslide-bin", "zarr", "numpy")


class EmbeddingError(RuntimeError):
    """A slide cannot be embedded (e.g. too many undecodable patches); the message names the slide and the fix."""


@dataclass(frozen=True)
class PatchGrid:
    """What the patch store says about where and how to read a slide's patches."""

    slide_id: str
    slide_path: str
    coords: np.ndarray  # (N, 2) int64 level-0 x, y
    read_level: int
    read_px: int
    patch_px: int
    mpp_level0: float
    target_mpp: float


def read_patch_grid(patch_store: str | Path) -> PatchGrid:
    group = open_store(patch_store)
    attrs = group.attrs
    return PatchGrid(
        slide_id=str(attrs.get("slide_id", Path(patch_store).name.removesuffix(".zarr"))),
        slide_path=str(attrs["slide_path"]),
        coords=np.asarray(group["coords"][...], dtype=np.int64).reshape(-1, 2),
        read_level=int(attrs["read_level"]),
        read_px=int(attrs["read_px"]),
        patch_px=int(attrs["patch_px"]),
        mpp_level0=float(attrs["mpp_level0"]),
        target_mpp=float(attrs["target_mpp"]),
    )


class PatchDataset(Dataset):
    """A slide's patches as ``(index, uint8 (3, px, px) tensor, error message or "")``.

    The Slide is opened lazily in whichever process reads (each DataLoader worker gets its own) and
    reopened after a read error, because OpenSlide leaves a handle unusable once a tile fails to decode.
    """

    def __init__(self, grid: PatchGrid, resize_crop: Callable[[torch.Tensor], torch.Tensor], input_px: int) -> None:
        self.grid = grid
        self.resize_crop = resize_crop
        self.input_px = input_px
        self._slide: Slide | None = None
        self._slide_pid: int | None = None

    def __len__(self) -> int:
        return len(self.grid.coords)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_slide": None, "_slide_pid": None}

    def _open(self) -> Slide:
        if self._slide is None or self._slide_pid != os.getpid():
            # The patch store's mpp is authoritative here; reading patches does not depend on it.
            self._slide = open_slide(
                self.grid.slide_path, slide_id=self.grid.slide_id, mpp_override=self.grid.mpp_level0
            )
            self._slide_pid = os.getpid()
        return self._slide

    def close(self) -> None:
        if self._slide is not None and self._slide_pid == os.getpid():
            self._slide.close()
        self._slide = None

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor, str]:
        x, y = (int(v) for v in self.grid.coords[index])
        slide = self._open()
        try:
            patch = slide.read_patch(x, y, self.grid.read_level, self.grid.read_px, self.grid.patch_px)
        except SlideReadError as error:
            self.close()
            blank = torch.zeros((3, self.input_px, self.input_px), dtype=torch.uint8)
            return index, blank, str(error)
        return index, self.resize_crop(torch.from_numpy(patch).permute(2, 0, 1)), ""


class FeatureWriter:
    """Appends (coords, features) rows to a store's arrays, writing whole chunks as soon as they fill up.

    The arrays are pre-sized to the slide's patch count and trimmed by ``finish`` when patches failed.
    At most ``chunk_rows`` rows are held in memory at any time, whatever the slide size.
    """

    def __init__(self, group: zarr.Group, n_rows: int, dim: int, chunk_rows: int = CHUNK_ROWS) -> None:
        self.chunk_rows = chunk_rows
        chunk = max(1, min(chunk_rows, n_rows))
        self.features = group.create_array("features", shape=(n_rows, dim), dtype="float16", chunks=(chunk, dim))
        self.coords = group.create_array("coords", shape=(n_rows, 2), dtype="int64", chunks=(chunk, 2))
        self.rows_written = 0
        self._pending_coords: list[np.ndarray] = []
        self._pending_features: list[np.ndarray] = []

    @property
    def rows_buffered(self) -> int:
        return sum(len(rows) for rows in self._pending_features)

    def append(self, coords: np.ndarray, features: np.ndarray) -> None:
        self._pending_coords.append(np.asarray(coords, dtype=np.int64))
        self._pending_features.append(np.asarray(features, dtype=np.float16))
        if self.rows_buffered >= self.chunk_rows:
            self._flush(whole_chunks_only=True)

    def _flush(self, *, whole_chunks_only: bool) -> None:
        if not self._pending_features:
            return
        coords = np.concatenate(self._pending_coords)
        features = np.concatenate(self._pending_features)
        n = len(features) // self.chunk_rows * self.chunk_rows if whole_chunks_only else len(features)
        start, stop = self.rows_written, self.rows_written + n
        self.features[start:stop] = features[:n]
        self.coords[start:stop] = coords[:n]
        self.rows_written = stop
        release_free_heap_memory()
        self._pending_coords = [coords[n:]] if n < len(coords) else []
        self._pending_features = [features[n:]] if n < len(features) else []

    def finish(self) -> int:
        """Write what is left and drop the rows of failed patches; returns the number of rows."""
        self._flush(whole_chunks_only=False)
        if self.rows_written < self.features.shape[0]:
            self.features.resize((self.rows_written, self.features.shape[1]))
            self.coords.resize((self.rows_written, 2))
        return self.rows_written


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
    versions = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def patch_loader(dataset: PatchDataset, *, batch_size: int, num_workers: int, pin_memory: bool) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,  # rows must stay in patch-store order
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers > 0 else None,
    )


def embed_slide(
    patch_store: str | Path,
    output: str | Path,
    encoder: Encoder,
    *,
    batch_size: int = 64,
    num_workers: int = 2,
    max_failed_fraction: float = 0.01,
    chunk_rows: int = CHUNK_ROWS,
    weights_sha256: str | None = None,
) -> dict[str, Any]:
    """Embed every patch of ``patch_store`` with ``encoder`` into the feature store ``output``; returns its attrs.

    ``weights_sha256`` is the sha256 of ``encoder.weights_path`` already known (the workflow's fingerprint);
    without it the file is hashed here. Raises EmbeddingError naming the slide when more than
    ``max_failed_fraction`` of its patches fail to decode; the output is then not created.
    """
    reuse_batch_buffers()
    grid = read_patch_grid(patch_store)
    n_patches = len(grid.coords)
    allowed_failures = int(np.floor(max_failed_fraction * n_patches))
    dataset = PatchDataset(grid, encoder.resize_crop, encoder.input_px)
    on_cuda = encoder.device.type == "cuda"
    loader = patch_loader(dataset, batch_size=batch_size, num_workers=num_workers, pin_memory=on_cuda)
    failed: list[list[Any]] = []
    log.info(
        "slide %s: %d patches -> %s (%s, %d-d, %s on %s, batch %d, %d workers)",
        grid.slide_id, n_patches, output, encoder.name, encoder.dim, encoder.dtype_name, encoder.device,
        batch_size, num_workers,
    )
    with atomic_store(output) as group:
        writer = FeatureWriter(group, n_patches, encoder.dim, chunk_rows)
        progress = tqdm(total=n_patches, unit="patch", desc=grid.slide_id, mininterval=5.0, smoothing=0.1)
        try:
            for indices, images, errors in loader:
                ok = torch.tensor([not error for error in errors], dtype=torch.bool)
                for index, error in zip(indices[~ok].tolist(), (e for e in errors if e), strict=True):
                    x, y = (int(v) for v in grid.coords[index])
                    log.warning("slide %s: patch %d at level-0 (%d, %d) skipped: %s", grid.slide_id, index, x, y, error)
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
                    features = encoder.embed(batch).cpu().numpy()
                    writer.append(grid.coords[indices[ok].numpy()], features)
                progress.update(len(indices))
        finally:
            progress.close()
            dataset.close()
        n_rows = writer.finish()
        attrs = {
            "slide_id": grid.slide_id,
            "slide_path": grid.slide_path,
            "patch_store": str(patch_store),
            "encoder": encoder.name,
            "weights_path": encoder.weights_path,
            "weights_sha256": weights_sha256 or sha256_file(encoder.weights_path),
            "dim": encoder.dim,
            "input_px": encoder.input_px,
            "interpolation": encoder.interpolation.value,
            "mean": list(encoder.mean),
            "std": list(encoder.std),
            "dtype": encoder.dtype_name,
            "device": str(encoder.device),
            "mpp_level0": grid.mpp_level0,
            "target_mpp": grid.target_mpp,
            "patch_px": grid.patch_px,
            "n_patches": n_rows,
            "failed_patches": failed,
            "versions": package_versions(),
        }
        group.attrs.update(attrs)
    log.info("slide %s: %d features written, %d patches failed", grid.slide_id, n_rows, len(failed))
    return attrs


def embed_slide_with_config(
    patch_store: str | Path,
    output: str | Path,
    encoder_config: Mapping[str, Any],
    *,
    threads: int,
    weights_fingerprint: str | Path,
) -> dict[str, Any]:
    """``embed_slide`` with the config's ``encoder`` section, on CUDA when available, else on ``threads`` CPU threads.

    ``weights_fingerprint`` is the encoder's fingerprint file (``mosare.weights_fingerprint``): the weights loaded
    must still be the fingerprinted file (size and mtime; WeightsChangedError otherwise), and its sha256 is the one
    the store records, so no job hashes the weights again.
    """
    fingerprint = read_fingerprint(weights_fingerprint)
    device = default_device()
    if device.type == "cpu":
        torch.set_num_threads(usable_cores(threads))
    encoder = create_encoder(encoder_config["name"], checkpoint=encoder_config.get("checkpoint"), device=device)
    check_weights_unchanged(fingerprint, encoder.weights_path, weights_fingerprint)
    return embed_slide(
        patch_store,
        output,
        encoder,
        batch_size=int(encoder_config.get("batch_size", 64)),
        num_workers=int(encoder_config.get("num_workers", 2)),
        max_failed_fraction=float(encoder_config.get("max_failed_fraction", 0.01)),
        weights_sha256=fingerprint.sha256,
    )
