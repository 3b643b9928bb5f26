"""A real survival dataset through the real workflow (issue 22): the pipeline's Cox reference against scikit-survival.

The data are the Worcester Heart Attack Study (WHAS500) as shipped inside scikit-survival's wheel
(``sksurv.datasets.load_whas500``): 500 patients after an acute myocardial infarction, 215 deaths, follow-up in days,
14 clinical covariates (6 numeric, 8 binary categorical). The cohort has no slides and no reports; the one-hot
covariates stand in as its RNA matrix, so the workflow trains ``rna_mlp`` and its ``coxnet_rna`` reference row on them.

The check: scikit-survival's ``CoxPHSurvivalAnalysis`` (unpenalised), fitted on each fold's training patients
as splits.tsv assigns them, must reach the same within-fold pooled Harrell's C as the pipeline's ``coxnet_rna`` and
its ``rna_mlp`` (each within 0.03), and that C must be well above chance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler
from workflow_runs import make_workdir, snakemake

from mosare.evaluation.survival_metrics import survival_array, within_fold_counts

COHORT = "whas500"
FOLDS = 5
# Measured with this configuration over train.seed 0-4 (each seed its own folds): CoxPH 0.766-0.770, coxnet_rna
# 0.754-0.771 (0.001-0.012 from CoxPH), rna_mlp 0.750-0.759 (0.010-0.016 below it). With 20 epochs instead of 50
# rna_mlp fell 0.022-0.031 short, hence the epochs (the whole test still runs in ~70 s on 2 cores).
TOLERANCE = 0.03
# Cox models on WHAS500 reach C ~0.77 (age, heart failure, heart rate, diastolic pressure and BMI carry most); a
# model at 0.7 or less would have lost that signal, not merely been unlucky with the folds.
LEAST_REAL_SIGNAL = 0.7


def whas500() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(sample sheet, features x patients matrix) of WHAS500 as a slide-less survival cohort."""
    from sksurv.datasets import load_whas500
    from sksurv.preprocessing import OneHotEncoder

    covariates, outcome = load_whas500()
    # The 8 categorical covariates are all binary: one-hot keeps one 0/1 column each ("afb=1" -> "afb_1").
    features = OneHotEncoder().fit_transform(covariates)
    features.columns = [name.replace("=", "_") for name in features.columns]
    patient_ids = [f"whas{i:03d}" for i in range(len(features))]
    sheet = pd.DataFrame(
        {
            "patient_id": patient_ids,
            # Both slide columns empty: a patient without a slide (mosare.core.samples).
            "slide_id": "",
            "slide_path": "",
            "time": outcome["lenfol"],
            "event": outcome["fstat"].astype(int),
        }
    )
    matrix = pd.DataFrame(
        features.to_numpy(np.float64).T, index=pd.Index(features.columns, name="gene_id"), columns=patient_ids
    )
    return sheet, matrix


def whas500_config(n_features: int) -> dict:
    """One RNA-only survival cohort, 5 folds, no missing-modality scenarios, a short and small rna_mlp."""
    return {
        "cohorts": {COHORT: {"task": "survival", "time_unit": "days", "samples": "samples.tsv", "rna": "features.tsv"}},
        # No encoder setting: the default (UNI) needs a local checkpoint only when slides are embedded, and none is.
        # Clinical covariates are not counts: "auto" would log-transform them (age, blood pressure exceed 100), and
        # every feature is kept (top_genes picks the most variable "genes" per fold).
        "rna": {"top_genes": n_features, "log_transform": False},
        "train": {
            "folds": FOLDS,
            "missing_rates": [],
            "models": ["rna_mlp"],
            "epochs": 50,
            "batch_size": 32,
            "lr": 1.0e-3,
            "warmup_epochs": 0,
            "hidden": 32,
            "rna_hidden": 32,
            "bootstrap_resamples": 1000,  # the schema's least: the CIs are not under test
        },
    }


def coxph_risks(matrix: pd.DataFrame, splits: pd.DataFrame) -> np.ndarray:
    """Out-of-fold risks of scikit-survival's CoxPH, one fit per test fold of splits.tsv, on that fold's training
    patients (every patient of the other folds), covariates z-scored on them."""
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    features = matrix[splits["patient_id"]].to_numpy(np.float64).T
    time, event = splits["time"].to_numpy(np.float64), splits["event"].to_numpy().astype(bool)
    folds = splits["fold"].to_numpy()
    risk = np.empty(len(splits))
    for fold in np.unique(folds):
        training, test = folds != fold, folds == fold
        scaler = StandardScaler().fit(features[training])
        # Unpenalised: it converges on every fold (alpha=0.01 gave the same C to 1e-12).
        model = CoxPHSurvivalAnalysis().fit(
            scaler.transform(features[training]), survival_array(time[training], event[training])
        )
        risk[test] = model.predict(scaler.transform(features[test]))
    return risk


def pooled_harrell_c(frame: pd.DataFrame, risk: np.ndarray) -> float:
    """Harrell's C over within-fold pairs, as metrics.tsv's ``pooled`` (mosare.evaluation.survival_results)."""
    return within_fold_counts(
        frame["time"].to_numpy(np.float64), frame["event"].to_numpy().astype(bool), risk, frame["fold"].to_numpy()
    ).c_index


@pytest.mark.slow
def test_whas500_coxnet_reference_matches_scikit_survival_coxph_on_the_same_folds(tmp_path) -> None:
    sheet, matrix = whas500()
    assert matrix.shape == (14, 500) and sheet["event"].sum() == 215
    workdir = make_workdir(tmp_path / "run", whas500_config(len(matrix)))
    sheet.to_csv(workdir / "samples.tsv", sep="\t", index=False)
    matrix.to_csv(workdir / "features.tsv", sep="\t")
    snakemake(workdir, "--cores", "2", f"results/{COHORT}/metrics.tsv")
    results = workdir / "results" / COHORT

    splits = pd.read_csv(results / "splits.tsv", sep="\t")
    assert len(splits) == 500 and set(splits["fold"]) == set(range(FOLDS))
    metrics = pd.read_csv(results / "metrics.tsv", sep="\t")
    harrell = metrics[(metrics["metric"] == "harrell_c") & (metrics["scenario"] == "complete")]
    pipeline_c = dict(zip(harrell["model"], harrell["pooled"]))
    assert set(pipeline_c) == {"rna_mlp", "coxnet_rna"}

    # The comparison below computes C as metrics.tsv does: recomputed from predictions.tsv, it is metrics.tsv's.
    predictions = pd.read_csv(results / "predictions.tsv", sep="\t")
    coxnet = predictions[(predictions["model"] == "coxnet_rna") & (predictions["scenario"] == "complete")]
    assert len(coxnet) == 500
    assert pooled_harrell_c(coxnet, coxnet["risk"].to_numpy()) == pytest.approx(pipeline_c["coxnet_rna"], abs=1e-12)

    coxph_c = pooled_harrell_c(splits, coxph_risks(matrix, splits))
    measured = f"CoxPH {coxph_c:.3f}, coxnet_rna {pipeline_c['coxnet_rna']:.3f}, rna_mlp {pipeline_c['rna_mlp']:.3f}"
    assert coxph_c > LEAST_REAL_SIGNAL, measured
    assert abs(pipeline_c["coxnet_rna"] - coxph_c) <= TOLERANCE, measured
    # Two-sided: a deep model far above a linear Cox on 14 clinical covariates would hint at a leak, not skill.
    assert abs(pipeline_c["rna_mlp"] - coxph_c) <= TOLERANCE, measured
