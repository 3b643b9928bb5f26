"""Cohorts that lack a whole modality (no RNA matrix, no reports) train end to end with honest tables.

The stage runs the real models (tiny sizes) on small synthetic cohorts written in the real store formats.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from synthetic_cohort import small_train_config, stand_in_factory, write_synthetic_cohort

from mosare.cohort.table import assemble_cohort
from mosare.config import validate_config
from mosare.core.samples import load_sample_sheet
from mosare.core.stores import write_store
from mosare.evaluation.metrics import metrics_markdown, summarise_folds
from mosare.evaluation.scenarios import Scenario, plan_evaluation, scenario_presence, scenarios
from mosare.evaluation.splits import make_folds
from mosare.features.expression import build_rna_store
from mosare.features.reports import TextFeatures, patient_reports, write_text_store
from mosare.model.factory import ModelDims, build_model
from mosare.reporting.cohort_figures import CohortResults, draw_cohort_figure
from mosare.training.cross_validation import cross_validate
from mosare.training.stage import train_and_evaluate

CLASSES = ["A", "B"]
MODELS = ["mosare", "abmil", "rna_mlp", "report_mlp", "late_fusion"]


def tiny_config(**overrides):
    return small_train_config(
        **{"folds": 2, "epochs": 2, "models": MODELS, "hidden": 8, "prototypes_per_class": 2, **overrides}
    )


def test_user_cohort_of_slides_only_is_valid_and_its_cohort_table_flags_no_rna_and_no_reports(tmp_path):
    config = validate_config(
        {"cohorts": {"slides_only": {"classes": CLASSES, "samples": str(tmp_path / "samples.tsv")}}}
    )
    assert "rna" not in config["cohorts"]["slides_only"]
    for slide in ("s1", "s2"):
        (tmp_path / f"{slide}.svs").write_bytes(b"")
        write_store(
            tmp_path / f"{slide}.zarr", {"features": np.zeros((3, 4), np.float16), "coords": np.zeros((3, 2), np.int64)}
        )
    (tmp_path / "samples.tsv").write_text(
        "patient_id\tslide_id\tslide_path\tlabel\np1\ts1\ts1.svs\tA\np2\ts2\ts2.svs\tB\n"
    )
    sheet = load_sample_sheet(tmp_path / "samples.tsv", CLASSES)
    assert patient_reports(sheet) == {"p1": None, "p2": None}
    build_rna_store(None, ["p1", "p2"], {"top_genes": 10}, tmp_path / "rna.zarr")  # what the rule does without rna:
    no_text = TextFeatures(["p1", "p2"], np.zeros((2, 7), np.float32), np.zeros((2, 3, 7), np.float32),
                           np.zeros(2, bool), np.zeros(2, np.int32))  # fmt: skip
    write_text_store(tmp_path / "text.zarr", no_text, {})
    slides = {slide: tmp_path / f"{slide}.zarr" for slide in ("s1", "s2")}
    table = assemble_cohort(sheet, slides, tmp_path / "text.zarr", tmp_path / "rna.zarr")
    assert table.present.tolist() == [[True, False, False]] * 2


def run_stage(root, **cohort_options):
    """The whole training stage on a 12-patient cohort; returns (metrics.tsv, metrics.md text, output folder)."""
    paths = write_synthetic_cohort(root, n_patients=12, **cohort_options)
    outputs = {name: root / file for name, file in [
        ("splits", "splits.tsv"), ("metrics", "metrics.tsv"), ("summary", "metrics.md"),
        ("comparisons", "comparisons.tsv"), ("predictions", "predictions.tsv"), ("train_dir", "train"),
    ]}  # fmt: skip
    threads = torch.get_num_threads()
    try:
        train_and_evaluate("toy", CLASSES, tiny_config(), paths, outputs, threads=1)
    finally:
        torch.set_num_threads(threads)
    return pd.read_csv(outputs["metrics"], sep="\t"), outputs["summary"].read_text(encoding="utf-8"), root


@pytest.fixture(scope="module")
def without_rna(tmp_path_factory):
    return run_stage(tmp_path_factory.mktemp("no-rna"), with_rna=False)


@pytest.fixture(scope="module")
def without_reports(tmp_path_factory):
    return run_stage(tmp_path_factory.mktemp("no-reports"), with_text=False)


@pytest.mark.parametrize(
    "kept, options",
    [("rna", {"with_text": False}), ("text", {"with_rna": False}), ("rna+text", {})],
    ids=["rna-only", "report-only", "no-slides"],
)
def test_cohort_without_any_slide_trains_end_to_end_with_the_models_that_apply(tmp_path, kept, options):
    table, summary, root = run_stage(
        tmp_path, without_wsi=tuple(range(12)), missing_rna=0.0, missing_text=0.0, **options
    )
    runnable = {"mosare", "late_fusion"} | {
        "rna": {"rna_mlp"},
        "text": {"report_mlp"},
        "rna+text": {"rna_mlp", "report_mlp"},
    }[kept]
    assert set(table["model"]) == runnable
    assert "- abmil: reads only WSI, which no patient of the cohort has" in summary
    assert np.isfinite(table.loc[table["metric"] == "auc", "pooled"]).all()
    state = torch.load(root / "train" / "mosare" / "complete" / "fold0" / "checkpoint.pt", weights_only=True)
    assert not [key for key in state if key.startswith(("wsi_global.", "wsi_local."))]


def model_rows(table: pd.DataFrame) -> dict[str, set[str]]:
    return {model: set(rows["scenario"]) for model, rows in table.groupby("model")}


def test_cohort_without_rna_reports_every_model_but_the_rna_baseline_in_every_scenario(without_rna):
    table, _, _ = without_rna
    every_scenario = {"complete", "masked_train", "masked_train_test"}
    assert model_rows(table) == {m: every_scenario for m in MODELS if m != "rna_mlp"}
    folds = table[["fold0", "fold1"]].to_numpy()
    assert np.isfinite(table["mean"]).all() and np.isfinite(folds).all()  # no NaN, no fold left out


def test_cohort_without_rna_names_the_rna_baseline_as_not_run_in_the_summary(without_rna):
    _, summary, _ = without_rna
    assert "| rna_mlp |" not in summary
    assert "| mosare |" in summary and "| late_fusion |" in summary and "| report_mlp |" in summary
    assert "- rna_mlp: reads only RNA, which no patient of the cohort has" in summary


def test_cohort_without_rna_writes_no_rna_baseline_outputs_and_fusion_models_have_no_rna_encoder(without_rna):
    _, _, root = without_rna
    assert not (root / "train" / "rna_mlp").exists()
    for model, prefixes in (("mosare", ("rna_global.", "rna_local.")), ("late_fusion", ("encoders.1.",))):
        state = torch.load(root / "train" / model / "complete" / "fold0" / "checkpoint.pt", weights_only=True)
        assert not [key for key in state if key.startswith(prefixes)], model
        history = pd.read_csv(root / "train" / model / "masked_train_test-0.5" / "fold1" / "history.tsv", sep="\t")
        assert np.isfinite(history[["loss", "val_loss"]].to_numpy()).all()
    predictions = pd.read_csv(root / "train" / "mosare" / "complete" / "fold0" / "predictions.tsv", sep="\t")
    np.testing.assert_allclose(predictions[["prob_A", "prob_B"]].sum(axis=1), 1.0, atol=1e-6)
    results = CohortResults.read(
        "toy", CLASSES, cohort_table=root / "cohort.tsv", metrics=root / "metrics.tsv",
        comparisons=root / "comparisons.tsv", predictions=root / "predictions.tsv", train_dir=root / "train",
    )  # fmt: skip
    for figure in ("roc", "training_curves", "calibration", "comparisons"):
        draw_cohort_figure(figure, results, root / f"{figure}.png")
        assert (root / f"{figure}.png").stat().st_size > 0


def test_cohort_without_reports_reports_every_model_but_the_report_baseline(without_reports):
    table, summary, root = without_reports
    every_scenario = {"complete", "masked_train", "masked_train_test"}
    assert model_rows(table) == {m: every_scenario for m in MODELS if m != "report_mlp"}
    assert np.isfinite(table[table["model"] != "rna_mlp"][["fold0", "fold1"]].to_numpy()).all()
    assert "| report_mlp |" not in summary
    assert "- report_mlp: reads only reports, which no patient of the cohort has" in summary
    state = torch.load(root / "train" / "mosare" / "complete" / "fold1" / "checkpoint.pt", weights_only=True)
    assert not [key for key in state if key.startswith("report.")]


def test_rna_baseline_trains_only_in_folds_whose_training_part_shows_rna_and_the_summary_says_so(tmp_path):
    paths = write_synthetic_cohort(tmp_path, n_patients=18, missing_rna=0.0)
    data = paths.load(CLASSES)
    config = tiny_config(folds=3, missing_rates=[], models=["late_fusion", "rna_mlp"])
    folds = make_folds(data.patient_ids, data.labels, 3, config["seed"])
    data.available[:, 1] = folds == 0  # only fold 0's patients have RNA: folds 1 and 2 train on it, fold 0 cannot
    _, fold_metrics, predictions, _ = cross_validate(
        data, config, "toy", tmp_path / "train", torch.device("cpu"), stand_in_factory((16, 24, 12)), dims=(16, 24, 12)
    )
    rna = fold_metrics[fold_metrics["model"] == "rna_mlp"].set_index("fold")
    assert math.isnan(rna.loc[0, "auc"]) and np.isfinite(rna.loc[[1, 2], "auc"]).all()
    assert sorted(predictions[predictions["model"] == "rna_mlp"]["fold"].unique()) == [1, 2]
    assert not (tmp_path / "train" / "rna_mlp" / "complete" / "fold0").exists()
    summary = metrics_markdown(summarise_folds(fold_metrics, 3), "auc", config["models"])
    assert "(2/3 folds) |" in summary.split("| rna_mlp |")[1].splitlines()[0]


def test_slides_only_cohort_runs_the_complete_scenario_alone_and_says_why():
    available = np.zeros((10, 3), dtype=bool)
    available[:, 0] = True
    plan = plan_evaluation(available, MODELS, [0.3, 0.5])
    assert plan.models == ["mosare", "abmil", "late_fusion"]
    assert [s.slug for s in plan.scenarios] == ["complete"]
    assert set(plan.skipped) == {
        "rna_mlp", "report_mlp", "masked_train-0.3", "masked_train_test-0.3", "masked_train-0.5", "masked_train_test-0.5",
    }  # fmt: skip
    assert "equals complete" in plan.skipped["masked_train-0.3"]


def test_no_configured_model_able_to_run_fails_naming_the_fix(tmp_path):
    paths = write_synthetic_cohort(tmp_path, n_patients=6, with_rna=False)
    data = paths.load(CLASSES)
    with pytest.raises(ValueError, match="none of train.models.*add abmil or a fusion model"):
        cross_validate(data, tiny_config(models=["rna_mlp"]), "toy", tmp_path / "train", torch.device("cpu"))


def test_fusion_model_never_reads_a_modality_absent_from_the_cohort(one_torch_thread):
    dims = ModelDims(wsi_dim=6, rna_genes=0, text_dim=0, local_tokens=3, hidden=8)
    torch.manual_seed(0)
    batch = {
        "wsi_patches": torch.randn(4, 5, 6),
        "wsi_patch_mask": torch.ones(4, 5, dtype=torch.bool),
        "wsi_local": torch.randn(4, 3, 6),
        "rna": torch.zeros(4, 0),
        "text_global": torch.zeros(4, 7),
        "text_local": torch.zeros(4, 3, 7),
        "present": torch.tensor([[True, False, False]] * 4),
        "label": torch.tensor([0, 1, 0, 1]),
    }
    garbage = {**batch, "text_global": torch.full((4, 7), float("nan")), "text_local": torch.full((4, 3, 7), 1e6)}
    for name in ("mosare", "late_fusion"):
        model = build_model(name, dims, 2, {}).eval()
        logits = model(batch)["logits"]
        assert torch.isfinite(logits).all()
        assert torch.equal(logits, model(garbage)["logits"]), name


@pytest.mark.parametrize(("name", "dims"), [("rna_mlp", (6, 0, 7)), ("report_mlp", (6, 5, 0))])
def test_single_modality_baseline_without_its_modality_cannot_be_built(name, dims):
    with pytest.raises(ValueError, match=f"{name}: the baseline reads only .* leave it out of train.models"):
        build_model(name, ModelDims(*dims, local_tokens=4, hidden=8), 2, {})


def test_masks_of_a_cohort_without_rna_never_drop_a_slide_and_drop_reports_at_about_the_rate():
    available = np.ones((3000, 3), dtype=bool)
    available[:, 1] = False
    presence = scenario_presence(available, np.arange(3000) % 2, np.arange(3000) % 3, 0, scenarios([0.5]), seed=0)
    shown = presence[Scenario("masked_train_test", 0.5, 0.5)][0]
    assert shown[:, 0].all() and not shown[:, 1].any()
    assert 0.45 < 1 - shown[:, 2].mean() < 0.55
