"""Zarr stores written atomically: a job that dies never leaves a store that looks complete.

Every store is first built at a hidden temporary sibling naming its writer (``.<name>.tmp-<host>-...-<pid>-...``,
:mod:`mosare.core.atomic_files`) and renamed into place only after everything (arrays and attrs) is written. A rename
within one directory is atomic on POSIX. The next write of a store removes what dead writers of it left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from mosare.core.atomic_files import remove_stale_temporaries, temporary_sibling

# Snakemake marks finished directory() outputs with a `.snakemake_timestamp` file; inside a zarr store that file is
# harmless, but zarr warns about it every time the group is listed.
warnings.filterwarnings("ignore", message=r"Object at \.snakemake_timestamp is not recognized", category=UserWarning)


@contextlib.contextmanager
def atomic_store(path: str | Path) -> Iterator[zarr.Group]:
    """Yield a writable zarr group at a temporary path; rename it to ``path`` on success.

    On any exception the temporary store is deleted and ``path`` is left untouched (an older
    complete store stays where it was).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = temporary_sibling(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        yield group
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        # Move the old store aside in one rename before deleting it: a job killed while deleting in place left a
        # half-deleted store at `path` (found by tests/test_tiling_kill.py).
        old = tmp.with_name(f"{tmp.name}-old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)


def write_store(path: str | Path, arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any] | None = None) -> None:
    """Write in-memory ``arrays`` and JSON-serialisable ``attrs`` to a new store at ``path`` atomically."""
    with atomic_store(path) as group:
        for name, values in arrays.items():
            values = np.asarray(values)
            if values.dtype.kind in "OU":
                # Variable-length strings (ids) are stored as zarr string arrays.
                array = group.create_array(name, shape=values.shape, dtype=str, overwrite=True)
                array[...] = values.astype(str)
            else:
                group.create_array(name, data=values, overwrite=True)
        group.update_attributes(dict(attrs or {}))  # one metadata write; attrs.update writes once per key


def open_store(path: str | Path) -> zarr.Group:
    """Open a finished store read-only, with an error that names the file when it is missing."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"zarr store {path} does not exist; run the stage that writes it first")
    return zarr.open_group(str(path), mode="r")


class StoreError(ValueError):
    """A store lacks part of its contract or contradicts itself; the message names the store and the fix."""


def check_store(
    group: zarr.Group,
    path: str | Path,
    *,
    kind: str,
    arrays: Sequence[str],
    attrs: Sequence[str] = (),
    fix: str,
    error: type[StoreError] = StoreError,
) -> None:
    """Raise ``error`` naming the ``kind`` of store, its ``path``, what it lacks and the ``fix`` when ``group`` lacks
    one of ``arrays`` or ``attrs``."""
    missing = [name for name in arrays if name not in group] + [name for name in attrs if name not in group.attrs]
    if missing:
        raise error(
            f"{kind} {path} lacks {', '.join(missing)}; it is incomplete or was written by another version of the "
            f"workflow: {fix}"
        )
