"""The cohort's report store ``results/{cohort}/text.zarr``: one typed contract, written by the report encoding
(``mosare.features.reports``) and read only through :class:`TextStore` (cohort table and data, final models, the
training summary).

Arrays ``patient_ids`` (P,) str, ``global`` (P, D) and ``local`` (P, C, D) float32, ``present`` (P,) bool,
``n_sentences`` (P,) int32; patients in sample-sheet order, absent ones hold zeros. Attrs, in the order written: the
fields of :class:`TextEncoding`. The arrays are required; an attr that a store lacks reads as None.

No torch: planning and light scripts import this.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from mosare.core.stores import StoreError, check_store, open_store, write_store
from mosare.features.patient_stores import PATIENT_IDS, PRESENT, read_patient_presence, string_ids

GLOBAL = "global"
LOCAL = "local"
N_SENTENCES = "n_sentences"
ARRAYS = (PATIENT_IDS, GLOBAL, LOCAL, PRESENT, N_SENTENCES)
FIX = "delete it and rerun rule encode_reports for its cohort"


class TextStoreError(StoreError):
    """A text store lacks part of its contract or its arrays disagree; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class TextFeatures:
    """Every patient's report features, in sample-sheet order (zeros and ``present`` False without a report)."""

    patient_ids: list[str]
    global_: np.ndarray  # (P, D) float32
    local: np.ndarray  # (P, C, D) float32
    present: np.ndarray  # (P,) bool
    n_sentences: np.ndarray  # (P,) int32


@dataclasses.dataclass(frozen=True)
class TextEncoding:
    """How the reports were encoded (the store's attrs), in the order written."""

    model: str | None = None
    model_path: str | None = None
    dim: int | None = None
    components: int | None = None
    max_seq_length: int | None = None
    leak_patterns: list[str] | None = None
    subtype_token: str | None = None
    drop_sections: list[str] | None = None

    def attrs(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> TextEncoding:
        return cls(**{field.name: attrs.get(field.name) for field in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True, eq=False)
class TextStore:
    """A cohort's report features (``features``) and how they were encoded (``encoding``)."""

    features: TextFeatures
    encoding: TextEncoding = TextEncoding()

    def write(self, path: str | Path) -> None:
        """Write the store atomically (``mosare.core.stores.write_store``)."""
        features = self.features
        arrays = {
            PATIENT_IDS: np.array(features.patient_ids, dtype=str),
            GLOBAL: features.global_,
            LOCAL: features.local,
            PRESENT: features.present,
            N_SENTENCES: features.n_sentences,
        }
        write_store(path, arrays, self.encoding.attrs())

    @classmethod
    def read(cls, path: str | Path) -> TextStore:
        """Read a finished store; a missing array or arrays of different lengths is a ``TextStoreError`` naming the
        store and the fix."""
        group = open_store(path)
        check_store(group, path, kind="text store", arrays=ARRAYS, fix=FIX, error=TextStoreError)
        patient_ids = string_ids(group[PATIENT_IDS][...])
        arrays = {name: np.asarray(group[name][...]) for name in ARRAYS[1:]}
        lengths = {name: len(values) for name, values in arrays.items()}
        if set(lengths.values()) != {len(patient_ids)}:
            raise TextStoreError(
                f"text store {path}: {len(patient_ids)} patient ids but array lengths {lengths}; it is damaged: {FIX}"
            )
        features = TextFeatures(
            patient_ids, arrays[GLOBAL], arrays[LOCAL], arrays[PRESENT].astype(bool), arrays[N_SENTENCES]
        )
        return cls(features, TextEncoding.from_attrs(dict(group.attrs)))

    @staticmethod
    def read_presence(path: str | Path) -> tuple[list[str], np.ndarray]:
        """The store's patient ids and their (P,) bool ``present`` flags, without reading the features."""
        return read_patient_presence(path, kind="text store", fix=FIX, error=TextStoreError)

    @staticmethod
    def read_encoding(path: str | Path) -> TextEncoding:
        """How a finished store's reports were encoded, without reading its arrays."""
        return TextEncoding.from_attrs(dict(open_store(path).attrs))
