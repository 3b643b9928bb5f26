"""The per-slide feature store ``results/{cohort}/features/{encoder}/{slide_id}.zarr``: one typed contract, written
by the embedding stage (``mosare.features.embedding``, streamed chunk by chunk through :class:`FeatureAppender`) and
read only through :class:`FeatureStore` (GMM fit, cohort table and data, final models, attention).

Arrays ``features`` (N, D) float16 and ``coords`` (N, 2) int64, rows aligned with the patch store minus the patches
that failed to decode, zarr chunks of ``min(CHUNK_ROWS, N)`` rows. Attrs, in the order written: the fields of
:class:`EmbeddingRecord` with ``n_patches`` (rows written) before ``failed_patches``. The arrays are required; an attr
that a store lacks (one written otherwise than by the embedding stage) reads as None.

No torch: planning and light scripts import this.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from mosare.core.stores import StoreError, atomic_store, check_store, open_store
from mosare.slides.exclusion import SlideExclusion

FEATURES = "features"
COORDS = "coords"
N_PATCHES = "n_patches"
ARRAYS = (FEATURES, COORDS)
# Rows per zarr chunk; also the most rows the appender ever buffers.
CHUNK_ROWS = 1024
FIX = "delete the store and rerun the embedding for this slide"


class FeatureStoreError(StoreError):
    """A feature store lacks part of its contract or its arrays do not align; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class EmbeddingRecord:
    """How a slide's features were made (the store's attrs besides ``n_patches``), in the order written."""

    slide_id: str | None = None
    slide_path: str | None = None
    patch_store: str | None = None
    encoder: str | None = None
    weights_path: str | None = None
    weights_sha256: str | None = None
    dim: int | None = None
    input_px: int | None = None
    interpolation: str | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    dtype: str | None = None
    device: str | None = None
    mpp_level0: float | None = None
    target_mpp: float | None = None
    patch_px: int | None = None
    failed_patches: list[list[Any]] | None = None  # [x, y, error] of each patch that failed to decode
    versions: dict[str, str] | None = None

    def attrs(self, n_patches: int) -> dict[str, Any]:
        """The store's attrs as written: these fields in order, ``n_patches`` before ``failed_patches``."""
        attrs: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            if field.name == "failed_patches":
                attrs[N_PATCHES] = n_patches
            attrs[field.name] = getattr(self, field.name)
        return attrs

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> EmbeddingRecord:
        return cls(**{field.name: attrs.get(field.name) for field in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureStore:
    """One slide's patch features as stored: ``features`` (N, D) float16, ``coords`` (N, 2) int64 and how they were
    made (``record``)."""

    features: np.ndarray
    coords: np.ndarray
    record: EmbeddingRecord = EmbeddingRecord()

    @property
    def n_patches(self) -> int:
        return int(len(self.features))

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def write(self, path: str | Path, *, chunk_rows: int = CHUNK_ROWS) -> dict[str, Any]:
        """Write the store atomically, laid out as the embedding stage streams it; returns its attrs."""
        features = np.asarray(self.features, dtype=np.float16)
        if features.ndim != 2:
            raise ValueError(f"feature store {path}: features must be (N, D), not {features.shape}")
        with FeatureStore.appending(path, len(features), features.shape[1], chunk_rows=chunk_rows) as appender:
            appender.append(self.coords, features)
            return appender.finish(self.record)

    @staticmethod
    @contextlib.contextmanager
    def appending(
        path: str | Path,
        n_rows: int,
        dim: int,
        *,
        chunk_rows: int = CHUNK_ROWS,
        on_flush: Callable[[], None] | None = None,
    ) -> Iterator[FeatureAppender]:
        """A store at a temporary sibling of ``path`` to stream at most ``n_rows`` rows into; renamed into place
        once the body has called ``FeatureAppender.finish`` and left without an error (deleted otherwise)."""
        with atomic_store(path) as group:
            appender = FeatureAppender(group, n_rows, dim, chunk_rows, on_flush)
            yield appender
            if not appender.finished:
                raise RuntimeError(
                    f"feature store {path}: FeatureAppender.finish was not called; the store is not kept"
                )

    @classmethod
    def read(cls, path: str | Path) -> FeatureStore:
        """Read a finished store; a missing array or arrays that do not align is a ``FeatureStoreError`` naming the
        store and the fix."""
        group = open_store(path)
        _refuse_exclusion(group, path)
        check_store(group, path, kind="feature store", arrays=ARRAYS, fix=FIX, error=FeatureStoreError)
        features = np.asarray(group[FEATURES][...])
        coords = np.asarray(group[COORDS][...])
        if features.ndim != 2 or coords.shape != (len(features), 2):
            raise FeatureStoreError(
                f"feature store {path}: features {features.shape} and coords {coords.shape} do not align as (N, D) "
                f"and (N, 2); {FIX}"
            )
        attrs = dict(group.attrs)
        if N_PATCHES in attrs and int(attrs[N_PATCHES]) != len(features):
            raise FeatureStoreError(
                f"feature store {path} says {attrs[N_PATCHES]} rows but holds {len(features)}; {FIX}"
            )
        return cls(features, coords.astype(np.int64, copy=False), EmbeddingRecord.from_attrs(attrs))

    @staticmethod
    def read_record(path: str | Path) -> EmbeddingRecord:
        """How a finished store's features were made, without reading its arrays."""
        group = open_store(path)
        _refuse_exclusion(group, path)
        return EmbeddingRecord.from_attrs(dict(group.attrs))

    @staticmethod
    def count(path: str | Path) -> int:
        """Rows (patches) of a finished store, without reading its arrays; 0 for an excluded slide."""
        group = open_store(path)
        if SlideExclusion.from_attrs(group.attrs) is not None:
            return 0
        check_store(group, path, kind="feature store", arrays=(FEATURES,), fix=FIX, error=FeatureStoreError)
        return int(group[FEATURES].shape[0])


def _refuse_exclusion(group: zarr.Group, path: str | Path) -> None:
    exclusion = SlideExclusion.from_attrs(group.attrs)
    if exclusion is not None:
        raise FeatureStoreError(f"{exclusion.describe()}; {path} holds no features")


class FeatureAppender:
    """Appends (coords, features) rows to a store's arrays, writing whole chunks as soon as they fill up.

    The arrays are pre-sized to the slide's patch count and trimmed by ``finish`` when patches failed. At most
    ``chunk_rows`` rows are held in memory at any time, whatever the slide size. ``on_flush`` runs after each write
    (the embedding returns freed heap memory to the OS there).
    """

    def __init__(
        self,
        group: zarr.Group,
        n_rows: int,
        dim: int,
        chunk_rows: int = CHUNK_ROWS,
        on_flush: Callable[[], None] | None = None,
    ) -> None:
        self.group = group
        self.chunk_rows = chunk_rows
        self.on_flush = on_flush
        chunk = max(1, min(chunk_rows, n_rows))
        self.features = group.create_array(FEATURES, shape=(n_rows, dim), dtype="float16", chunks=(chunk, dim))
        self.coords = group.create_array(COORDS, shape=(n_rows, 2), dtype="int64", chunks=(chunk, 2))
        self.rows_written = 0
        self.finished = False
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
        if self.on_flush is not None:
            self.on_flush()
        self._pending_coords = [coords[n:]] if n < len(coords) else []
        self._pending_features = [features[n:]] if n < len(features) else []

    def finish(self, record: EmbeddingRecord) -> dict[str, Any]:
        """Write what is left, drop the rows of failed patches and write the attrs; returns them."""
        self._flush(whole_chunks_only=False)
        if self.rows_written < self.features.shape[0]:
            self.features.resize((self.rows_written, self.features.shape[1]))
            self.coords.resize((self.rows_written, 2))
        attrs = record.attrs(self.rows_written)
        self.group.update_attributes(attrs)  # one metadata write; attrs.update writes once per key
        self.finished = True
        return attrs
