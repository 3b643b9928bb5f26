"""Sample-sheet checks: each error lists every offending row, and paths resolve against the sheet's folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mosare.core.samples import SampleSheetError, load_sample_sheet

CLASSES = ["LUAD", "LUSC"]


def write_sheet(folder: Path, rows: list[dict], touch: bool = True) -> Path:
    """Write a TSV sample sheet, creating the files its rows reference (when ``touch``)."""
    folder.mkdir(parents=True, exist_ok=True)
    if touch:
        for row in rows:
            for column in ("slide_path", "report_path"):
                if row.get(column):
                    path = folder / row[column]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text("x")
    path = folder / "samples.tsv"
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def row(patient: str, slide: str, label: str = "LUAD", **extra: object) -> dict:
    return {"patient_id": patient, "slide_id": slide, "slide_path": f"slides/{slide}.svs", "label": label} | extra


def test_valid_sheet_resolves_relative_paths_against_its_folder(tmp_path: Path) -> None:
    rows = [row("P1", "S1", report_path="reports/P1.txt"), row("P1", "S2"), row("P2", "S3", "LUSC", mpp=0.25)]
    sheet = load_sample_sheet(write_sheet(tmp_path / "cohort", rows), CLASSES)
    assert sheet["slide_path"].tolist() == [
        str((tmp_path / "cohort/slides" / f"S{i}.svs").resolve()) for i in (1, 2, 3)
    ]
    assert sheet.loc[0, "report_path"] == str((tmp_path / "cohort/reports/P1.txt").resolve())
    assert sheet["report_path"].isna().tolist() == [False, True, True]
    assert sheet["mpp"].isna().tolist() == [True, True, False] and sheet.loc[2, "mpp"] == 0.25


def test_duplicate_slide_ids_are_all_listed(tmp_path: Path) -> None:
    rows = [row(f"P{i}", sid, slide_path=f"slides/{i}.svs") for i, sid in enumerate(["S1", "S1", "S2", "S2"], 1)]
    with pytest.raises(SampleSheetError, match=r"slide_id must be unique: 'S1' on lines 2, 3; 'S2' on lines 4, 5"):
        load_sample_sheet(write_sheet(tmp_path, rows), CLASSES)


def test_patient_with_two_labels_is_reported(tmp_path: Path) -> None:
    rows = [row("P1", "S1", "LUAD"), row("P1", "S2", "LUSC"), row("P2", "S3", "LUAD"), row("P2", "S4", "LUSC")]
    with pytest.raises(SampleSheetError, match="each patient needs one label") as error:
        load_sample_sheet(write_sheet(tmp_path, rows), CLASSES)
    assert "'P1'" in str(error.value) and "'P2'" in str(error.value)


def test_labels_outside_the_cohort_classes_are_all_listed(tmp_path: Path) -> None:
    rows = [row("P1", "S1", "LUAD"), row("P2", "S2", "luad"), row("P3", "S3", "SCLC")]
    with pytest.raises(SampleSheetError, match=r"classes \['LUAD', 'LUSC'\]: line 3: 'luad'; line 4: 'SCLC'"):
        load_sample_sheet(write_sheet(tmp_path, rows), CLASSES)


def test_ids_that_cannot_be_file_names_are_all_listed(tmp_path: Path) -> None:
    rows = [row("P 1", "S1"), row("P2", "S/2"), row("P3", "S3")]
    rows[1]["slide_path"] = "slides/S2.svs"
    with pytest.raises(SampleSheetError) as error:
        load_sample_sheet(write_sheet(tmp_path, rows), CLASSES)
    message = str(error.value)
    assert "'patient_id' values must match" in message and "line 2: 'P 1'" in message
    assert "'slide_id' values must match" in message and "line 3: 'S/2'" in message


def test_missing_files_are_all_listed(tmp_path: Path) -> None:
    rows = [row("P1", "S1"), row("P2", "S2", report_path="reports/P2.txt")]
    path = write_sheet(tmp_path, rows, touch=False)
    with pytest.raises(SampleSheetError) as error:
        load_sample_sheet(path, CLASSES)
    message = str(error.value)
    assert "'slide_path' file(s) not found" in message
    assert "line 2:" in message and "line 3:" in message and "S2.svs" in message
    assert "'report_path' file(s) not found" in message and "P2.txt" in message


def test_several_kinds_of_problem_are_reported_together(tmp_path: Path) -> None:
    rows = [row("P1", "S1", "XX"), row("P2", "S1", slide_path="slides/S1b.svs")]
    with pytest.raises(SampleSheetError, match="2 problem"):
        load_sample_sheet(write_sheet(tmp_path, rows), CLASSES)


def test_missing_required_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "samples.tsv"
    pd.DataFrame([{"patient_id": "P1", "slide_id": "S1", "label": "LUAD"}]).to_csv(path, sep="\t", index=False)
    with pytest.raises(SampleSheetError, match="missing required column"):
        load_sample_sheet(path, CLASSES)


def test_bad_mpp_is_reported(tmp_path: Path) -> None:
    rows = [row("P1", "S1", mpp="fast"), row("P2", "S2", mpp=-1)]
    with pytest.raises(SampleSheetError, match=r"'mpp' must be a positive number .* line\(s\) 2, 3"):
        load_sample_sheet(write_sheet(tmp_path, rows), CLASSES)


def test_missing_sheet_names_the_config_key(tmp_path: Path) -> None:
    with pytest.raises(SampleSheetError, match="cohorts.<name>.samples"):
        load_sample_sheet(tmp_path / "nope.tsv", CLASSES)


def test_missing_sheet_names_its_cohort_and_where_relative_paths_start(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SampleSheetError) as error:
        load_sample_sheet("data/samples.tsv", CLASSES, cohort="nsclc")
    message = str(error.value)
    assert f"sample sheet {tmp_path.resolve() / 'data/samples.tsv'} of cohort 'nsclc' does not exist" in message
    assert "cohorts.nsclc.samples is 'data/samples.tsv'" in message
    assert f"relative to the directory snakemake runs in, {tmp_path}" in message


def test_patient_with_two_different_report_files_is_reported_with_every_row(tmp_path: Path) -> None:
    rows = [
        row("P1", "S1", report_path="reports/P1.txt"),
        row("P1", "S2", report_path="reports/P1_addendum.txt"),
        row("P1", "S3", report_path="./reports/P1.txt"),  # another spelling of the same file is fine
        row("P2", "S4", report_path="reports/P2.txt"),
        row("P2", "S5"),  # blank on some rows is fine
    ]
    with pytest.raises(SampleSheetError, match="1 problem") as error:
        load_sample_sheet(write_sheet(tmp_path, rows), CLASSES)
    reports = tmp_path.resolve() / "reports"
    assert (
        f"each patient needs one report file: 'P1' has {reports / 'P1.txt'} on line(s) 2, 4, "
        f"{reports / 'P1_addendum.txt'} on line(s) 3; put the same report_path on all of a patient's rows"
    ) in str(error.value)


def test_one_slide_file_under_two_patients_is_reported_with_every_row(tmp_path: Path) -> None:
    rows = [row("P1", "S1"), row("P2", "S2"), row("P3", "S3"), row("P3", "S4")]
    rows[1]["slide_path"] = "slides/S1.svs"
    rows[2]["slide_path"] = str(tmp_path / "elsewhere" / ".." / "slides" / "S1.svs")  # same file, other spelling
    rows[3]["slide_path"] = "slides/S4.svs"
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(SampleSheetError, match="1 problem") as error:
        load_sample_sheet(write_sheet(tmp_path, rows), CLASSES)
    assert (
        f"a slide file belongs to one patient: {tmp_path.resolve() / 'slides/S1.svs'} is used by patients "
        "['P1', 'P2', 'P3'] on lines 2, 3, 4; point each row's slide_path at that patient's own slide"
    ) in str(error.value)


def test_one_report_file_under_two_patients_is_reported_with_every_row(tmp_path: Path) -> None:
    rows = [
        row("P1", "S1", report_path="reports/P1.txt"),
        row("P2", "S2", report_path="reports/P1.txt"),
        row("P3", "S3"),
    ]
    with pytest.raises(SampleSheetError, match="1 problem") as error:
        load_sample_sheet(write_sheet(tmp_path, rows), CLASSES)
    assert (
        f"a report file belongs to one patient: {tmp_path.resolve() / 'reports/P1.txt'} is used by patients "
        "['P1', 'P2'] on lines 2, 3; point each row's report_path at that patient's own report"
    ) in str(error.value)


def test_a_patient_may_have_several_slides(tmp_path: Path) -> None:
    rows = [row("P1", "S1"), row("P1", "S2"), row("P2", "S3")]
    sheet = load_sample_sheet(write_sheet(tmp_path, rows), CLASSES)
    assert sheet["patient_id"].tolist() == ["P1", "P1", "P2"]


def slideless(patient: str, label: str = "LUAD", **extra: object) -> dict:
    return {"patient_id": patient, "slide_id": "", "slide_path": "", "label": label} | extra


@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_a_patient_without_a_slide_is_a_row_with_empty_slide_columns_anywhere_in_the_sheet(
    tmp_path: Path, position
) -> None:
    rows = [row("P1", "S1"), row("P2", "S2", "LUSC"), row("P3", "S3")]
    at = {"first": 0, "middle": 2, "last": 3}[position]
    rows.insert(at, slideless("P9", "LUSC", report_path="reports/P9.txt"))
    sheet = load_sample_sheet(write_sheet(tmp_path, rows), CLASSES)
    assert sheet.loc[at, "slide_id"] == "" and pd.isna(sheet.loc[at, "slide_path"])
    assert sheet.loc[at, "report_path"].endswith("P9.txt")
    from mosare.core.samples import slide_rows

    assert slide_rows(sheet)["slide_id"].tolist() == ["S1", "S2", "S3"]


def test_slideless_rows_that_contradict_themselves_are_all_listed(tmp_path: Path) -> None:
    rows = [
        row("P1", "S1"),
        slideless("P1"),  # P1 has a slide already
        {"patient_id": "P2", "slide_id": "S2", "slide_path": "", "label": "LUAD"},  # half empty
        slideless("P3", mpp=0.5),  # a resolution without a slide
        slideless("P4"),
        slideless("P5"),
    ]
    with pytest.raises(SampleSheetError) as error:
        load_sample_sheet(write_sheet(tmp_path, rows), CLASSES)
    text = str(error.value)
    assert "these patients have slides on other lines: line(s) 3" in text
    assert "both be empty for a patient without a slide: line(s) 4" in text
    assert "'mpp' is set on row(s) without a slide: line(s) 5" in text
    assert "slide_id must be unique" not in text, "empty slide ids of different patients are not duplicates"
