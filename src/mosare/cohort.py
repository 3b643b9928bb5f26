"""The cohort table training reads: per patient, label, slide ids and which modalities really exist.

A patient whose slides all yielded no patches, who is absent from the RNA matrix or who has no usable report is
known here, before training, and is handled by the same masks as the simulated missing modalities.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from mosare.atomic_files import atomic_file
from mosare.stores import open_store

log = logging.getLogger(__name__)

MODALITIES = ("wsi", "rna", "text")
COLUMNS = ("patient_id", "label", "slide_ids", *(f"has_{m}" for m in MODALITIES))


class CohortError(ValueError):
    """The stages' outputs disagree about the cohort; the message names the store and the patients."""


def sheet_patient_labels(sheet: pd.DataFrame, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Patient ids and their labels as indices into ``classes``, one per patient in sheet order (as in cohort.tsv)."""
    labels = sheet.groupby("patient_id", sort=False)["label"].first()
    index = {name: i for i, name in enumerate(classes)}
    return labels.index.to_numpy(dtype=str), labels.map(index).to_numpy(dtype=np.int64)


def slide_patch_count(store_path: str | Path) -> int:
    """Number of patches in a slide's feature store (``features`` rows) or patch store (``n_patches``)."""
    store = open_store(store_path)
    if "features" in store:
        return int(store["features"].shape[0])
    if "n_patches" in store.attrs:
        return int(store.attrs["n_patches"])
    return int(store["coords"].shape[0])


def store_presence(store_path: str | Path, patient_ids: list[str]) -> np.ndarray:
    """The ``present`` mask of a per-patient store (text or RNA), reordered to ``patient_ids``."""
    store = open_store(store_path)
    ids = [str(pid) for pid in store["patient_ids"][:].tolist()]
    stored = pd.Series(np.asarray(store["present"][:], bool), index=ids)
    missing = [pid for pid in patient_ids if pid not in stored.index]
    if missing:
        raise CohortError(
            f"{store_path} lacks patient(s) {', '.join(missing[:10])} of the sample sheet; it was built from "
            "another sheet - delete it and rerun its rule"
        )
    return stored.loc[patient_ids].to_numpy(bool)


def assemble_cohort(
    sheet: pd.DataFrame,
    slide_stores: Mapping[str, str | Path],
    text_store: str | Path,
    rna_store: str | Path,
) -> pd.DataFrame:
    """One row per patient (sheet order): label, comma-joined slide ids and has_wsi/has_rna/has_text.

    ``slide_stores`` maps each slide id to its feature (or patch) store; a patient has WSI when at least one
    of its slides has a patch.
    """
    patches = {slide: slide_patch_count(path) for slide, path in slide_stores.items()}
    rows = []
    for pid, group in sheet.groupby("patient_id", sort=False):
        slides = group["slide_id"].astype(str).tolist()
        rows.append(
            {
                "patient_id": str(pid),
                "label": str(group["label"].iloc[0]),
                "slide_ids": ",".join(slides),
                "has_wsi": any(patches.get(slide, 0) > 0 for slide in slides),
            }
        )
    table = pd.DataFrame(rows)
    patient_ids = table["patient_id"].tolist()
    table["has_rna"] = store_presence(rna_store, patient_ids)
    table["has_text"] = store_presence(text_store, patient_ids)
    empty = [slide for slide, n in patches.items() if n == 0]
    if empty:
        log.warning("%d slide(s) without patches: %s", len(empty), ", ".join(empty))
    return table[list(COLUMNS)]


def modality_combination(table: pd.DataFrame) -> pd.Series:
    """Per patient, the present modalities joined by '+' ('none' when nothing is present)."""
    flags = table[[f"has_{m}" for m in MODALITIES]].to_numpy(bool)
    return pd.Series(
        ["+".join(m for m, flag in zip(MODALITIES, row) if flag) or "none" for row in flags], index=table.index
    )


def presence_summary(table: pd.DataFrame) -> str:
    """Counts of patients per modality and per combination of present modalities, for the log."""
    total = len(table)
    lines = [f"{total} patients; " + ", ".join(f"{m}: {int(table[f'has_{m}'].sum())}/{total}" for m in MODALITIES)]
    combos = modality_combination(table)
    for combo, count in combos.value_counts().items():
        lines.append(f"  {combo}: {count}")
    none = table.loc[combos == "none", "patient_id"].tolist()
    if none:
        lines.append(f"  patients with no modality at all (they cannot be classified): {', '.join(none)}")
    return "\n".join(lines)


def write_cohort_table(table: pd.DataFrame, path: str | Path) -> None:
    """Write the cohort TSV atomically (temp file + rename)."""
    with atomic_file(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)


def build_cohort_table(
    sheet: pd.DataFrame,
    slide_stores: Mapping[str, str | Path],
    text_store: str | Path,
    rna_store: str | Path,
    out_path: str | Path,
) -> pd.DataFrame:
    """Assemble, log the modality summary and write ``results/{cohort}/cohort.tsv``."""
    table = assemble_cohort(sheet, slide_stores, text_store, rna_store)
    log.info("modality presence:\n%s", presence_summary(table))
    write_cohort_table(table, out_path)
    return table
