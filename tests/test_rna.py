"""RNA matrix reading, log transform, label-free gene selection and the per-cohort RNA store."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from mosare.core.stores import open_store
from mosare.features.expression import (
    RNAMatrixError,
    build_rna_store,
    read_expression_matrix,
    select_rna_features,
    should_log_transform,
)


def write_tsv(path, matrix: pd.DataFrame):
    matrix.rename_axis("gene_id").to_csv(path, sep="\t")
    return path


def matrix_of(values, genes, patients) -> pd.DataFrame:
    return pd.DataFrame(np.asarray(values, dtype=float), index=genes, columns=patients)


def test_raw_counts_are_log_transformed_and_log_values_are_left_alone():
    counts = np.array([[0, 15, 230], [4, 1, 0]], dtype=float)
    assert should_log_transform(counts, "auto")
    assert should_log_transform(np.array([[0.0, 3.0], [1.0, 7.0]]), "auto"), "all-integer values are counts"
    log_expression = np.array([[0.5, 7.25], [11.8, 2.1]])
    assert not should_log_transform(log_expression, "auto")
    assert not should_log_transform(np.array([[-1.5, 200.0]]), "auto"), "negative values are already logged"
    assert not should_log_transform(counts, False)
    assert should_log_transform(log_expression, True)


def test_auto_transform_stores_log2_of_counts_plus_one():
    matrix = matrix_of([[0, 255, 1023]], ["G1"], ["p1", "p2", "p3"])
    features = select_rna_features(matrix, ["p1", "p2", "p3"])
    assert features.log_transformed
    np.testing.assert_allclose(features.values[:, 0], [0.0, 8.0, 10.0])


def test_every_gene_is_stored_in_matrix_order_so_folds_choose_their_own():
    genes = ["flat", "wild", "mild", "wilder"]
    values = [[5.0, 5.0, 5.0, 5.0], [1.0, 9.0, 1.0, 9.0], [4.0, 5.0, 4.0, 5.0], [0.0, 12.0, 0.0, 12.0]]
    matrix = matrix_of(values, genes, ["a", "b", "c", "d"])
    features = select_rna_features(matrix, ["a", "b", "c", "d"], log_transform=False)
    assert features.gene_ids == genes
    np.testing.assert_array_equal(features.values[:, 3], [0.0, 12.0, 0.0, 12.0])
    assert features.values.dtype == np.float32


def test_patients_missing_from_matrix_get_zeros_and_absent_and_extra_columns_are_ignored(caplog):
    matrix = matrix_of([[1.0, 2.0, 3.0], [3.0, 1.0, 9.0]], ["G1", "G2"], ["p1", "p3", "stranger"])
    with caplog.at_level(logging.INFO):
        features = select_rna_features(matrix, ["p1", "p2", "p3"], log_transform=False)
    assert features.patient_ids == ["p1", "p2", "p3"]
    np.testing.assert_array_equal(features.present, [True, False, True])
    np.testing.assert_array_equal(features.values[1], [0.0, 0.0])
    np.testing.assert_array_equal(features.values[2], [2.0, 1.0])
    assert "stranger" in caplog.text


def test_columns_differing_from_a_patient_id_only_by_case_or_spaces_fail_naming_column_and_patient():
    matrix = matrix_of(np.ones((2, 4)), ["g1", "g2"], ["P01", "p02", " P03 ", "stranger"])
    with pytest.raises(RNAMatrixError) as error:
        select_rna_features(matrix, ["P01", "P02", "P03"], source="rna.tsv")
    assert str(error.value) == (
        "rna.tsv: column(s) 'p02' (patient 'P02'), ' P03 ' (patient 'P03') differ from a sample-sheet patient_id "
        "only by letter case or surrounding spaces, so those patients would silently have no RNA; rename each "
        "column to the exact patient_id"
    )


def test_a_case_variant_column_is_ignored_when_the_patient_has_its_exact_column():
    matrix = matrix_of([[1, 5], [2, 6]], ["g1", "g2"], ["P01", "p01"])
    features = select_rna_features(matrix, ["P01"], log_transform=False)
    np.testing.assert_array_equal(features.values, [[1, 2]])


def test_cohort_without_rna_matrix_has_every_patient_absent(tmp_path):
    build_rna_store(None, ["p1", "p2"], {"top_genes": 10}, tmp_path / "rna.zarr")
    store = open_store(tmp_path / "rna.zarr")
    assert list(store["patient_ids"][:]) == ["p1", "p2"]
    assert store["values"].shape == (2, 0) and store["gene_ids"].shape == (0,)
    assert not store["present"][:].any()


def test_nan_values_fail_naming_gene_and_patient(tmp_path):
    path = write_tsv(tmp_path / "rna.tsv", matrix_of([[1.0, np.nan], [2.0, 3.0]], ["TP53", "EGFR"], ["p1", "p2"]))
    with pytest.raises(RNAMatrixError, match=r"rna\.tsv.*NaN/inf.*TP53.*p2"):
        read_expression_matrix(path)


def test_infinite_values_fail(tmp_path):
    path = write_tsv(tmp_path / "rna.tsv", matrix_of([[1.0, np.inf]], ["KRAS"], ["p1", "p2"]))
    with pytest.raises(RNAMatrixError, match="KRAS"):
        read_expression_matrix(path)


def test_duplicate_gene_ids_fail_listing_them(tmp_path):
    path = tmp_path / "rna.tsv"
    path.write_text("gene_id\tp1\tp2\nALK\t1\t2\nROS1\t3\t4\nALK\t5\t6\n")
    with pytest.raises(RNAMatrixError, match=r"duplicate gene ids ALK;"):
        read_expression_matrix(path)


def test_non_numeric_cells_fail_naming_the_column(tmp_path):
    path = tmp_path / "rna.tsv"
    path.write_text("gene_id\tp1\tp2\nALK\t1\tabc\n")
    with pytest.raises(RNAMatrixError, match="non-numeric.*p2"):
        read_expression_matrix(path)


def test_forced_log_transform_of_negative_values_fails():
    matrix = matrix_of([[-0.5, 2.0]], ["MET"], ["p1", "p2"])
    with pytest.raises(RNAMatrixError, match="MET.*log_transform"):
        select_rna_features(matrix, ["p1", "p2"], log_transform=True)


def test_matrix_sharing_no_patient_with_the_sheet_fails():
    matrix = matrix_of([[1.0]], ["MET"], ["TCGA-XX"])
    with pytest.raises(RNAMatrixError, match="none of its 1 patient columns"):
        select_rna_features(matrix, ["p1"])


@pytest.mark.parametrize("layout", ["gene_id column", "index"])
def test_parquet_matrix_reads_like_tsv(tmp_path, layout):
    matrix = matrix_of([[1.5, 2.5], [0.25, 4.0]], ["G1", "G2"], ["p1", "p2"]).rename_axis("gene_id")
    path = tmp_path / "rna.parquet"
    (matrix.reset_index() if layout == "gene_id column" else matrix).to_parquet(path)
    read = read_expression_matrix(path)
    assert read.index.tolist() == ["G1", "G2"]
    np.testing.assert_array_equal(read.to_numpy(), matrix.to_numpy())


def test_rna_store_holds_ids_values_and_presence(tmp_path):
    path = write_tsv(tmp_path / "rna.tsv", matrix_of([[10, 300], [7, 7], [0, 1000]], ["A", "B", "C"], ["p1", "p3"]))
    build_rna_store(path, ["p1", "p2", "p3"], {"top_genes": 2, "log_transform": "auto"}, tmp_path / "rna.zarr")
    store = open_store(tmp_path / "rna.zarr")
    assert list(store["patient_ids"][:]) == ["p1", "p2", "p3"]
    assert list(store["gene_ids"][:]) == ["A", "B", "C"], "every gene: rna.top_genes is chosen inside each fold"
    assert store["values"].dtype == np.float32 and store["values"].shape == (3, 3)
    np.testing.assert_array_equal(store["present"][:], [True, False, True])
    np.testing.assert_allclose(store["values"][2], np.log2([301.0, 8.0, 1001.0]), rtol=1e-6)
    assert store.attrs["log_transformed"] is True
