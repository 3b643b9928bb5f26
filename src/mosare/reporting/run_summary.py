"""What a finished run left missing, read from its outputs (nothing is rerun), for the end of a successful run.

Warnings about slides without tissue or patients without a modality go to job logs nobody opens while the run exits
0; this summary puts them on screen with the logs and pictures to look at. It only reads small files (store
metadata, ``cohort.tsv``) and never raises: a problem of its own becomes one line of the summary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from mosare.cohort.slide_qc_table import read_excluded_slides, read_flagged_slides
from mosare.cohort.table import CohortTable
from mosare.core.paths import ResultsLayout
from mosare.slides.patch_store import PatchStore

MAX_LISTED = 10  # ids listed per problem; the count says how many there are


@dataclasses.dataclass
class CohortSummary:
    """The problems of one cohort's outputs; a ``None`` count: that output does not exist (yet)."""

    cohort: str
    n_slides: int
    n_patients: int | None
    empty_slides: list[str]
    patients_without_wsi: list[str]  # they have slides, none of which gave a feature row
    patients_without_rna: list[str]
    patients_without_report: list[str]
    flagged_slides: dict[str, str] = dataclasses.field(default_factory=dict)  # slide QC: slide id -> its flags
    slide_qc_table: str = ""  # where they were read from
    # slides.on_error: exclude: slide id -> ``<stage>: <error>`` (not repeated among the flagged ones)
    excluded_slides: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def has_problems(self) -> bool:
        return bool(
            self.empty_slides
            or self.patients_without_wsi
            or self.patients_without_rna
            or self.patients_without_report
            or self.flagged_slides
            or self.excluded_slides
        )


def patch_store_count(store: str | Path) -> int | None:
    """Patches in a finished patch store (``mosare.slides.patch_store.PatchStore.count``); None when there is none yet.

    A finished store has its zarr v3 group metadata (``mosare.core.stores`` renames stores into place only when complete).
    """
    return PatchStore.count(store) if (Path(store) / "zarr.json").is_file() else None


def _lacking(table: CohortTable, modality: str, *, among_those_with_slides: bool = False) -> list[str]:
    return [
        pid
        for pid, has, slides in zip(table.patient_ids, table.has(modality), table.slide_ids)
        if not has and (slides or not among_those_with_slides)
    ]


def summarise_cohort(results_dir: str | Path, cohort: str) -> CohortSummary | None:
    """The problems ``results/{cohort}/`` shows, or None when the cohort has neither a cohort table nor patch stores.

    Slides are those of ``cohort.tsv`` when it exists (the current sample sheet), else every finished patch store.
    """
    layout = ResultsLayout(str(results_dir))
    table_path = Path(layout.cohort_table(cohort))
    table = CohortTable.read(table_path) if table_path.is_file() else None
    if table is not None:
        slides = [slide for ids in table.slide_ids for slide in ids]
    else:
        finished = Path(layout.patch_store(cohort, "*")).parent.glob("*.zarr")
        slides = sorted(path.name.removesuffix(".zarr") for path in finished)
    counts = {slide: patch_store_count(layout.patch_store(cohort, slide)) for slide in slides}
    counts = {slide: n for slide, n in counts.items() if n is not None}
    if table is None and not counts:
        return None
    qc_table = layout.slide_qc(cohort)
    excluded = read_excluded_slides(qc_table) if Path(qc_table).is_file() else {}
    flagged = read_flagged_slides(qc_table) if Path(qc_table).is_file() else {}
    return CohortSummary(
        cohort=cohort,
        n_slides=len(slides),
        n_patients=None if table is None else len(table),
        empty_slides=[slide for slide, n in counts.items() if n == 0],
        patients_without_wsi=[] if table is None else _lacking(table, "wsi", among_those_with_slides=True),
        patients_without_rna=[] if table is None else _lacking(table, "rna"),
        patients_without_report=[] if table is None else _lacking(table, "text"),
        flagged_slides={slide: flags for slide, flags in flagged.items() if slide not in excluded},
        slide_qc_table=qc_table,
        excluded_slides=excluded,
    )


def _listed(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:MAX_LISTED])
    return shown + (f", ... ({len(ids) - MAX_LISTED} more)" if len(ids) > MAX_LISTED else "")


def _slides_with_reasons(reasons: Mapping[str, str], what: str) -> list[str]:
    """A count line saying ``what`` happened to the slides, then the first MAX_LISTED, each with its reason."""
    slides = list(reasons)
    lines = [f"    {len(slides)} slide(s) {what}:"]
    lines.extend(f"      {slide}: {reasons[slide]}" for slide in slides[:MAX_LISTED])
    if len(slides) > MAX_LISTED:
        lines.append(f"      ... ({len(slides) - MAX_LISTED} more)")
    return lines


def format_cohort_summary(summary: CohortSummary, paths: Mapping[str, str]) -> list[str]:
    """Lines for one cohort. ``paths``: patterns with ``{cohort}`` (and ``{slide_id}``, ``{encoder}`` left for the
    reader) for ``tissue_qc``, ``tiling_log``, ``embedding_log``, ``rna_log``, ``report_log``, ``cohort_log``."""
    where = {key: pattern.replace("{cohort}", summary.cohort) for key, pattern in paths.items()}
    patients = "" if summary.n_patients is None else f", {summary.n_patients} patients"
    head = f"  {summary.cohort}: {summary.n_slides} slides{patients}"
    if not summary.has_problems:
        return [head + (": nothing missing" if summary.n_patients is not None else " tiled, none without patches")]
    lines = [head]
    if summary.empty_slides:
        lines.append(
            f"    {len(summary.empty_slides)} slide(s) with 0 tissue patches: {_listed(summary.empty_slides)}"
            f" (pictures: {where['tissue_qc']}; logs: {where['tiling_log']})"
        )
    if summary.excluded_slides:
        lines += _slides_with_reasons(
            summary.excluded_slides,
            "could not be used and were left out (slides.on_error: exclude; "
            f"{summary.slide_qc_table}, logs: {where['tiling_log']}, {where['embedding_log']})",
        )
    if summary.flagged_slides:
        lines += _slides_with_reasons(
            summary.flagged_slides, f"flagged by slide QC ({summary.slide_qc_table}; pictures: {where['tissue_qc']})"
        )
    if summary.patients_without_wsi:
        lines.append(
            f"    {len(summary.patients_without_wsi)} patient(s) with slides but no WSI features, trained as WSI "
            f"missing: {_listed(summary.patients_without_wsi)} (logs: {where['tiling_log']}, {where['embedding_log']})"
        )
    if summary.patients_without_rna:
        lines.append(
            f"    {len(summary.patients_without_rna)} patient(s) without RNA: "
            f"{_listed(summary.patients_without_rna)} (log: {where['rna_log']})"
        )
    if summary.patients_without_report:
        lines.append(
            f"    {len(summary.patients_without_report)} patient(s) without a usable report: "
            f"{_listed(summary.patients_without_report)} (log: {where['report_log']})"
        )
    if summary.n_patients is not None:
        lines.append(f"    modality presence per patient: {where['cohort_log']}")
    return lines


def run_summary(results_dir: str | Path, cohorts: Sequence[str], paths: Mapping[str, str]) -> str:
    """The end-of-run summary of every cohort with outputs under ``results_dir``; never raises."""
    lines = [f"Run summary (read from {results_dir}/, nothing rerun):"]
    for cohort in cohorts:
        try:
            summary = summarise_cohort(results_dir, cohort)
            if summary is not None:
                lines.extend(format_cohort_summary(summary, paths))
        except Exception as error:
            lines.append(f"  {cohort}: summary unavailable ({type(error).__name__}: {error})")
    if len(lines) == 1:
        lines.append("  no cohort outputs yet")
    return "\n".join(lines)
