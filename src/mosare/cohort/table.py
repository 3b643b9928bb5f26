"""The cohort table training reads: per patient, label (or time and event), slide ids and which modalities really
exist.

A patient whose slides all yielded no patches, who is absent from the RNA matrix or who has no usable report is
known here, before training, and is handled by the same masks as the simulated missing modalities.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mosare.core.atomic_files import write_tsv
from mosare.core.modalities import MODALITIES
from mosare.core.samples import patient_sites
from mosare.features.feature_store import FeatureStore
from mosare.features.rna_store import RNAStore
from mosare.features.text_store import TextStore

log = logging.getLogger(__name__)

FLAG_COLUMNS = tuple(f"has_{m}" for m in MODALITIES)
COLUMNS = ("patient_id", "label", "slide_ids", *FLAG_COLUMNS)
SITE_COLUMN = "site"  # optional: written when the sample sheet gives the patients' sites
# Optional: a survival cohort's outcome (its label is empty), after the site.
TIME_COLUMN, EVENT_COLUMN = "time", "event"
FLAG_TEXT = {True: "True", False: "False"}
EVENT_TEXT = {True: "1", False: "0"}


class CohortError(ValueError):
    """The stages' outputs disagree about the cohort; the message names the store and the patients."""


@dataclasses.dataclass(frozen=True, eq=False)
class CohortTable:
    """``results/{cohort}/cohort.tsv``: one row per patient in sample-sheet order; read and written only here.

    ``present`` (P, 3) bool: which modalities each patient really has, columns in ``MODALITIES`` order. ``sites``:
    each patient's tissue source site (:func:`~mosare.core.samples.patient_sites`), None when the sheet gives none.
    ``times`` (P,) float64 (>= 0) and ``events`` (P,) bool (True = event observed, False = censored): a survival
    cohort's outcome, whose ``labels`` are then all empty; both None for a classification cohort.
    On disk: columns ``patient_id, label, slide_ids`` (comma-joined, empty for none), ``has_wsi, has_rna, has_text``
    (``True``/``False``), then ``site`` when the sites are known, then ``time`` and ``event`` (``1``/``0``) for a
    survival cohort.
    """

    patient_ids: tuple[str, ...]
    labels: tuple[str, ...]
    slide_ids: tuple[tuple[str, ...], ...]
    present: np.ndarray
    sites: tuple[str, ...] | None = None
    times: np.ndarray | None = None
    events: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.patient_ids)
        if not (len(self.labels) == len(self.slide_ids) == n and self.present.shape == (n, len(MODALITIES))):
            raise ValueError(
                f"a cohort table needs one label, slide list and {len(MODALITIES)} presence flags per patient: "
                f"{n} patients, {len(self.labels)} labels, {len(self.slide_ids)} slide lists, present "
                f"{self.present.shape}"
            )
        if self.sites is not None and (len(self.sites) != n or not all(self.sites)):
            raise ValueError(f"a cohort table's sites name one site per patient: {n} patients, sites {self.sites}")
        if (self.times is None) != (self.events is None):
            raise ValueError("a survival cohort table needs both times and events (a classification one neither)")
        if self.times is not None and self.events is not None:
            times = np.asarray(self.times, dtype=np.float64)
            events = np.asarray(self.events)
            if times.shape != (n,) or events.shape != (n,):
                raise ValueError(
                    f"a cohort table needs one time and one event per patient: {n} patients, times {times.shape}, "
                    f"events {events.shape}"
                )
            if not (np.isfinite(times).all() and (times >= 0).all() and np.isin(events, (0, 1)).all()):
                raise ValueError("a cohort table's times must be finite and >= 0, its events 0/1 or bool")
            if any(self.labels):
                raise ValueError("a survival cohort table's labels are empty: its outcome is the times and events")
            object.__setattr__(self, "times", times)
            object.__setattr__(self, "events", events.astype(bool))

    @property
    def is_survival(self) -> bool:
        """Whether the table holds a survival outcome (times and events) rather than labels."""
        return self.times is not None

    def __len__(self) -> int:
        return len(self.patient_ids)

    def has(self, modality: str) -> np.ndarray:
        """(P,) bool: which patients have ``modality`` (one of ``MODALITIES``)."""
        return self.present[:, MODALITIES.index(modality)]

    def to_frame(self) -> pd.DataFrame:
        """The table as written: one row per patient, the columns of ``COLUMNS`` (and ``site`` when known)."""
        frame = pd.DataFrame(
            {"patient_id": self.patient_ids, "label": self.labels, "slide_ids": [",".join(s) for s in self.slide_ids]},
            columns=list(COLUMNS[:3]),
        )
        for column, flags in zip(FLAG_COLUMNS, self.present.T):
            frame[column] = flags.astype(bool)
        if self.sites is not None:
            frame[SITE_COLUMN] = list(self.sites)
        if self.times is not None and self.events is not None:
            frame[TIME_COLUMN] = self.times
            frame[EVENT_COLUMN] = self.events.astype(np.int64)
        return frame

    def write(self, path: str | Path) -> None:
        """Write the TSV atomically (temp file + rename)."""
        frame = self.to_frame()
        for column in FLAG_COLUMNS:
            frame[column] = frame[column].map(FLAG_TEXT)
        write_tsv(frame, path)

    @classmethod
    def read(cls, path: str | Path, classes: Sequence[str] | None = None) -> CohortTable:
        """Read a cohort table; a missing column, a flag other than True/False or (given ``classes``) an unknown
        label is an error naming the file, the rows and the fix. A survival cohort's table (``time`` and ``event``
        columns; read without ``classes``) gives typed ``times`` and ``events``; a bad time or event, or a label
        beside them, is an error too."""
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        missing = [column for column in COLUMNS if column not in frame.columns]
        if missing:
            raise CohortError(f"{path} lacks column(s) {', '.join(missing)}; rerun rule assemble_cohort")
        flags = {}
        for column in FLAG_COLUMNS:
            parsed = frame[column].map({text: flag for flag, text in FLAG_TEXT.items()})
            if parsed.isna().any():
                bad = frame.loc[parsed.isna(), column]
                listed = "; ".join(f"line {i + 2}: {v!r}" for i, v in bad.items())
                raise CohortError(f"{path}: '{column}' must be True or False ({listed}); rerun rule assemble_cohort")
            flags[column] = parsed.to_numpy(bool)
        survival = _read_survival(frame, path, classes)
        if classes is not None and survival is None:
            unknown = sorted(set(frame["label"]) - set(classes))
            if unknown:
                raise CohortError(
                    f"{path}: labels {unknown} are not among the cohort's classes {list(classes)}; "
                    "fix the sample sheet or the cohort's 'classes' in the workflow configuration"
                )
        if SITE_COLUMN in frame.columns and (frame[SITE_COLUMN] == "").any():
            lines = ", ".join(str(i + 2) for i in frame.index[frame[SITE_COLUMN] == ""])
            raise CohortError(f"{path}: 'site' is empty on line(s) {lines}; rerun rule assemble_cohort")
        return cls(
            patient_ids=tuple(frame["patient_id"]),
            labels=tuple(frame["label"]),
            slide_ids=tuple(tuple(s for s in ids.split(",") if s) for ids in frame["slide_ids"]),
            present=np.stack([flags[column] for column in FLAG_COLUMNS], axis=1).reshape(len(frame), len(MODALITIES)),
            sites=tuple(frame[SITE_COLUMN]) if SITE_COLUMN in frame.columns else None,
            times=None if survival is None else survival[0],
            events=None if survival is None else survival[1],
        )


def _read_survival(
    frame: pd.DataFrame, path: str | Path, classes: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """(times float64, events bool) of a survival cohort's table as read (strings), None for a classification one."""
    columns = [column for column in (TIME_COLUMN, EVENT_COLUMN) if column in frame.columns]
    if not columns:
        return None
    fix = "rerun rule assemble_cohort"
    if len(columns) == 1:
        lacking = EVENT_COLUMN if columns == [TIME_COLUMN] else TIME_COLUMN
        raise CohortError(f"{path} has '{columns[0]}' but lacks '{lacking}'; {fix}")
    if classes is not None:
        raise CohortError(
            f"{path} is a survival cohort's table (time and event), but it was read as a classification cohort's, "
            f"with classes {list(classes)}; the cohort's task changed since it was written: {fix}"
        )
    times = pd.to_numeric(frame[TIME_COLUMN], errors="coerce").to_numpy(np.float64)
    bad_time = ~np.isfinite(times) | (times < 0)
    bad_event = ~frame[EVENT_COLUMN].isin(list(EVENT_TEXT.values())).to_numpy(bool)
    labelled = (frame["label"] != "").to_numpy(bool)
    for bad, column, rule in (
        (bad_time, TIME_COLUMN, "must be a number >= 0"),
        (bad_event, EVENT_COLUMN, "must be 1 or 0"),
        (labelled, "label", "must be empty beside time and event"),
    ):
        if bad.any():
            listed = "; ".join(f"line {i + 2}: {frame.at[i, column]!r}" for i in np.flatnonzero(bad))
            raise CohortError(f"{path}: '{column}' {rule} ({listed}); {fix}")
    return times, (frame[EVENT_COLUMN] == EVENT_TEXT[True]).to_numpy(bool)


def sheet_patient_labels(sheet: pd.DataFrame, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Patient ids and their labels as indices into ``classes``, one per patient in sheet order (as in cohort.tsv)."""
    labels = sheet.groupby("patient_id", sort=False)["label"].first()
    index = {name: i for i, name in enumerate(classes)}
    return labels.index.to_numpy(dtype=str), labels.map(index).to_numpy(dtype=np.int64)


def sheet_patient_survival(sheet: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patient ids, times (float64) and events (bool, True = event observed), one per patient in sheet order (as in
    cohort.tsv), of a survival sheet (``load_sample_sheet(..., task="survival")``: one time and event per patient)."""
    missing = [column for column in (TIME_COLUMN, EVENT_COLUMN) if column not in sheet.columns]
    if missing:
        raise ValueError(f"not a survival sample sheet: it lacks {', '.join(missing)} (load it with task='survival')")
    outcome = sheet.groupby("patient_id", sort=False)[[TIME_COLUMN, EVENT_COLUMN]].first()
    return (
        outcome.index.to_numpy(dtype=str),
        outcome[TIME_COLUMN].to_numpy(np.float64),
        outcome[EVENT_COLUMN].to_numpy(np.float64) == 1.0,
    )


def sheet_patient_sites(sheet: pd.DataFrame) -> tuple[str, ...] | None:
    """Each patient's site, one per patient in sheet order (as in cohort.tsv), or None when the sheet gives none
    (:func:`~mosare.core.samples.patient_sites`: the site column, else TCGA barcodes)."""
    sites = patient_sites(sheet)
    return None if sites is None else tuple(sites[pid] for pid in dict.fromkeys(sheet["patient_id"].astype(str)))


def store_presence(store_path: str | Path, stored: tuple[list[str], np.ndarray], patient_ids: list[str]) -> np.ndarray:
    """The ``present`` flags of a per-patient store (text or RNA: its ``read_presence``), reordered to
    ``patient_ids``."""
    ids, present = stored
    flags = pd.Series(present, index=ids)
    missing = [pid for pid in patient_ids if pid not in flags.index]
    if missing:
        raise CohortError(
            f"{store_path} lacks patient(s) {', '.join(missing[:10])} of the sample sheet; it was built from "
            "another sheet - delete it and rerun its rule"
        )
    return flags.loc[patient_ids].to_numpy(bool)


def assemble_cohort(
    sheet: pd.DataFrame,
    slide_stores: Mapping[str, str | Path],
    text_store: str | Path,
    rna_store: str | Path,
) -> CohortTable:
    """One row per patient (sheet order): label, slide ids and which modalities are present.

    ``slide_stores`` maps each slide id to its feature store; a patient has WSI when at least one of its slides
    has a patch. A survival sheet (``time`` and ``event`` columns, no ``label``) gives each patient's time and event
    (:func:`sheet_patient_survival`) and an empty label.
    """
    patches = {slide: FeatureStore.count(path) for slide, path in slide_stores.items()}
    groups = list(sheet.groupby("patient_id", sort=False))
    patient_ids = [str(pid) for pid, _ in groups]
    slide_ids = [tuple(slide for slide in group["slide_id"].astype(str) if slide) for _, group in groups]
    has_wsi = np.array([any(patches.get(slide, 0) > 0 for slide in slides) for slides in slide_ids], dtype=bool)
    present = {
        "wsi": has_wsi,
        "rna": store_presence(rna_store, RNAStore.read_presence(rna_store), patient_ids),
        "text": store_presence(text_store, TextStore.read_presence(text_store), patient_ids),
    }
    empty = [slide for slide, n in patches.items() if n == 0]
    if empty:
        log.warning("%d slide(s) without patches: %s", len(empty), ", ".join(empty))
    survival = sheet_patient_survival(sheet) if TIME_COLUMN in sheet.columns else None
    return CohortTable(
        patient_ids=tuple(patient_ids),
        labels=("",) * len(groups)
        if survival is not None
        else tuple(str(group["label"].iloc[0]) for _, group in groups),
        slide_ids=tuple(slide_ids),
        present=np.stack([present[m] for m in MODALITIES], axis=1).reshape(len(groups), len(MODALITIES)),
        sites=sheet_patient_sites(sheet),
        times=None if survival is None else survival[1],
        events=None if survival is None else survival[2],
    )


def modality_combination(table: CohortTable) -> list[str]:
    """Per patient, the present modalities joined by '+' ('none' when nothing is present)."""
    return ["+".join(m for m, flag in zip(MODALITIES, row) if flag) or "none" for row in table.present]


def presence_summary(table: CohortTable) -> str:
    """Counts of patients per modality and per combination of present modalities, for the log."""
    total = len(table)
    lines = [f"{total} patients; " + ", ".join(f"{m}: {int(table.has(m).sum())}/{total}" for m in MODALITIES)]
    combos = pd.Series(modality_combination(table), dtype=object)
    for combo, count in combos.value_counts().items():
        lines.append(f"  {combo}: {count}")
    none = [pid for pid, combo in zip(table.patient_ids, combos) if combo == "none"]
    if none:
        lines.append(f"  patients with no modality at all (they cannot be classified): {', '.join(none)}")
    return "\n".join(lines)


def build_cohort_table(
    sheet: pd.DataFrame,
    slide_stores: Mapping[str, str | Path],
    text_store: str | Path,
    rna_store: str | Path,
    out_path: str | Path,
) -> CohortTable:
    """Assemble, log the modality summary and write ``results/{cohort}/cohort.tsv``."""
    table = assemble_cohort(sheet, slide_stores, text_store, rna_store)
    log.info("modality presence:\n%s", presence_summary(table))
    table.write(out_path)
    return table
