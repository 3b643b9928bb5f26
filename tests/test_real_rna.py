"""An RNA-only cohort on a real public expression matrix: the RNA MLP against plain logistic regression, same folds.

The matrix is 10x Genomics' PBMC 68k (reduced: 700 cells x 765 genes, log-normalised counts) as shipped inside the
scanpy 1.11.5 wheel; the phenotype is each cell's FACS-sorted population. Cells stand in for patients. The binary task
is regulatory CD4+ T cells against naive cytotoxic CD8+ T cells (111 cells): related T-cell populations, so neither
model separates them perfectly.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import CACHE
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mosare.cohort.data import load_cohort_data
from mosare.cohort.table import build_cohort_table
from mosare.core.config_schema import schema_defaults
from mosare.evaluation.metrics import auc_score
from mosare.evaluation.results import pooled_predictions
from mosare.features.expression import build_rna_store
from mosare.features.reports import TextFeatures, write_text_store
from mosare.training.cross_validation import cross_validate

SCANPY_WHEEL = "scanpy==1.11.5"
MEMBER = "scanpy/datasets/10x_pbmc68k_reduced.h5ad"
POPULATIONS = {"Treg": "CD4+/CD25 T Reg", "CD8naive": "CD8+/CD45RA+ Naive Cytotoxic"}
CLASSES = list(POPULATIONS)


@pytest.fixture(scope="module")
def pbmc() -> tuple[pd.DataFrame, pd.Series]:
    """(genes x cells log expression, cell -> class) for the two populations."""
    import h5py
    from scipy.sparse import csr_matrix

    target = CACHE / "pbmc68k_reduced.h5ad"
    if not target.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", SCANPY_WHEEL, "-d", str(CACHE)],
            check=True,
        )
        with zipfile.ZipFile(next(CACHE.glob("scanpy-1.11.5-*.whl"))) as archive:
            tmp = target.with_suffix(".part")
            tmp.write_bytes(archive.read(MEMBER))
            tmp.replace(target)
    with h5py.File(target, "r") as h5:
        raw = h5["raw.X"]
        genes = [g.decode() for g in h5["raw.var"]["index"]]
        values = csr_matrix((raw["data"][:], raw["indices"][:], raw["indptr"][:]), shape=(len(h5["obs"]), len(genes)))
        categories = [c.decode() for c in h5["uns"]["bulk_labels_categories"][:]]
        populations = np.array(categories)[h5["obs"]["bulk_labels"][:]]
    keep = np.isin(populations, list(POPULATIONS.values()))
    cells = [f"cell{i:03d}" for i in np.flatnonzero(keep)]
    by_population = {population: name for name, population in POPULATIONS.items()}
    matrix = pd.DataFrame(values[keep].toarray().T, index=pd.Index(genes, name="gene_id"), columns=cells)
    return matrix, pd.Series([by_population[p] for p in populations[keep]], index=cells)


def test_rna_only_cohort_on_a_real_matrix_matches_logistic_regression_on_the_same_folds(pbmc, tmp_path):
    matrix, labels = pbmc
    assert matrix.shape == (765, 111) and labels.value_counts().to_dict() == {"Treg": 68, "CD8naive": 43}
    matrix.to_csv(tmp_path / "rna.tsv", sep="\t")
    sheet = pd.DataFrame({"patient_id": labels.index, "slide_id": "", "label": labels.to_numpy()})
    build_rna_store(tmp_path / "rna.tsv", list(labels.index), {"log_transform": "auto"}, tmp_path / "rna.zarr")
    no_reports = TextFeatures(list(labels.index), np.zeros((111, 8), np.float32), np.zeros((111, 16, 8), np.float32),
                              np.zeros(111, bool), np.zeros(111, np.int32))  # fmt: skip
    write_text_store(tmp_path / "text.zarr", no_reports, {})
    build_cohort_table(sheet, {}, tmp_path / "text.zarr", tmp_path / "rna.zarr", tmp_path / "cohort.tsv")
    data = load_cohort_data(tmp_path / "cohort.tsv", tmp_path / "none", tmp_path / "none", tmp_path / "text.zarr",
                            tmp_path / "rna.zarr", CLASSES)  # fmt: skip
    assert data.available.sum(axis=0).tolist() == [0, 111, 0]

    torch.set_num_threads(1)
    config = {**schema_defaults("train"), "models": ["rna_mlp"], "missing_rates": [], "rna_top_genes": 5000}
    run = cross_validate(data, config, "pbmc", tmp_path / "train", torch.device("cpu"))
    pooled = pooled_predictions(run.predictions)
    y = (pooled["label"] == CLASSES[1]).to_numpy().astype(int)
    mlp_auc = auc_score(y, pooled[["prob_Treg", "prob_CD8naive"]].to_numpy())

    # Plain scikit-learn on the very same folds: z-scores fitted on the training folds, default L2 penalty.
    folds = run.splits.set_index("patient_id")["fold"]
    x = matrix.T.loc[folds.index].to_numpy()
    target = (labels.loc[folds.index] == CLASSES[1]).to_numpy().astype(int)
    scores = np.zeros(len(target))
    for fold in range(config["folds"]):
        test = (folds == fold).to_numpy()
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(x[~test], target[~test])
        scores[test] = model.predict_proba(x[test])[:, 1]
    lr_auc = auc_score(target, np.c_[1 - scores, scores])
    print(f"PBMC Treg vs naive CD8: RNA MLP pooled AUC {mlp_auc:.3f}, logistic regression {lr_auc:.3f}")
    assert 0.8 < lr_auc < 1.0
    assert abs(mlp_auc - lr_auc) <= 0.05
