"""The survival demo cohort: deterministic, censored as intended, and one latent risk shared by the event times, the
slides' morphology, the RNA and the reports, none of which states the outcome."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sksurv.metrics import concordance_index_censored

from mosare.demo.plan import make_demo_plan
from mosare.demo.render import patient_phenotype
from mosare.demo.reports import demo_report, survival_report
from mosare.demo.survival import (
    SURVIVAL_SHEET_COLUMNS,
    SurvivalDemoPlan,
    SurvivalModel,
    event_times,
    expected_censored_fraction,
    make_survival_demo_plan,
    morphology_position,
    plan_survival_demo_cohort,
)
from mosare.demo.writer import (
    demo_rna_matrix,
    survival_risk_genes,
    survival_rna_matrix,
    write_survival_demo_cohort,
)

LARGE = {
    "patients": 400,
    "seed": 3,
    "genes": 300,
    "noise_genes": 100,
    "fraction_missing_rna": 0.0,
    "fraction_missing_report": 0.0,
}
TINY = {"patients": 6, "seed": 5, "slide_px": 2048, "genes": 60, "fraction_two_slides": 0.34}
OUTCOME_WORDS = re.compile(r"surviv|died|death|dead|deceased|alive|month|censor|recurr|relapse|follow|outcome", re.I)


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> SurvivalDemoPlan:
    return make_survival_demo_plan("kirc", LARGE, tmp_path_factory.mktemp("survival"))


def harrell_c(plan: SurvivalDemoPlan, score: np.ndarray, patients: list[int] | None = None) -> float:
    outcomes = [plan.outcomes[i] for i in (range(len(plan.outcomes)) if patients is None else patients)]
    event = np.array([o.event for o in outcomes], dtype=bool)
    time = np.array([o.time for o in outcomes])
    return float(concordance_index_censored(event, time, np.asarray(score, dtype=float))[0])


def test_plan_is_deterministic_for_a_seed_and_changes_with_the_seed(tmp_path):
    first = make_survival_demo_plan("kirc", {"patients": 30, "seed": 1}, tmp_path)
    again = make_survival_demo_plan("kirc", {"patients": 30, "seed": 1}, tmp_path)
    other = make_survival_demo_plan("kirc", {"patients": 30, "seed": 2}, tmp_path)
    pd.testing.assert_frame_equal(first.sheet, again.sheet)
    pd.testing.assert_frame_equal(survival_rna_matrix(first), survival_rna_matrix(again))
    assert [survival_report(first.base, p, first.outcome(p).risk) for p in first.base.patients] == [
        survival_report(again.base, p, again.outcome(p).risk) for p in again.base.patients
    ]
    assert first.sheet["time"].tolist() != other.sheet["time"].tolist()
    pd.testing.assert_frame_equal(plan_survival_demo_cohort("kirc", {"patients": 30, "seed": 1}, tmp_path), first.sheet)


def test_sheet_has_the_survival_columns_one_outcome_per_patient_and_no_risk(tmp_path):
    config = {"patients": 40, "seed": 1, "fraction_missing_report": 0.25, "fraction_two_slides": 0.1}
    plan = make_survival_demo_plan("kirc", config, tmp_path)
    sheet = plan.sheet
    assert list(sheet.columns) == SURVIVAL_SHEET_COLUMNS
    assert (sheet["time"] > 0).all() and set(sheet["event"]) == {0, 1}
    assert (sheet.groupby("patient_id")[["time", "event"]].nunique() == 1).all().all()
    assert (sheet.groupby("patient_id").size() == 2).sum() == 4
    patients = sheet.drop_duplicates("patient_id")
    assert patients["report_path"].isna().sum() == 10
    assert [Path(p) for p in sheet["slide_path"]] == [tmp_path / "slides" / f"{s}.svs" for s in sheet["slide_id"]]
    assert sheet["mpp"].isna().all()
    sites = pd.crosstab(patients["site"], patients["event"])
    assert list(sites.index) == ["S1", "S2", "S3", "S4", "S5"]
    assert (sites > 0).all().all(), "every site holds events and censorings"


def test_event_times_follow_the_weibull_model_with_the_chosen_median_and_censoring():
    model = SurvivalModel()
    rng = np.random.default_rng(0)
    risk = rng.standard_normal(40_000)
    times = event_times(risk, rng.random(40_000), model)
    assert np.median(times) == pytest.approx(model.median_months, rel=0.03)
    censor = rng.uniform(*model.censor_months, 40_000)
    assert (times > censor).mean() == pytest.approx(expected_censored_fraction(model), abs=0.01)
    assert 0.3 < expected_censored_fraction(model) < 0.4
    # Proportional hazards: at r = 1 the hazard is exp(beta) times that at r = 0, so S(t | 1) = S(t | 0) ** exp(beta).
    at_zero, at_one = event_times(np.zeros(3), np.array([0.2, 0.5, 0.8]), model), event_times(np.ones(3), 0.5, model)
    assert at_one[0] == pytest.approx(at_zero[1] * np.exp(-model.log_hazard_ratio / model.shape))


def test_censoring_fraction_is_in_the_intended_range(large):
    events = np.array([o.event for o in large.outcomes])
    assert 0.28 < 1 - events.mean() < 0.42
    times = np.array([o.time for o in large.outcomes])
    assert times.min() >= 0.1 and np.array_equal(times, np.round(times, 1))
    assert times[events == 0].min() >= SurvivalModel().censor_months[0] - 0.05


def test_higher_risk_gives_shorter_times_but_not_perfectly(large):
    c = harrell_c(large, large.risks)
    assert 0.7 < c < 0.85


def test_rna_risk_module_follows_the_risk_and_single_genes_carry_some_but_not_all_of_it(large):
    rna = np.log2(survival_rna_matrix(large) + 1.0)
    assert list(rna.columns) == [p.patient_id for p in large.base.patients]
    assert len(rna) == LARGE["genes"] + large.base.settings["noise_genes"], "the noise genes are kept"
    module = survival_risk_genes(large)
    assert len(module) == 10
    assert np.corrcoef(rna.loc[module].mean(), large.risks)[0, 1] > 0.6
    gene_c = pd.Series({gene: harrell_c(large, rna.loc[gene].to_numpy()) for gene in rna.index})
    strength = (gene_c - 0.5).abs() + 0.5
    assert 0.6 < strength.max() < 0.9
    assert strength.idxmax() in module
    assert strength.drop(module).max() < strength[module].max()


def test_report_findings_grow_more_aggressive_with_risk_and_never_state_the_outcome(large):
    reports = [survival_report(large.base, p, large.outcome(p).risk) for p in large.base.patients]
    risk = large.risks
    low, high = risk < np.quantile(risk, 1 / 3), risk > np.quantile(risk, 2 / 3)
    for phrase in (
        "poorly differentiated",
        "marked nuclear pleomorphism",
        "Lymphovascular invasion is present",
        "Tumor necrosis involves",
        r"\b[1-9]\d* of \d+ lymph nodes involved",
    ):
        has = np.array([bool(re.search(phrase, text)) for text in reports])
        assert has[high].mean() > has[low].mean() + 0.2, phrase
        assert 0.05 < has.mean() < 0.6, f"{phrase}: seen in some reports, not all"
    assert np.mean(["well differentiated" in text for text in np.array(reports)[high]]) < 0.2
    assert not [text for text in reports if OUTCOME_WORDS.search(text)]
    for text, outcome in zip(reports, large.outcomes, strict=True):
        # Reports hold sizes below 10 cm and whole counts: a time of 10 months or more written out would be a leak.
        if outcome.time >= 10:
            assert f"{outcome.time:.1f}" not in text
    assert len(set(reports)) == len(reports)


def test_slides_are_drawn_more_solid_with_higher_risk(large):
    positions = [p.class_position for p in large.base.patients]
    assert positions == [morphology_position(r) for r in large.risks]
    seed = LARGE["seed"]
    phenotypes = [patient_phenotype(seed, p.index, p.class_position) for p in large.base.patients]
    knobs = pd.DataFrame([vars(phenotype) for phenotype in phenotypes])
    assert spearmanr(knobs["gland_fraction"], large.risks)[0] < -0.3
    assert spearmanr(knobs["nucleus_radius_um"], large.risks)[0] > 0.25
    assert spearmanr(knobs["epithelial_density"], large.risks)[0] > 0.1
    assert spearmanr(knobs["lymphocyte_level"], large.risks)[0] == pytest.approx(0.0, abs=0.15)


def test_a_written_survival_cohort_holds_its_planned_sheet_reports_and_rna(tmp_path):
    out_dir = tmp_path / "kirc"
    sheet = write_survival_demo_cohort("kirc", TINY, out_dir)
    plan = make_survival_demo_plan("kirc", TINY, out_dir)
    pd.testing.assert_frame_equal(sheet, plan.sheet)
    written = pd.read_csv(out_dir / "samples.tsv", sep="\t", keep_default_na=False)
    assert list(written.columns) == SURVIVAL_SHEET_COLUMNS
    assert written["time"].tolist() == plan.sheet["time"].tolist()
    assert written["event"].tolist() == plan.sheet["event"].tolist()
    assert [str(out_dir / p) for p in written["slide_path"]] == plan.sheet["slide_path"].tolist()
    assert all((out_dir / p).is_file() for p in written["slide_path"])
    assert {p.stem for p in (out_dir / "reports").glob("*.txt")} == {
        p.patient_id for p in plan.base.patients if p.has_report
    }
    rna = pd.read_csv(out_dir / "rna.tsv", sep="\t", index_col="gene_id")
    assert list(rna.columns) == [p.patient_id for p in plan.base.patients if p.has_rna]
    text = (out_dir / "samples.tsv").read_text()
    assert "label" not in text and "risk" not in text


def _classification_tables_digest(cohort: str, demo: dict, out_dir: Path) -> str:
    plan = make_demo_plan(cohort, demo, ["LUAD", "LUSC"], out_dir)
    sheet = plan.sheet
    relative = sheet.assign(
        slide_path=[str(Path(p).relative_to(plan.out_dir)) for p in sheet["slide_path"]],
        report_path=[
            str(Path(p).relative_to(plan.out_dir)) if isinstance(p, str) else "" for p in sheet["report_path"]
        ],
    )
    digest = hashlib.sha256(relative.to_csv(sep="\t", index=False, lineterminator="\n").encode())
    digest.update(demo_rna_matrix(plan).to_csv(sep="\t", lineterminator="\n").encode())
    for patient in plan.patients:
        digest.update(demo_report(plan, patient).encode())
    return digest.hexdigest()


@pytest.mark.parametrize(
    ("cohort", "demo", "expected"),
    [
        ("nsclc", {"patients": 40, "seed": 1}, "9f122c492423e9bfb0dbd15eda04340052615806cb5c511d23860cbf841aebf7"),
        (
            "nsclc_external",
            {"patients": 40, "seed": 11, "biology_seed": 1, "fraction_40x": 1.0, "stain_shift": 0.15,
             "fraction_missing_rna": 0.3, "fraction_missing_report": 0.05},
            "39be674da80480fb192d3d17e2d57dfd9edb7491d108d601df620fbb023a6daa",
        ),
    ],
)  # fmt: skip
def test_the_classification_demo_tables_are_byte_identical_to_before_survival(tmp_path, cohort, demo, expected):
    """The sheet, RNA and reports of the shipped nsclc demos, as written before the survival demo shared their code
    (issue 22: the classification outputs must not change)."""
    assert _classification_tables_digest(cohort, demo, tmp_path) == expected
