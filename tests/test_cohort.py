"""The cohort table: one row per patient with label, slides and the presence of each modality."""

from __future__ import annotations

import logging

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from mosare.cohort import CohortError, build_cohort_table, presence_summary
from mosare.plots.cohort import plot_modality_presence
from mosare.stores import write_store


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
    pd.testing.assert_frame_equal(table.reset_index(drop=True), written)


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
