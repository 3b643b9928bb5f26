"""The cohort's RNA store ``results/{cohort}/rna.zarr``: one typed contract, written by the RNA stage
(``mosare.features.expression``) and read only through :class:`RNAStore` (cohort table and data, final models,
deployment, the training summary).

Arrays ``patient_ids`` (P,) str, ``gene_ids`` (G,) str, ``values`` (P, G) float32 (zeros where absent), ``present``
(P,) bool; attrs ``log_transformed``, ``n_genes``, ``source`` (the matrix file, None without one). A cohort without
an RNA matrix has G = 0 and every ``present`` False. The arrays are required; an attr that a store lacks reads as
None.

No torch: planning and light scripts import this.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from mosare.core.stores import StoreError, check_store, open_store, write_store
from mosare.features.patient_stores import PATIENT_IDS, PRESENT, read_patient_presence, string_ids

GENE_IDS = "gene_ids"
VALUES = "values"
ARRAYS = (PATIENT_IDS, GENE_IDS, VALUES, PRESENT)
LOG_TRANSFORMED = "log_transformed"
N_GENES = "n_genes"
SOURCE = "source"
FIX = "delete it and rerun rule select_rna_genes for its cohort"


class RNAStoreError(StoreError):
    """An RNA store lacks part of its contract or its arrays disagree; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class RNAFeatures:
    """Every patient's expression, in the given patient order (zeros and ``present`` False without RNA)."""

    patient_ids: list[str]
    gene_ids: list[str]
    values: np.ndarray  # (P, G) float32, zeros where absent
    present: np.ndarray  # (P,) bool
    log_transformed: bool | None  # None: a store that does not say


@dataclasses.dataclass(frozen=True, eq=False)
class RNAStore:
    """A cohort's expression (``features``) and the matrix it was read from (``source``)."""

    features: RNAFeatures
    source: str | None = None

    def write(self, path: str | Path) -> None:
        """Write the store atomically (``mosare.core.stores.write_store``)."""
        features = self.features
        arrays = {
            PATIENT_IDS: np.array(features.patient_ids, dtype=str),
            GENE_IDS: np.array(features.gene_ids, dtype=str),
            VALUES: features.values,
            PRESENT: features.present,
        }
        attrs = {LOG_TRANSFORMED: features.log_transformed, N_GENES: len(features.gene_ids), SOURCE: self.source}
        write_store(path, arrays, attrs)

    @classmethod
    def read(cls, path: str | Path) -> RNAStore:
        """Read a finished store; a missing array or arrays that disagree in shape is an ``RNAStoreError`` naming the
        store and the fix."""
        group = open_store(path)
        check_store(group, path, kind="RNA store", arrays=ARRAYS, fix=FIX, error=RNAStoreError)
        patient_ids, gene_ids = string_ids(group[PATIENT_IDS][...]), string_ids(group[GENE_IDS][...])
        values, present = np.asarray(group[VALUES][...]), np.asarray(group[PRESENT][...]).astype(bool)
        if values.shape != (len(patient_ids), len(gene_ids)) or present.shape != (len(patient_ids),):
            raise RNAStoreError(
                f"RNA store {path}: values {values.shape} and present {present.shape} do not fit "
                f"{len(patient_ids)} patients x {len(gene_ids)} genes; it is damaged: {FIX}"
            )
        attrs = dict(group.attrs)
        features = RNAFeatures(patient_ids, gene_ids, values, present, attrs.get(LOG_TRANSFORMED))
        return cls(features, attrs.get(SOURCE))

    @staticmethod
    def read_presence(path: str | Path) -> tuple[list[str], np.ndarray]:
        """The store's patient ids and their (P,) bool ``present`` flags, without reading the values."""
        return read_patient_presence(path, kind="RNA store", fix=FIX, error=RNAStoreError)

    @staticmethod
    def read_gene_ids(path: str | Path) -> list[str]:
        """The store's gene ids in column order, without reading the values."""
        group = open_store(path)
        check_store(group, path, kind="RNA store", arrays=(GENE_IDS,), fix=FIX, error=RNAStoreError)
        return string_ids(group[GENE_IDS][...])

    @staticmethod
    def read_log_transformed(path: str | Path) -> bool | None:
        """Whether the store's values are log2(x + 1) of the matrix (None: the store does not say)."""
        return open_store(path).attrs.get(LOG_TRANSFORMED)
