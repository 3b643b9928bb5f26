"""The cohort table: one row per patient with label, slides and the presence of each modality."""

from __future__ import annotations

import logging

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from mosare.cohort.table import CohortError, CohortTable, build_cohort_table, presence_summary
from mosare.core.stores import write_store
from mosare.reporting.plots.cohort import plot_modality_presence


def feature_store(path, n_patches: int):
    write_store(
        path,
        {"features": np.zeros((n_patches, 8), np.float16), "coords": np.zeros((n_patches, 2), np.int64)},
        {"encoder": "test"},
    )
    return path


def presence_store(path, patient_ids, present):
    write_store(path, {"patient_ids": np.array(patient_ids, dtype=str), "present": np.array(present, bool)})
    return path


@pytest.fixture
def cohort(tmp_path):
    sheet = pd.DataFrame(
        {
            "patient_id": ["p1", "p1", "p2", "p3"],
            "slide_id": ["s1a", "s1b", "s2", "s3"],
            "label": ["LUAD", "LUAD", "LUSC", "LUSC"],
        }
    )
    slides = {
        "s1a": feature_store(tmp_path / "s1a.zarr", 0),
        "s1b": feature_store(tmp_path / "s1b.zarr", 12),
        "s2": feature_store(tmp_path / "s2.zarr", 0),
        "s3": feature_store(tmp_path / "s3.zarr", 3),
    }
    # Stores list patients in another order than the sheet; the table follows the sheet.
    text = presence_store(tmp_path / "text.zarr", ["p3", "p2", "p1"], [True, False, True])
    rna = presence_store(tmp_path / "rna.zarr", ["p1", "p2", "p3"], [False, False, True])
    return sheet, slides, text, rna


def test_cohort_table_has_one_row_per_patient_with_modality_flags(tmp_path, cohort):
    sheet, slides, text, rna = cohort
    table = build_cohort_table(sheet, slides, text, rna, tmp_path / "cohort.tsv")
    written = pd.read_csv(tmp_path / "cohort.tsv", sep="\t")
    assert written.columns.tolist() == ["patient_id", "label", "slide_ids", "has_wsi", "has_rna", "has_text"]
    assert written["patient_id"].tolist() == ["p1", "p2", "p3"]
    assert written["label"].tolist() == ["LUAD", "LUSC", "LUSC"]
    assert written["slide_ids"].tolist() == ["s1a,s1b", "s2", "s3"]
    assert written["has_wsi"].tolist() == [True, False, True], "one slide with patches is enough"
    assert written["has_rna"].tolist() == [False, False, True]
    assert written["has_text"].tolist() == [True, False, True]
    pd.testing.assert_frame_equal(table.to_frame(), written)
    read = CohortTable.read(tmp_path / "cohort.tsv", ["LUAD", "LUSC"])
    assert read.patient_ids == table.patient_ids and read.labels == table.labels
    assert read.slide_ids == (("s1a", "s1b"), ("s2",), ("s3",)) == table.slide_ids
    np.testing.assert_array_equal(read.present, table.present)
    assert read.has("wsi").tolist() == [True, False, True] and read.has("text").tolist() == [True, False, True]


def test_a_patient_without_slides_round_trips_with_an_empty_slide_list(tmp_path):
    table = CohortTable(("p1", "p2"), ("A", "B"), ((), ("s2",)), np.array([[False, True, True], [True, False, False]]))
    table.write(tmp_path / "cohort.tsv")
    read = CohortTable.read(tmp_path / "cohort.tsv")
    assert read.slide_ids == ((), ("s2",)) and read.present.tolist() == table.present.tolist()


@pytest.mark.parametrize("flag", ["1", "true", "yes", ""])
def test_a_presence_flag_other_than_true_or_false_is_an_error_naming_the_line(tmp_path, flag):
    (tmp_path / "cohort.tsv").write_text(
        "patient_id\tlabel\tslide_ids\thas_wsi\thas_rna\thas_text\n"
        "p1\tA\ts1\tTrue\tFalse\tTrue\n"
        f"p2\tA\ts2\tTrue\t{flag}\tTrue\n"
    )
    with pytest.raises(CohortError, match=rf"cohort\.tsv: 'has_rna' must be True or False \(line 3: '{flag}'\)"):
        CohortTable.read(tmp_path / "cohort.tsv")


def test_a_table_missing_a_column_or_holding_an_unknown_label_names_the_file_and_the_fix(tmp_path):
    (tmp_path / "old.tsv").write_text("patient_id\tlabel\tslide_ids\thas_wsi\thas_rna\np1\tA\ts1\tTrue\tFalse\n")
    with pytest.raises(CohortError, match=r"old\.tsv lacks column\(s\) has_text; rerun rule assemble_cohort"):
        CohortTable.read(tmp_path / "old.tsv")
    CohortTable(("p1",), ("C",), (("s1",),), np.ones((1, 3), bool)).write(tmp_path / "cohort.tsv")
    with pytest.raises(CohortError, match=r"labels \['C'\] are not among the cohort's classes \['A', 'B'\]"):
        CohortTable.read(tmp_path / "cohort.tsv", ["A", "B"])


def test_a_table_whose_columns_disagree_in_length_is_refused():
    with pytest.raises(ValueError, match="2 patients, 1 labels"):
        CohortTable(("p1", "p2"), ("A",), ((), ()), np.ones((2, 3), bool))


def test_summary_counts_modalities_and_names_patients_with_nothing(tmp_path, cohort, caplog):
    sheet, slides, text, rna = cohort
    with caplog.at_level(logging.INFO):
        table = build_cohort_table(sheet, slides, text, rna, tmp_path / "cohort.tsv")
    summary = presence_summary(table)
    assert "3 patients; wsi: 2/3, rna: 1/3, text: 2/3" in summary
    assert "wsi+rna+text: 1" in summary and "wsi+text: 1" in summary
    assert "no modality at all" in summary and "p2" in summary
    assert "s2" in caplog.text, "slides without patches are logged by name"


def test_store_built_from_another_sheet_fails_naming_the_patients(tmp_path, cohort):
    sheet, slides, text, _ = cohort
    stale = presence_store(tmp_path / "stale_rna.zarr", ["p1", "p2"], [True, True])
    with pytest.raises(CohortError, match=r"stale_rna\.zarr lacks patient\(s\) p3"):
        build_cohort_table(sheet, slides, text, stale, tmp_path / "cohort.tsv")


def test_presence_picture_is_written(tmp_path, cohort):
    sheet, slides, text, rna = cohort
    table = build_cohort_table(sheet, slides, text, rna, tmp_path / "cohort.tsv")
    plot_modality_presence(table, "nsclc", tmp_path / "qc" / "modalities.png")
    image = plt.imread(tmp_path / "qc" / "modalities.png")
    assert image.shape[0] > 200 and image.shape[1] > 800
    assert image[..., :3].std() > 0.05, "the picture is not blank"


def test_a_sheet_row_without_a_slide_gives_a_patient_with_no_slides_and_no_wsi(tmp_path):
    sheet = pd.DataFrame({"patient_id": ["p1", "p2"], "slide_id": ["s1", ""], "label": ["LUAD", "LUSC"]})
    slides = {"s1": feature_store(tmp_path / "s1.zarr", 5)}
    text = presence_store(tmp_path / "text.zarr", ["p1", "p2"], [False, True])
    rna = presence_store(tmp_path / "rna.zarr", ["p1", "p2"], [True, True])
    table = build_cohort_table(sheet, slides, text, rna, tmp_path / "cohort.tsv")
    assert table.slide_ids == (("s1",), ())
    assert table.present.tolist() == [[True, True, False], [False, True, True]]
    assert CohortTable.read(tmp_path / "cohort.tsv").slide_ids == (("s1",), ())
