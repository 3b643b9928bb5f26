"""Encoders compared on one cohort: the table against independent computations, and the embedding cost."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from workflow_runs import (
    COHORT,
    REPO,
    chunk_jobs,
    finished_tiny_run,  # noqa: F401 (session fixture shared with test_orchestration and test_report)
    planned_jobs,
    snakemake,
    tiny_demo_config,
    write_config,
)

from mosare.evaluation.encoder_comparison import (
    EmbeddingCost,
    embedding_cost,
    encoder_comparison_markdown,
    encoder_comparison_table,
)
from mosare.features.feature_store import FeatureStore

CLASSES = ["LUAD", "LUSC"]


def predictions(signal: float, seed: int, models=("mosare", "abmil"), n: int = 60, repeats: int = 1) -> pd.DataFrame:
    """Out-of-fold predictions of ``models`` in two scenarios, each patient's class-1 probability pulled towards
    its label by ``signal``."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    rows = []
    for repeat in range(repeats):
        for model in models:
            for scenario, rate in (("complete", 0.0), ("masked_test", 0.5)):
                p = np.clip(0.5 + signal * (labels - 0.5) + 0.25 * rng.standard_normal(n), 0.01, 0.99)
                for patient, (label, prob) in enumerate(zip(labels, p)):
                    rows.append({"cohort": "c", "model": model, "scenario": scenario, "train_missing_rate": 0.0,
                                 "test_missing_rate": rate, "repeat": repeat, "patient_id": f"P{patient:02d}",
                                 "label": CLASSES[label], "prob_LUAD": 1 - prob, "prob_LUSC": prob})  # fmt: skip
    return pd.DataFrame(rows)


def test_each_encoders_auc_and_its_paired_difference_match_independent_computations():
    given = {"lite0": predictions(0.3, 0), "lite1": predictions(0.5, 1, models=("abmil",))}
    costs = {"lite0": EmbeddingCost(10.0, 900.0, 2000), "lite1": EmbeddingCost(30.0, 1200.0, 2000)}
    table = encoder_comparison_table(given, CLASSES, "lite0", costs, n_resamples=200, seed=0)

    # Only models every compared encoder trained (abmil), in both scenarios, for both encoders.
    assert set(table["model"]) == {"abmil"} and len(table) == 4
    for row in table.itertuples():
        frame = given[row.encoder]
        rows = frame[(frame["model"] == row.model) & (frame["scenario"] == row.scenario)]
        expected = roc_auc_score(rows["label"] == "LUSC", rows["prob_LUSC"])
        assert row.auc == pytest.approx(expected, abs=1e-12)
        assert row.auc_ci_low <= row.auc <= row.auc_ci_high
    reference = table[table["encoder"] == "lite0"].set_index("scenario")
    other = table[table["encoder"] == "lite1"].set_index("scenario")
    assert reference["auc_difference"].isna().all() and reference["p_holm"].isna().all()
    np.testing.assert_allclose(other["auc_difference"], other["auc"] - reference.loc[other.index, "auc"])
    assert (other["ci_low"] <= other["auc_difference"]).all() and (other["auc_difference"] <= other["ci_high"]).all()
    p = other["p_delong"].to_numpy()
    np.testing.assert_allclose(np.sort(other["p_holm"]), np.minimum(1, np.maximum.accumulate(np.sort(p) * [2, 1])))
    assert set(other["embedding_s_per_1000_patches"]) == {15.0} and set(other["embedding_peak_rss_mb"]) == {1200.0}

    text = encoder_comparison_markdown(table)
    assert "abmil, complete data: lite0" in text and "reference: lite0" in text
    assert "- lite1: 15.0 s per 1,000 patches (2000 patches), peak 1200 MB per job" in text


def test_repeats_are_averaged_per_patient_before_the_comparison():
    once = {"a": predictions(0.3, 0), "b": predictions(0.4, 1)}
    twice = {name: pd.concat([frame, frame.assign(repeat=1)]) for name, frame in once.items()}
    tables = [encoder_comparison_table(g, CLASSES, "a", {}, n_resamples=50, seed=0) for g in (once, twice)]
    pd.testing.assert_frame_equal(tables[0], tables[1])


def test_embedding_cost_sums_the_jobs_wall_time_and_keeps_the_largest_peak(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for index, (seconds, rss) in enumerate(((12.5, 800.0), (7.5, 950.5))):
        (tmp_path / f"chunk{index}.tsv").write_text(header + f"{seconds}\t0:00:12\t{rss}\t1\t1\t1\t0\t0\t90\t11\n")
    cost = embedding_cost(sorted(tmp_path.glob("chunk*.tsv")), patches=4000)
    assert (cost.seconds, cost.peak_rss_mb, cost.seconds_per_1000_patches) == (20.0, 950.5, 5.0)
    with pytest.raises(FileNotFoundError, match="chunk9.tsv"):
        embedding_cost([tmp_path / "chunk9.tsv"], patches=1)


# ---------------------------------------------------------------- the workflow: what adding an encoder reruns

COMPARED = "efficientnet-lite1"


def with_compared_encoder() -> dict:
    config = tiny_demo_config()
    config["compare_encoders"] = [COMPARED]
    return config


@pytest.mark.slow  # the shared tiny run takes minutes on 2 cores
def test_adding_an_encoder_to_a_finished_run_plans_only_its_embedding_gmms_training_and_the_comparison(
    finished_tiny_run,
):
    run = finished_tiny_run
    target = f"results/{COHORT}/encoder_comparison.tsv"
    write_config(run.workdir, with_compared_encoder())
    try:
        planned = planned_jobs(run.workdir, *run.targets, target, repo=run.repo)
    finally:
        write_config(run.workdir, tiny_demo_config())
    embedding, gmms = chunk_jobs(planned, "embed_slides"), chunk_jobs(planned, "fit_slide_gmms")
    assert embedding and all(rule.endswith(f"_{COMPARED.replace('-', '_')}") for rule in embedding)
    assert gmms and all(rule.endswith(f"_{COMPARED.replace('-', '_')}") for rule in gmms)
    folds = tiny_demo_config()["train"]["folds"]
    assert {rule: n for rule, n in planned.items() if rule not in {**embedding, **gmms}} == {
        "fingerprint_encoder": 1,
        "train_fold_compared_encoder": folds,
        "evaluate_compared_encoder": 1,
        "encoder_comparison": 1,
    }


@pytest.mark.slow  # the shared tiny run takes minutes on 2 cores
def test_one_command_compares_two_encoders_on_the_same_patients(finished_tiny_run, tmp_path):
    run = finished_tiny_run
    workdir = tmp_path / "work"
    shutil.copytree(run.workdir, workdir)  # a copy: the shared run stays as it was
    write_config(workdir, with_compared_encoder())
    # The copy's demo slides have other absolute paths, which would rerun every slide job on the "input" trigger.
    snakemake(workdir, f"results/{COHORT}/encoder_comparison.tsv", "--rerun-triggers", "mtime", repo=run.repo)

    results = workdir / "results" / COHORT
    table = pd.read_csv(results / "encoder_comparison.tsv", sep="\t")
    assert list(dict.fromkeys(table["encoder"])) == ["efficientnet-lite0", COMPARED]
    assert set(table["model"]) == set(tiny_demo_config()["train"]["models"])  # every model of the tiny run reads slides
    primary = pd.read_csv(results / "metrics.tsv", sep="\t")
    for row in table[table["encoder"] == "efficientnet-lite0"].itertuples():
        pooled = primary[(primary["model"] == row.model) & (primary["scenario"] == row.scenario)
                         & (primary["test_missing_rate"] == row.test_missing_rate) & (primary["metric"] == "auc")]  # fmt: skip
        assert pooled["pooled"].iloc[0] == pytest.approx(row.auc)  # the reference row is metrics.tsv's AUC
    compared = table[table["encoder"] == COMPARED]
    assert compared["p_holm"].notna().all() and (compared["embedding_s_per_1000_patches"] > 0).all()
    assert (results / "encoder_comparison.png").stat().st_size > 10_000
    assert "reference: efficientnet-lite0" in (results / "encoder_comparison.md").read_text()
    features = sorted((results / "features" / COMPARED).glob("*.zarr"))
    assert features and FeatureStore.read(features[0]).dim == 1280  # lite1's width


# ---------------------------------------------------------------- configuration


def shipped_config() -> dict:
    import yaml

    from mosare.config import validate_config

    return validate_config(yaml.safe_load((REPO / "config.yaml").read_text()))


def test_compared_encoders_inherit_the_encoders_settings_and_train_only_models_that_read_slides():
    from mosare.config import encoder_comparison_train_config, run_encoders

    config = shipped_config()
    config["compare_encoders"] = ["efficientnet-lite1", {"name": "timm:resnet18", "checkpoint": "/w/r.pth"}]
    encoders = run_encoders(config)
    assert list(encoders) == ["efficientnet-lite0", "efficientnet-lite1", "timm-resnet18"]
    assert encoders["efficientnet-lite1"] == {**config["encoder"], "name": "efficientnet-lite1", "checkpoint": None}
    assert encoders["timm-resnet18"]["checkpoint"] == "/w/r.pth"
    models = encoder_comparison_train_config(config, "nsclc")["models"]
    assert "abmil" in models and "mosare" in models and not {"rna_mlp", "report_mlp"} & set(models)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("efficientnet-lite9", "unknown encoder.name 'efficientnet-lite9'"),
        ("efficientnet-lite0", "names 'efficientnet-lite0' twice, or the encoder itself"),
        ("uni", "give it as {name: uni, checkpoint: /path/to/weights}"),
    ],
)
def test_a_compared_encoder_that_cannot_run_fails_planning_naming_it(entry, message):
    from mosare.config import ConfigError, check_encoder_weights_configured

    config = shipped_config()
    config["compare_encoders"] = [entry]
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_encoder_weights_configured(config)


# ------------------------------------------------------------------------------------ a survival cohort's comparison


def survival_predictions(noise: float, seed: int, n: int = 80, folds: int = 4) -> pd.DataFrame:
    """Out-of-fold risks of mosare and abmil on complete data for ``n`` patients in ``folds`` folds, each fold's risks
    on its own scale (a fold offset): the true risk plus ``noise``."""
    outcome = np.random.default_rng(0)  # the same patients and outcomes for every encoder
    true_risk = outcome.standard_normal(n)
    time = np.round(outcome.exponential(20.0 * np.exp(-true_risk)) + 0.1, 1)
    event = (outcome.random(n) < 0.7).astype(int)
    fold = np.arange(n) % folds
    rng = np.random.default_rng(seed)
    rows = []
    for model in ("mosare", "abmil", "coxnet_rna"):  # the ridge-Cox reference row reads no slide: never compared
        risk = true_risk + noise * rng.standard_normal(n) + 3.0 * fold
        rows.append(pd.DataFrame({
            "cohort": "c", "model": model, "scenario": "complete", "train_missing_rate": 0.0, "test_missing_rate": 0.0,
            "repeat": 0, "fold": fold, "patient_id": [f"P{i:02d}" for i in range(n)], "time": time, "event": event,
            "risk": risk,
        }))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def within_fold_c_by_scikit_survival(frame: pd.DataFrame) -> float:
    """Harrell's C over within-fold pairs from scikit-survival's per-fold counts (independent of our code)."""
    from sksurv.metrics import concordance_index_censored

    concordant = tied = comparable = 0
    for _, fold in frame.groupby("fold"):
        _, c, d, t, _ = concordance_index_censored(fold["event"].astype(bool), fold["time"], fold["risk"])
        concordant, tied, comparable = concordant + c, tied + t, comparable + c + d + t
    return (concordant + 0.5 * tied) / comparable


def test_survival_encoders_are_compared_by_within_fold_harrell_c_on_the_same_patients():
    from mosare.evaluation.encoder_comparison import survival_encoder_comparison_table

    sharp, blurred = survival_predictions(0.2, seed=1), survival_predictions(3.0, seed=2)
    table = survival_encoder_comparison_table(
        {"lite0": blurred, "uni": sharp}, "lite0", {"lite0": EmbeddingCost(10.0, 500.0, 1000)}, 500, 0
    )
    assert list(table["encoder"]) == ["lite0", "lite0", "uni", "uni"] and "auc" not in table
    assert set(table["model"]) == {"mosare", "abmil"}
    for row in table.itertuples():
        frame = {"lite0": blurred, "uni": sharp}[row.encoder]
        expected = within_fold_c_by_scikit_survival(frame[frame["model"] == row.model])
        assert row.harrell_c == pytest.approx(expected, abs=1e-12)
        assert row.harrell_c_ci_low <= row.harrell_c <= row.harrell_c_ci_high
    uni = table[table["encoder"] == "uni"].set_index("model")
    lite0 = table[table["encoder"] == "lite0"].set_index("model")
    difference = uni["harrell_c"] - lite0["harrell_c"]
    assert np.allclose(uni["c_index_difference"], difference, atol=1e-12) and (difference > 0.1).all()
    assert (uni["ci_low"] > 0).all() and (uni["p_holm"] < 0.05).all()
    assert lite0["c_index_difference"].isna().all() and lite0["embedding_s_per_1000_patches"].iloc[0] == 10.0
    markdown = encoder_comparison_markdown(table)
    assert "Harrell's C" in markdown and "best: uni" in markdown and "Significant after Holm" in markdown


def test_an_encoder_with_the_references_risks_differs_by_exactly_zero(tmp_path):
    from mosare.evaluation.encoder_comparison import survival_encoder_comparison_table
    from mosare.reporting.plots.encoders import plot_encoder_comparison

    same = survival_predictions(1.0, seed=3)
    table = survival_encoder_comparison_table({"lite0": same, "lite1": same.copy()}, "lite0", {}, 200, 0)
    compared = table[table["encoder"] == "lite1"]
    assert (compared["c_index_difference"] == 0).all() and (compared["p_value"] == 1).all()
    plot_encoder_comparison(table, tmp_path / "encoders.png")
    assert (tmp_path / "encoders.png").stat().st_size > 0
