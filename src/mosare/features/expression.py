"""RNA-seq: a cohort's genes x patients matrix -> log expression of every gene, per patient.

Only per-patient, label-free steps happen here (the log transform). Everything fitted across patients, the ``rna.top_genes`` most variable genes included, is
chosen later inside each training fold (:func:`mosare.training.fold_inputs.fit_normalisation`), so the test fold never
shapes it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from mosare.features.rna_store import RNAFeatures, RNAStore

log = logging.getLogger(__name__)

LogTransform = Literal["auto", True, False]
# "auto" treats a non-negative matrix as raw counts/TPM when its values exceed what log expression
# reaches (log2 of even 1e9 reads is ~30) or when every value is a whole number (counts).
RAW_MAX_THRESHOLD = 100.0
LISTED = 10  # offending items named in an error message before "and N more"


class RNAMatrixError(ValueError):
    """The expression matrix is unusable; the message names the file, the offending genes/patients and the fix."""


def _listing(items: Sequence[object]) -> str:
    shown = ", ".join(str(item) for item in items[:LISTED])
    return shown + (f" and {len(items) - LISTED} more" if len(items) > LISTED else "")


def read_expression_matrix(path: str | Path) -> pd.DataFrame:
    """Read a genes x patients matrix (TSV with ``gene_id`` first, or parquet with a ``gene_id`` column or index).

    Returns float64 values indexed by gene id, one column per patient. Duplicate gene ids, non-numeric
    cells and NaN/inf values are errors that list the offenders.
    """
    path = Path(path)
    if not path.exists():
        raise RNAMatrixError(f"RNA matrix {path} does not exist; fix cohorts.<name>.rna in config.yaml")
    if path.suffix.lower() in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
        if "gene_id" in frame.columns:
            frame = frame.set_index("gene_id")
    else:
        frame = pd.read_csv(path, sep="\t", index_col=0)
    frame.index = frame.index.astype(str)
    frame.columns = frame.columns.astype(str)
    duplicated = frame.index[frame.index.duplicated()].unique().tolist()
    if duplicated:
        raise RNAMatrixError(
            f"{path}: duplicate gene ids {_listing(duplicated)}; collapse them (e.g. sum counts per gene) so each "
            "gene id appears on one row"
        )
    numeric = frame.apply(pd.to_numeric, errors="coerce")
    not_numeric = [c for c in frame.columns if numeric[c].isna().sum() > frame[c].isna().sum()]
    if not_numeric:
        raise RNAMatrixError(
            f"{path}: non-numeric values in patient column(s) {_listing(not_numeric)}; the matrix must hold only "
            "numbers after the gene_id column"
        )
    values = numeric.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        genes = numeric.index[bad.any(axis=1)].tolist()
        patients = numeric.columns[bad.any(axis=0)].tolist()
        raise RNAMatrixError(
            f"{path}: {int(bad.sum())} NaN/inf value(s) in gene(s) {_listing(genes)} for patient(s) "
            f"{_listing(patients)}; impute or drop those genes, or drop a patient's column to mark RNA as missing"
        )
    return numeric.astype(np.float64)


def should_log_transform(values: np.ndarray, setting: LogTransform) -> bool:
    """Whether to apply log2(x + 1): ``auto`` says yes for non-negative values with max > 100 or all integers."""
    if setting is True or setting is False:
        return setting
    if values.size == 0 or values.min() < 0:
        return False
    return bool(values.max() > RAW_MAX_THRESHOLD or np.all(values == np.round(values)))


def misspelled_patient_columns(
    columns: Sequence[str], patient_ids: Sequence[str], matrix_columns: set[str]
) -> dict[str, str]:
    """Column -> the patient id it differs from only by case or surrounding whitespace, for ``columns`` that
    would leave a cohort patient without RNA (patients with an exactly matching column are not listed)."""
    unmatched = {pid.strip().casefold(): pid for pid in patient_ids if pid not in matrix_columns}
    return {
        column: unmatched[column.strip().casefold()] for column in columns if column.strip().casefold() in unmatched
    }


def select_rna_features(
    matrix: pd.DataFrame | None,
    patient_ids: Sequence[str],
    *,
    log_transform: LogTransform = "auto",
    source: str = "RNA matrix",
) -> RNAFeatures:
    """Per-patient log expression of every gene for ``patient_ids`` (cohort order), genes in the matrix's row order.

    ``matrix`` is genes x patients (see :func:`read_expression_matrix`); ``None`` means the cohort has no RNA.
    Patients in the matrix but not in the cohort are ignored (and logged); cohort patients missing from it get
    zeros and ``present`` False.
    """
    patient_ids = list(patient_ids)
    if matrix is None:
        log.info("no RNA matrix configured: all %d patients have RNA marked absent", len(patient_ids))
        return RNAFeatures(
            patient_ids, [], np.zeros((len(patient_ids), 0), np.float32), np.zeros(len(patient_ids), bool), False
        )
    cohort_ids = set(patient_ids)
    extra = [column for column in matrix.columns if column not in cohort_ids]
    near_misses = misspelled_patient_columns(extra, patient_ids, set(matrix.columns))
    if near_misses:
        listed = _listing([f"{column!r} (patient {pid!r})" for column, pid in near_misses.items()])
        raise RNAMatrixError(
            f"{source}: column(s) {listed} differ from a sample-sheet patient_id only by letter case or surrounding "
            "spaces, so those patients would silently have no RNA; rename each column to the exact patient_id"
        )
    if extra:
        log.info("%s: ignoring %d column(s) not in the sample sheet: %s", source, len(extra), _listing(sorted(extra)))
    present = np.array([pid in matrix.columns for pid in patient_ids])
    cohort = matrix[[pid for pid in patient_ids if pid in matrix.columns]]
    if cohort.shape[1] == 0:
        raise RNAMatrixError(
            f"{source}: none of its {matrix.shape[1]} patient columns match the sample sheet's patient ids "
            f"(e.g. {_listing(patient_ids[:3])}); the column headers must be patient_id values"
        )
    values = cohort.to_numpy()
    if log_transform is True and values.min() < 0:
        negative = cohort.index[(values < 0).any(axis=1)].tolist()
        raise RNAMatrixError(
            f"{source}: rna.log_transform is true but gene(s) {_listing(negative)} have negative values (already "
            "log-scaled?); set rna.log_transform to false or auto"
        )
    transformed = should_log_transform(values, log_transform)
    if transformed:
        cohort = np.log2(cohort + 1.0)
    genes = cohort.index.tolist()
    out = np.zeros((len(patient_ids), len(genes)), np.float32)
    out[present] = cohort.loc[genes].to_numpy().T.astype(np.float32)
    log.info(
        "%s: %d genes stored, log2(x+1) %s, RNA present for %d/%d patients; rna.top_genes are chosen inside each "
        "training fold",
        source,
        len(genes),
        "applied" if transformed else "not applied",
        int(present.sum()),
        len(patient_ids),
    )
    return RNAFeatures(patient_ids, genes, out, present, transformed)


def build_rna_store(
    matrix_path: str | Path | None, patient_ids: Sequence[str], rna_config: dict, out_path: str | Path
) -> RNAFeatures:
    """Read the matrix (if any), log-transform it per ``rna_config["log_transform"]`` and write the store."""
    matrix = read_expression_matrix(matrix_path) if matrix_path else None
    features = select_rna_features(
        matrix,
        patient_ids,
        log_transform=rna_config.get("log_transform", "auto"),
        source=str(matrix_path),
    )
    RNAStore(features, source=str(matrix_path) if matrix_path else None).write(out_path)
    return features
