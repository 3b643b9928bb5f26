"""Cohort sample sheets: one row per slide (patient_id, slide_id, slide_path, label[, report_path, mpp, site]).

A patient without a slide (RNA and/or a report only) is one row with ``slide_id`` and ``slide_path`` both empty.
Every check reports every offending row at once, so a user fixes a sheet in one pass.

A survival cohort's sheet (``task="survival"``) has each patient's outcome in ``time`` and ``event`` instead of
``label``: ``time`` the follow-up in the cohort's time unit, a finite number >= 0, and ``event`` 1 when the event was
observed at that time and 0 when the patient was censored then. A time of 0 is allowed (an event or a loss to
follow-up on the day the clock starts; scikit-survival and the hazard head's bins accept it). A patient with several
slides repeats the same time and event on every row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd

# What a cohort predicts: a class per patient (``label``), or the time to an event (``time``, ``event``).
Task = Literal["classification", "survival"]
TASKS: tuple[Task, ...] = get_args(Task)
REQUIRED_COLUMNS = ("patient_id", "slide_id", "slide_path", "label")  # a classification sheet's
SURVIVAL_COLUMNS = ("time", "event")
SURVIVAL_REQUIRED_COLUMNS = ("patient_id", "slide_id", "slide_path", *SURVIVAL_COLUMNS)
OPTIONAL_COLUMNS = ("report_path", "mpp", "site")
# Patient and slide ids become file names and Snakemake wildcards (common.smk constrains {slide_id} to this).
ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
# A TCGA patient barcode (or a longer sample barcode): project, tissue source site (group 1), participant.
TCGA_BARCODE = re.compile(r"^TCGA-([A-Za-z0-9]{2})-[A-Za-z0-9]{4}(?:-.*)?$")


class SampleSheetError(ValueError):
    """The sample sheet is invalid; the message lists every offending row and how to fix it."""


def _rows(frame: pd.DataFrame) -> str:
    # Sheet line numbers: header is line 1, so data row i is line i + 2.
    return ", ".join(str(i + 2) for i in frame.index)


def required_columns(task: Task) -> tuple[str, ...]:
    """The columns a sample sheet of a ``task`` cohort must have."""
    return SURVIVAL_REQUIRED_COLUMNS if task == "survival" else REQUIRED_COLUMNS


def _task_key(cohort: str | None) -> str:
    return f"cohorts.{cohort}.task" if cohort is not None else "cohorts.<name>.task"


def _check_task(task: str, classes: Sequence[str]) -> None:
    """A known task; a survival cohort has no classes (its outcome is time and event)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}; got {task!r}")
    if task == "survival" and len(classes):
        raise ValueError(f"a survival cohort has no classes (its outcome is time and event); got classes {classes}")


def _other_task_columns(columns: Sequence[str], task: Task) -> list[str]:
    """The outcome columns of the other task that the sheet has: time/event on classification, label on survival."""
    return [c for c in (("label",) if task == "survival" else SURVIVAL_COLUMNS) if c in columns]


def _other_task_problem(found: list[str], task: Task, cohort: str | None) -> str:
    key = _task_key(cohort)
    if task == "survival":
        return (
            f"a survival sheet has no 'label' column ({key} is survival: each patient's outcome is its time and "
            f"event); remove the column, or set {key}: classification to classify the patients by label"
        )
    return (
        f"column(s) {', '.join(found)} hold a survival outcome, but {key} is classification (the default), whose "
        f"outcome is 'label'; remove them, or set {key}: survival to predict the time to the event instead"
    )


def validate_sample_sheet(
    sheet: pd.DataFrame,
    classes: Sequence[str],
    *,
    base_dir: Path,
    source: str,
    task: Task = "classification",
    cohort: str | None = None,
) -> pd.DataFrame:
    """Check a sample sheet and return it with absolute paths and normalised optional columns.

    ``base_dir`` resolves relative paths; ``source`` names the sheet in error messages. ``task``: a classification
    sheet has ``label`` (one of ``classes``); a survival sheet has ``time`` (float) and ``event`` (bool) instead, and
    ``classes`` is empty. ``cohort`` names the cohort's task setting in the messages.
    """
    _check_task(task, classes)
    required = required_columns(task)
    problems: list[str] = []
    other_outcome = _other_task_columns(list(sheet.columns), task)
    missing = [c for c in required if c not in sheet.columns]
    if missing:
        kind = "a survival sample sheet" if task == "survival" else "a sample sheet"
        hint = f"; {_other_task_problem(other_outcome, task, cohort)}" if other_outcome else ""
        raise SampleSheetError(
            f"{source}: missing required column(s) {', '.join(missing)}; {kind} is a TSV with columns "
            f"{', '.join(required)} and optionally {', '.join(OPTIONAL_COLUMNS)}{hint}"
        )
    unknown = [c for c in sheet.columns if c not in required + OPTIONAL_COLUMNS and c not in other_outcome]
    if unknown:
        problems.append(f"unknown column(s) {', '.join(unknown)}; allowed: {', '.join(required + OPTIONAL_COLUMNS)}")
    if other_outcome:
        problems.append(_other_task_problem(other_outcome, task, cohort))
    sheet = sheet.copy()
    for column in OPTIONAL_COLUMNS:
        if column not in sheet.columns:
            sheet[column] = None
    blank = {column: sheet[column].isna() | (sheet[column].astype(str).str.strip() == "") for column in required}
    slideless = blank["slide_id"] & blank["slide_path"]
    for column in required:
        if column in SURVIVAL_COLUMNS:
            continue  # listed row by row, with the patient, by _survival_problems
        empty = sheet[blank[column] & ~(slideless if column in ("slide_id", "slide_path") else False)]
        if len(empty):
            problems.append(f"empty '{column}' on line(s) {_rows(empty)}")
    half = sheet[blank["slide_id"] != blank["slide_path"]]
    if len(half):
        problems.append(
            f"slide_id and slide_path must both be set, or both be empty for a patient without a slide: line(s) "
            f"{_rows(half)}"
        )
    with_slides = set(sheet.loc[~slideless, "patient_id"].astype(str))
    redundant = sheet[slideless & sheet["patient_id"].astype(str).isin(with_slides)]
    if len(redundant):
        problems.append(
            f"a row without a slide is for a patient with no slide at all, but these patients have slides on other "
            f"lines: line(s) {_rows(redundant)}; delete those rows (the report_path can go on a slide row)"
        )
    for column in ("patient_id", "slide_id"):
        values = sheet[column].astype(str)
        bad = sheet[~values.str.fullmatch(ID_PATTERN.pattern) & ~(slideless if column == "slide_id" else False)]
        if len(bad):
            listed = "; ".join(f"line {i + 2}: {v!r}" for i, v in bad[column].items())
            problems.append(f"'{column}' values must match {ID_PATTERN.pattern} (they become file names): {listed}")
    duplicated = sheet[sheet["slide_id"].duplicated(keep=False) & ~slideless]
    if len(duplicated):
        listed = "; ".join(f"{sid!r} on lines {_rows(rows)}" for sid, rows in duplicated.groupby("slide_id"))
        problems.append(f"slide_id must be unique: {listed}")
    if task == "survival":
        survival_problems, times, events = _survival_problems(sheet)
        problems += survival_problems
        sheet["time"], sheet["event"] = times, events == 1
    else:
        problems += _label_problems(sheet, classes)
    mpp = pd.to_numeric(sheet["mpp"], errors="coerce")
    bad_mpp = sheet[(sheet["mpp"].notna() & mpp.isna()) | (mpp <= 0)]
    if len(bad_mpp):
        problems.append(f"'mpp' must be a positive number (µm per level-0 pixel) on line(s) {_rows(bad_mpp)}")
    stray_mpp = sheet[slideless & mpp.notna()]
    if len(stray_mpp):
        problems.append(f"'mpp' is set on row(s) without a slide: line(s) {_rows(stray_mpp)}; leave it empty there")
    sheet["mpp"] = mpp

    def resolve(value: object) -> str | None:
        if value is None or (isinstance(value, float) and pd.isna(value)) or str(value).strip() == "":
            return None
        path = Path(str(value)).expanduser()
        return str(path if path.is_absolute() else (base_dir / path).resolve())

    for column in ("slide_path", "report_path"):
        sheet[column] = sheet[column].map(resolve)
        absent = sheet[sheet[column].map(_names_missing_file)]
        if len(absent):
            listed = "; ".join(f"line {i + 2}: {p}" for i, p in absent[column].items())
            problems.append(f"'{column}' file(s) not found (relative paths resolve against {base_dir}): {listed}")
    problems += _conflicting_report_paths(sheet)
    problems += _site_problems(sheet)
    problems += _files_shared_between_patients(sheet, "slide_path", "slide")
    problems += _files_shared_between_patients(sheet, "report_path", "report")
    if problems:
        raise SampleSheetError(f"{source} has {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems))
    for column in ("patient_id", "slide_id", "label") if task == "classification" else ("patient_id", "slide_id"):
        sheet[column] = sheet[column].astype(str)
    sheet.loc[slideless, "slide_id"] = ""
    sheet["site"] = sheet["site"].map(lambda v: None if _blank(v) else str(v).strip())
    return sheet.reset_index(drop=True)


def _label_problems(sheet: pd.DataFrame, classes: Sequence[str]) -> list[str]:
    """A classification sheet: one label per patient, each one of the cohort's classes."""
    problems = []
    labels_per_patient = sheet.groupby("patient_id")["label"].nunique()
    conflicting = labels_per_patient[labels_per_patient > 1].index
    if len(conflicting):
        listed = "; ".join(
            f"{pid!r} has {sorted(sheet.loc[sheet.patient_id == pid, 'label'].astype(str).unique())} "
            f"on lines {_rows(sheet[sheet.patient_id == pid])}"
            for pid in conflicting
        )
        problems.append(f"each patient needs one label: {listed}")
    unknown_labels = sheet[~sheet["label"].astype(str).isin(list(classes))]
    if len(unknown_labels):
        listed = "; ".join(f"line {i + 2}: {v!r}" for i, v in unknown_labels["label"].items())
        problems.append(f"labels must be one of the cohort's classes {list(classes)}: {listed}")
    return problems


def _survival_problems(sheet: pd.DataFrame) -> tuple[list[str], pd.Series, pd.Series]:
    """A survival sheet's outcome columns: every row's ``time`` a finite number >= 0 and ``event`` 0 or 1, and each
    patient one time and one event over all of their rows. Returns the problems (every offending row, with its
    patient) and the parsed times (float) and events (0.0 or 1.0; NaN where a row is bad)."""
    problems = []
    patient = sheet["patient_id"].astype(str)
    time = pd.to_numeric(sheet["time"], errors="coerce").astype(np.float64)
    event = pd.to_numeric(sheet["event"], errors="coerce").astype(np.float64)
    bad_time = ~np.isfinite(time) | (time < 0)
    bad_event = ~event.isin((0.0, 1.0))

    def why_time(i: object) -> str:
        raw = sheet.at[i, "time"]
        if _blank(raw):
            return "empty"
        if pd.isna(time[i]):
            return f"{raw!r} is not a number"
        return f"{raw!r} is negative" if time[i] < 0 else f"{raw!r} is not finite"

    if bad_time.any():
        listed = "; ".join(f"line {i + 2} (patient {patient[i]!r}): {why_time(i)}" for i in sheet.index[bad_time])
        problems.append(
            f"'time' must be a number >= 0 on every row: {listed}; give each row its patient's follow-up time, in the "
            "cohort's time unit, from the time origin (e.g. diagnosis) to the event or to the last follow-up (0 is "
            "allowed)"
        )
    if bad_event.any():
        listed = "; ".join(
            f"line {i + 2} (patient {patient[i]!r}): "
            + ("empty" if _blank(sheet.at[i, "event"]) else repr(sheet.at[i, "event"]))
            for i in sheet.index[bad_event]
        )
        problems.append(
            f"'event' must be 1 or 0 on every row: {listed}; write 1 when the event (e.g. death, progression) was "
            "observed at the row's time, and 0 when the patient was censored then (followed up to that time without "
            "it)"
        )
    problems += _patient_conflicts(sheet, time.where(~bad_time), "time")
    problems += _patient_conflicts(sheet, event.where(~bad_event), "event")
    return problems, time.where(~bad_time), event.where(~bad_event)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _patient_conflicts(sheet: pd.DataFrame, values: pd.Series, column: str) -> list[str]:
    """A patient's rows give one value of ``column`` (parsed; NaN rows are reported elsewhere and skipped here)."""
    valid = values.notna()
    per_patient = values[valid].groupby(sheet.loc[valid, "patient_id"].astype(str), sort=False).nunique()
    conflicting = per_patient[per_patient > 1].index
    if not len(conflicting):
        return []
    listed = "; ".join(
        f"{pid!r} has {column} "
        + ", ".join(
            f"{_number(value)} on line(s) {_rows(rows)}"
            for value, rows in sheet[valid & (sheet["patient_id"].astype(str) == pid)].groupby(values, sort=False)
        )
        for pid in conflicting
    )
    return [
        f"each patient needs one {column}: {listed}; a patient with several slides has one row per slide, each "
        f"with the patient's one time and event: put the same {column} on all of their rows"
    ]


def patient_sites(sheet: pd.DataFrame) -> dict[str, str] | None:
    """Each patient's tissue source site ({patient_id: site}, in sheet order), or None when the sheet gives none.

    The sheet's ``site`` column where it is filled in; without it, the site code of TCGA barcodes (``TCGA-XX-...``:
    ``XX``) when every patient_id is one. ``train.split: site`` groups the test folds by it.
    """
    patients = sheet["patient_id"].astype(str)
    if "site" in sheet.columns and not sheet["site"].map(_blank).all():
        filled = sheet[~sheet["site"].map(_blank)]
        return {
            str(pid): str(site).strip()
            for pid, site in filled.groupby("patient_id", sort=False)["site"].first().items()
        }
    codes = {pid: TCGA_BARCODE.match(pid) for pid in dict.fromkeys(patients)}
    if codes and all(codes.values()):
        return {pid: match.group(1).upper() for pid, match in codes.items() if match is not None}
    return None


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or str(value).strip() == ""


def _site_problems(sheet: pd.DataFrame) -> list[str]:
    """A patient has one site, and a sheet that names sites names one for every patient."""
    blank = sheet["site"].map(_blank)
    if blank.all():
        return []
    site = sheet["site"].astype(str).str.strip()
    problems = []
    per_patient = site[~blank].groupby(sheet.loc[~blank, "patient_id"], sort=False).nunique()
    conflicting = per_patient[per_patient > 1].index
    if len(conflicting):
        listed = "; ".join(
            f"{pid!r} has "
            + ", ".join(
                f"{name!r} on line(s) {_rows(rows)}"
                for name, rows in sheet[(sheet.patient_id == pid) & ~blank].groupby(site, sort=False)
            )
            for pid in conflicting
        )
        problems.append(
            f"each patient comes from one site: {listed}; put that patient's one site on all of their rows (or leave "
            "it blank on all but one)"
        )
    without = sheet[~sheet["patient_id"].isin(set(sheet.loc[~blank, "patient_id"]))]
    if len(without):
        listed = ", ".join(repr(pid) for pid in dict.fromkeys(without["patient_id"].astype(str)))
        problems.append(
            f"'site' is filled in for some patients but not for {listed} (line(s) {_rows(without)}); give every "
            "patient a site, or leave the column out"
        )
    return problems


def slide_rows(sheet: pd.DataFrame) -> pd.DataFrame:
    """The rows that name a slide (patients without one have an empty ``slide_id``)."""
    return sheet[sheet["slide_id"] != ""]


@dataclass(frozen=True)
class SlideEntry:
    """What planning needs of one slide's sample-sheet row."""

    slide_id: str
    slide_path: str
    mpp: float | None  # the sheet's level-0 µm/px, None when blank


class SlideIndex:
    """A cohort's slides, indexed once: their ids in sheet order and each one's row by id.

    Snakemake calls the per-slide input and params functions once or more per job while it plans, so each must be
    a lookup: searching the sheet per call made planning quadratic in the number of slides.
    """

    def __init__(self, sheet: pd.DataFrame) -> None:
        rows = slide_rows(sheet)  # a validated or planned sheet: mpp is always a column (NaN when blank)
        self._entries = {
            slide_id: SlideEntry(slide_id, str(path), None if pd.isna(mpp) else float(mpp))
            for slide_id, path, mpp in zip(rows["slide_id"], rows["slide_path"], rows["mpp"], strict=True)
        }
        self.ids: tuple[str, ...] = tuple(self._entries)

    def __contains__(self, slide_id: object) -> bool:
        return slide_id in self._entries

    def entry(self, slide_id: str) -> SlideEntry:
        """The row of ``slide_id`` (a KeyError when the sheet has no such slide)."""
        return self._entries[slide_id]

    def slide_paths(self) -> dict[str, str]:
        """{slide_id: slide file}, in sheet order."""
        return {slide_id: entry.slide_path for slide_id, entry in self._entries.items()}


def _conflicting_report_paths(sheet: pd.DataFrame) -> list[str]:
    """A patient has one report: rows of a patient naming different report files would silently drop all but one."""
    reports = sheet.dropna(subset=["report_path"])
    real_path = reports["report_path"].map(_real_path)
    per_patient = real_path.groupby(reports["patient_id"], sort=False).nunique()
    conflicting = per_patient[per_patient > 1].index
    if not len(conflicting):
        return []
    listed = "; ".join(
        f"{pid!r} has "
        + ", ".join(
            f"{path} on line(s) {_rows(rows)}"
            for path, rows in reports[reports.patient_id == pid].groupby(real_path, sort=False)
        )
        for pid in conflicting
    )
    return [
        f"each patient needs one report file: {listed}; put the same report_path on all of a patient's rows "
        "(or leave it blank on all but one)"
    ]


def _files_shared_between_patients(sheet: pd.DataFrame, column: str, kind: str) -> list[str]:
    """A slide or report file under two patients is a sheet mistake, and would put the same tissue (or text) on both
    sides of a fold."""
    files = sheet.dropna(subset=[column])
    real_path = files[column].map(_real_path)
    patients_per_file = files.groupby(real_path, sort=False)["patient_id"].nunique()
    shared = patients_per_file[patients_per_file > 1].index
    if not len(shared):
        return []
    listed = "; ".join(
        f"{path} is used by patients {sorted(files.loc[real_path == path, 'patient_id'].astype(str).unique())} "
        f"on lines {_rows(files[real_path == path])}"
        for path in shared
    )
    return [f"a {kind} file belongs to one patient: {listed}; point each row's {column} at that patient's own {kind}"]


def _real_path(path: str) -> str:
    # Symlinks and "." / ".." resolved, so two spellings of one file compare equal.
    return str(Path(path).resolve())


def _names_missing_file(value: object) -> bool:
    return isinstance(value, str) and not Path(value).exists()


def load_sample_sheet(
    path: str | Path, classes: Sequence[str], *, cohort: str | None = None, task: Task = "classification"
) -> pd.DataFrame:
    """Read and validate a TSV sample sheet; relative paths inside it resolve against its folder.

    ``cohort`` names the cohort whose ``samples:`` this is, for the error when the sheet does not exist. ``task``:
    ``classification`` (a ``label`` of ``classes`` per patient) or ``survival`` (``time`` and ``event`` per patient,
    ``classes`` empty; :func:`validate_sample_sheet`).
    """
    _check_task(task, classes)
    configured = str(path)
    path = Path(path).expanduser().resolve()
    if not path.exists():
        key = f"cohorts.{cohort}.samples" if cohort is not None else "cohorts.<name>.samples"
        owner = f" of cohort {cohort!r}" if cohort is not None else ""
        raise SampleSheetError(
            f"sample sheet {path}{owner} does not exist ({key} is {configured!r}; a relative path there is "
            f"relative to the directory snakemake runs in, {Path.cwd()}); fix {key} in the workflow configuration "
            "(config.yaml or the --configfile that sets it), e.g. to an absolute path"
        )
    sheet = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_values=[""])
    return validate_sample_sheet(sheet, classes, base_dir=path.parent, source=str(path), task=task, cohort=cohort)
