"""What the per-patient stores (text, RNA) share: their patient ids and presence flags, named and read once."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mosare.core.stores import StoreError, check_store, open_store

PATIENT_IDS = "patient_ids"
PRESENT = "present"


def string_ids(values: np.ndarray) -> list[str]:
    """Ids as Python strings (zarr string arrays come as numpy StringDType)."""
    return [str(value) for value in np.asarray(values).tolist()]


def read_patient_presence(
    path: str | Path, *, kind: str, fix: str, error: type[StoreError]
) -> tuple[list[str], np.ndarray]:
    """A per-patient store's patient ids and their (P,) bool ``present`` flags, without reading its values."""
    group = open_store(path)
    check_store(group, path, kind=kind, arrays=(PATIENT_IDS, PRESENT), fix=fix, error=error)
    return string_ids(group[PATIENT_IDS][...]), np.asarray(group[PRESENT][...]).astype(bool)
