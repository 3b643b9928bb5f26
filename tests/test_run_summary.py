"""The end-of-run summary: what a finished run left missing, read from a results tree, never failing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mosare.cohort.table import CohortTable
from mosare.core.stores import write_store
from mosare.reporting.run_summary import patch_store_count, run_summary, summarise_cohort

PATHS = {
    "tissue_qc": "results/{cohort}/qc/tissue/{slide_id}.png",
    "tiling_log": "results/logs/tile_slide/{cohort}/{slide_id}.log",
    "embedding_log": "results/logs/embed_slide/{cohort}/enc/{slide_id}.log",
    "rna_log": "results/logs/select_rna_genes/{cohort}.log",
    "report_log": "results/logs/encode_reports/{cohort}.log",
    "cohort_log": "results/logs/assemble_cohort/{cohort}.log",
}


def write_patch_store(results: Path, cohort: str, slide_id: str, n_patches: int, with_count_attr: bool = True) -> None:
    attrs = {"slide_id": slide_id, "n_patches": n_patches} if with_count_attr else {"slide_id": slide_id}
    write_store(
        results / cohort / "patches" / f"{slide_id}.zarr", {"coords": np.zeros((n_patches, 2), np.int64)}, attrs
    )


def write_cohort_table(results: Path, cohort: str, rows: list[tuple[str, str, bool, bool, bool]]) -> None:
    CohortTable(
        patient_ids=tuple(row[0] for row in rows),
        labels=("A",) * len(rows),
        slide_ids=tuple(tuple(s for s in row[1].split(",") if s) for row in rows),
        present=np.array([row[2:] for row in rows], dtype=bool).reshape(len(rows), 3),
    ).write(results / cohort / "cohort.tsv")


def test_summary_lists_empty_slides_patients_left_without_wsi_rna_or_report_and_where_to_look(tmp_path):
    results = tmp_path / "results"
    for slide, n in (("s1", 12), ("s2a", 0), ("s2b", 0), ("s3", 0), ("s4", 5)):
        write_patch_store(results, "lung", slide, n)
    write_cohort_table(
        results,
        "lung",
        [("P1", "s1", True, True, True), ("P2", "s2a,s2b", False, True, False), ("P3", "s3", False, False, True),
         ("P4", "s4", True, True, True), ("P5", "", False, True, True)],
    )  # fmt: skip

    text = run_summary(results, ["lung"], PATHS)

    assert f"Run summary (read from {results}/" in text
    assert "lung: 5 slides, 5 patients" in text
    assert (
        "3 slide(s) with 0 tissue patches: s2a, s2b, s3 (pictures: results/lung/qc/tissue/{slide_id}.png; "
        "logs: results/logs/tile_slide/lung/{slide_id}.log)"
    ) in text
    # P5 has no slide in the sheet: WSI missing by design, not a problem of the run.
    assert "2 patient(s) with slides but no WSI features, trained as WSI missing: P2, P3" in text
    assert "1 patient(s) without RNA: P3 (log: results/logs/select_rna_genes/lung.log)" in text
    assert "1 patient(s) without a usable report: P2 (log: results/logs/encode_reports/lung.log)" in text
    assert "modality presence per patient: results/logs/assemble_cohort/lung.log" in text


def test_a_cohort_with_nothing_missing_takes_one_line_and_one_without_outputs_none(tmp_path):
    results = tmp_path / "results"
    write_patch_store(results, "kidney", "k1", 3)
    write_cohort_table(results, "kidney", [("K1", "k1", True, True, True)])

    text = run_summary(results, ["kidney", "not_built"], PATHS)

    assert text.splitlines()[1:] == ["  kidney: 1 slides, 1 patients: nothing missing"]


def test_before_the_cohort_table_exists_the_finished_patch_stores_are_summarised(tmp_path):
    results = tmp_path / "results"
    write_patch_store(results, "breast", "b1", 0)
    write_patch_store(results, "breast", "b2", 7)

    summary = summarise_cohort(results, "breast")

    assert (summary.n_slides, summary.n_patients, summary.empty_slides) == (2, None, ["b1"])
    assert summary.patients_without_wsi == summary.patients_without_rna == summary.patients_without_report == []


def test_patch_count_falls_back_to_the_coords_length_and_is_none_for_an_unfinished_store(tmp_path):
    write_patch_store(tmp_path, "c", "old", 4, with_count_attr=False)
    (tmp_path / "c" / "patches" / "half.zarr").mkdir()

    assert patch_store_count(tmp_path / "c" / "patches" / "old.zarr") == 4
    assert patch_store_count(tmp_path / "c" / "patches" / "half.zarr") is None


def test_long_lists_are_cut_to_ten_ids_with_the_rest_counted(tmp_path):
    results = tmp_path / "results"
    slides = [f"s{i:02d}" for i in range(13)]
    for slide in slides:
        write_patch_store(results, "big", slide, 0)

    text = run_summary(results, ["big"], PATHS)

    assert "13 slide(s) with 0 tissue patches: s00, s01, s02, s03, s04, s05, s06, s07, s08, s09, ... (3 more)" in text


def test_an_unreadable_output_becomes_one_line_and_other_cohorts_are_still_summarised(tmp_path):
    results = tmp_path / "results"
    (results / "broken").mkdir(parents=True)
    (results / "broken" / "cohort.tsv").write_text("patient_id\tlabel\nP1\tA\n")
    write_patch_store(results, "fine", "f1", 2)
    write_cohort_table(results, "fine", [("F1", "f1", True, True, True)])

    text = run_summary(results, ["broken", "fine"], PATHS)

    assert "  broken: summary unavailable (CohortError: " in text and "lacks column(s) slide_ids, has_wsi" in text
    assert "  fine: 1 slides, 1 patients: nothing missing" in text


def test_without_any_outputs_the_summary_says_so(tmp_path):
    assert run_summary(tmp_path / "results", ["a", "b"], PATHS).splitlines()[1] == "  no cohort outputs yet"


def test_summary_lists_slides_flagged_by_slide_qc_with_their_reasons(tmp_path):
    import pandas as pd

    results = tmp_path / "results"
    slides = [f"s{i:02d}" for i in range(14)]
    for slide in slides:
        write_patch_store(results, "lung", slide, 50)
    flags = ["" if i < 2 else f"sharpness low (z -{i}.0)" for i in range(14)]
    flags[2] = "ink_fraction high (z +9.0); n_patches 3 < 16"
    pd.DataFrame({"slide_id": slides, "sharpness": 1.0, "flags": flags}).to_csv(
        results / "lung" / "slide_qc.tsv", sep="\t", index=False
    )

    lines = run_summary(results, ["lung"], PATHS).splitlines()

    head = next(i for i, line in enumerate(lines) if "flagged by slide QC" in line)
    assert lines[head] == (
        f"    12 slide(s) flagged by slide QC ({results}/lung/slide_qc.tsv; pictures: "
        "results/lung/qc/tissue/{slide_id}.png):"
    )
    assert lines[head + 1] == "      s02: ink_fraction high (z +9.0); n_patches 3 < 16"
    assert lines[head + 10] == "      s11: sharpness low (z -11.0)"
    assert lines[head + 11] == "      ... (2 more)"
    assert not any(line.startswith(("      s00", "      s01")) for line in lines)


def test_summary_without_flagged_slides_says_nothing_is_missing(tmp_path):
    import pandas as pd

    results = tmp_path / "results"
    write_patch_store(results, "lung", "s1", 50)
    pd.DataFrame({"slide_id": ["s1"], "flags": [""]}).to_csv(results / "lung" / "slide_qc.tsv", sep="\t", index=False)
    assert run_summary(results, ["lung"], PATHS).splitlines()[1:] == ["  lung: 1 slides tiled, none without patches"]
