"""Site-aware cross-validation (``train.split: site``): sites never straddle a test fold, planning names the counts
when the sites cannot make the folds, sites come from the sheet or TCGA barcodes, and ``split: patient`` is unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.model_selection import StratifiedGroupKFold
from synthetic_cohort import small_train_config, write_synthetic_cohort
from workflow_runs import REPO, make_workdir, snakemake, tiny_demo_config

from mosare.cohort.table import CohortError, CohortTable, sheet_patient_labels, sheet_patient_sites
from mosare.core.samples import SampleSheetError, load_sample_sheet, patient_sites
from mosare.demo.plan import plan_demo_cohort
from mosare.evaluation import splits as splits_module
from mosare.evaluation.results import split_markdown
from mosare.evaluation.splits import check_cohort_splits, make_folds, repeat_seed

CLASSES = ["LUAD", "LUSC"]


def site_cohort(n_sites: int = 8, per_site: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(patient ids, labels, sites): sites of unequal class mix, every class in several sites."""
    rng = np.random.default_rng(3)
    sites = np.repeat([f"H{k}" for k in range(n_sites)], per_site)
    leaning = rng.uniform(0.2, 0.8, n_sites)
    labels = (rng.random(len(sites)) < np.repeat(leaning, per_site)).astype(np.int64)
    labels[::per_site], labels[1::per_site] = 0, 1  # every site holds both classes
    return np.array([f"P{i:03d}" for i in range(len(sites))]), labels, sites


def assert_sites_on_one_side(folds: np.ndarray, sites: np.ndarray) -> None:
    for site in np.unique(sites):
        assert len(np.unique(folds[sites == site])) == 1, f"site {site} straddles test folds"


# ---------------------------------------------------------------- the folds


def test_site_folds_keep_every_site_on_one_side_of_every_test_fold_in_every_repeat():
    ids, labels, sites = site_cohort()
    config = small_train_config(folds=4, split="site")
    for repeat in range(3):
        folds = check_cohort_splits(
            "c", ids, labels, {**config, "seed": repeat_seed(0, repeat)}, sites=sites, classes=CLASSES
        )
        assert sorted(np.unique(folds)) == [0, 1, 2, 3]
        assert_sites_on_one_side(folds, sites)
        for fold in range(4):
            assert not set(sites[folds == fold]) & set(sites[folds != fold])


def test_site_folds_reach_training_through_the_cohort_table(tmp_path):
    from mosare.training.cross_validation import fold_parts, plan_cross_validation, splits_table

    inputs = write_synthetic_cohort(tmp_path, n_patients=48)
    table = pd.read_csv(inputs.cohort_table, sep="\t", dtype=str, keep_default_na=False)
    sites = np.array([f"H{i % 8}" for i in range(len(table))])
    table.assign(site=sites).to_csv(inputs.cohort_table, sep="\t", index=False)
    data = inputs.load(["A", "B"])
    assert data.sites is not None and list(data.sites) == list(sites)
    config = small_train_config(folds=4, repeats=2, split="site")

    cv = plan_cross_validation(data, config, "c", tmp_path / "train", dims="unused")

    for repeat in range(2):
        assert_sites_on_one_side(cv.folds[repeat], data.sites)
        for fold in range(4):
            fit, val, test = fold_parts(data, cv.context, repeat, fold)
            assert not set(data.sites[test]) & set(data.sites[np.concatenate([fit, val])])
    written = splits_table(data, cv.folds)
    assert list(written.columns) == ["patient_id", "label", "site", "fold", "fold_repeat1"]
    patient_cv = plan_cross_validation(data, {**config, "split": "patient"}, "c", tmp_path / "train", dims="unused")
    assert np.array_equal(patient_cv.folds[0], make_folds(data.patient_ids, data.labels, 4, 0))


def test_split_patient_draws_exactly_the_folds_it_drew_before_sites_existed():
    ids = np.array([f"P{i:02d}" for i in range(24)])
    labels = np.array([0, 1, 1, 0, 0, 1, 0, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0])
    sites = np.array([f"H{i % 3}" for i in range(24)])
    splitter = StratifiedGroupKFold(n_splits=4, shuffle=True, random_state=7)
    expected = np.zeros(24, dtype=np.int64)
    for fold, (_, test) in enumerate(splitter.split(np.zeros(24), labels, groups=ids)):
        expected[test] = fold
    # What make_folds returned before train.split existed (and what the splitter gives directly).
    before = [3, 0, 2, 1, 2, 1, 2, 2, 3, 3, 3, 3, 0, 2, 1, 3, 1, 0, 0, 0, 2, 0, 1, 1]
    assert expected.tolist() == before
    assert make_folds(ids, labels, 4, seed=7).tolist() == before
    for config in (small_train_config(folds=4, seed=7), small_train_config(folds=4, seed=7, split="patient")):
        assert check_cohort_splits("c", ids, labels, config).tolist() == before
        assert check_cohort_splits("c", ids, labels, config, sites=sites, classes=CLASSES).tolist() == before


def test_the_demo_folds_under_split_patient_do_not_depend_on_its_sites(tmp_path):
    sheet = plan_demo_cohort("nsclc", {"patients": 40, "seed": 1}, CLASSES, tmp_path)
    ids, labels = sheet_patient_labels(sheet, CLASSES)
    config = small_train_config(folds=5, val_fraction=0.2, split="patient")
    with_sites = check_cohort_splits("nsclc", ids, labels, config, sites=sheet_patient_sites(sheet), classes=CLASSES)
    splitter = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0)
    expected = np.zeros(len(ids), dtype=np.int64)
    for fold, (_, test) in enumerate(splitter.split(np.zeros(len(ids)), labels, groups=ids)):
        expected[test] = fold
    assert with_sites.tolist() == expected.tolist()


def test_the_demo_cohort_splits_by_site_one_site_per_test_fold(tmp_path):
    sheet = plan_demo_cohort("nsclc", {"patients": 40, "seed": 1}, CLASSES, tmp_path)
    ids, labels = sheet_patient_labels(sheet, CLASSES)
    sites = np.array(sheet_patient_sites(sheet))
    folds = check_cohort_splits("nsclc", ids, labels, small_train_config(folds=5, val_fraction=0.2, split="site"),
                                sites=sites, classes=CLASSES)  # fmt: skip
    assert_sites_on_one_side(folds, sites)
    assert sorted(len(set(sites[folds == fold])) for fold in range(5)) == [1] * 5


# ---------------------------------------------------------------- planning errors


def test_fewer_sites_than_folds_fails_naming_the_patients_per_site_and_class_and_the_fix():
    ids, labels, sites = site_cohort(n_sites=3)
    with pytest.raises(ValueError) as raised:
        check_cohort_splits("c", ids, labels, small_train_config(folds=5, split="site"), sites=sites, classes=CLASSES)
    message = str(raised.value)
    counts = pd.crosstab(sites, labels)
    assert "train.split site with train.folds 5 needs at least 5 sites" in message
    assert "it has 3" in message
    for site in ("H0", "H1", "H2"):
        assert f"{site}: LUAD {counts.loc[site, 0]}, LUSC {counts.loc[site, 1]}" in message
    assert "lower train.folds to 3" in message and "set train.split: patient" in message


def test_a_class_in_one_site_only_fails_naming_the_class_and_the_counts():
    ids, labels, sites = site_cohort(n_sites=6)
    labels = np.where(sites == "H0", 1, 0)
    with pytest.raises(ValueError, match=r"LUSC in 1 site\(s\).*H0: LUAD 0, LUSC 6; H1: LUAD 6, LUSC 0"):
        check_cohort_splits("c", ids, labels, small_train_config(folds=3, split="site"), sites=sites, classes=CLASSES)


def test_a_fold_whose_training_part_would_lack_a_class_fails_naming_the_sites_it_tests(monkeypatch):
    ids, labels, sites = site_cohort(n_sites=6)
    labels = np.where(np.isin(sites, ["H0", "H1"]), 1, 0)
    # The two LUSC sites drawn into one test fold (the splitter avoids it; a cohort's counts may not let it).
    monkeypatch.setattr(splits_module, "make_folds", lambda *a, **k: np.array([int(s[1]) // 2 for s in sites]))
    with pytest.raises(ValueError) as raised:
        check_cohort_splits("c", ids, labels, small_train_config(folds=3, split="site"), sites=sites, classes=CLASSES)
    message = str(raised.value)
    assert message.startswith("cohort 'c', test fold 0 (train.split site, train.folds 3,")
    assert "testing site(s) H0, H1 leaves no LUSC patient to train on" in message
    assert "H0: LUAD 0, LUSC 6" in message


def test_split_site_without_sites_fails_saying_where_sites_come_from():
    ids, labels, _ = site_cohort()
    with pytest.raises(ValueError, match=r"no site: add a 'site' column.*TCGA barcodes.*train.split: patient"):
        check_cohort_splits("c", ids, labels, small_train_config(folds=3, split="site"))


def test_planning_fails_before_any_job_when_the_sites_cannot_make_the_folds(tmp_path):
    config = tiny_demo_config()
    config["cohorts"]["tiny"]["demo"]["sites"] = 1
    config["train"]["split"] = "site"
    workdir = make_workdir(tmp_path / "work", config)
    with pytest.raises(AssertionError) as failed:
        snakemake(workdir, "--dry-run", timeout=300)
    message = str(failed.value)
    assert "cohort 'tiny': train.split site with train.folds 2 needs at least 2 sites" in message
    assert "S1: A 4, B 4" in message and "(sample sheet: results/demo/tiny/samples.tsv)" in message
    assert not (workdir / "results").exists()


# ---------------------------------------------------------------- where sites come from


def write_sheet(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        (folder / row["slide_path"]).touch()
    path = folder / "samples.tsv"
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def test_sites_come_from_tcga_barcodes_when_the_sheet_has_no_site_column(tmp_path):
    rows = [
        {"patient_id": "TCGA-05-4244", "slide_id": "s1", "slide_path": "s1.svs", "label": "LUAD"},
        {"patient_id": "TCGA-05-4244", "slide_id": "s2", "slide_path": "s2.svs", "label": "LUAD"},
        {"patient_id": "TCGA-a6-2671-01Z", "slide_id": "s3", "slide_path": "s3.svs", "label": "LUSC"},
    ]
    sheet = load_sample_sheet(write_sheet(tmp_path / "tcga", rows), CLASSES)
    assert patient_sites(sheet) == {"TCGA-05-4244": "05", "TCGA-a6-2671-01Z": "A6"}
    assert sheet_patient_sites(sheet) == ("05", "A6")

    named = load_sample_sheet(write_sheet(tmp_path / "named", [{**r, "site": "Oslo"} for r in rows]), CLASSES)
    assert sheet_patient_sites(named) == ("Oslo", "Oslo"), "a site column wins over the barcodes"
    mixed = load_sample_sheet(write_sheet(tmp_path / "mixed", [*rows[:2], {**rows[2], "patient_id": "P3"}]), CLASSES)
    assert patient_sites(mixed) is None, "barcodes name the sites only when every patient has one"


def test_two_sites_for_one_patient_fail_naming_the_file_the_patient_the_lines_and_the_fix(tmp_path):
    rows = [
        {"patient_id": "P1", "slide_id": "s1", "slide_path": "s1.svs", "label": "LUAD", "site": "Oslo"},
        {"patient_id": "P1", "slide_id": "s2", "slide_path": "s2.svs", "label": "LUAD", "site": "Bergen"},
        {"patient_id": "P2", "slide_id": "s3", "slide_path": "s3.svs", "label": "LUSC", "site": ""},
        {"patient_id": "P3", "slide_id": "s4", "slide_path": "s4.svs", "label": "LUSC", "site": "Oslo"},
        {"patient_id": "P3", "slide_id": "s5", "slide_path": "s5.svs", "label": "LUSC", "site": ""},
    ]
    path = write_sheet(tmp_path, rows)
    with pytest.raises(SampleSheetError) as raised:
        load_sample_sheet(path, CLASSES)
    message = str(raised.value)
    assert message.startswith(f"{path.resolve()} has 2 problem(s)")
    assert "each patient comes from one site: 'P1' has 'Oslo' on line(s) 2, 'Bergen' on line(s) 3" in message
    assert "put that patient's one site on all of their rows" in message
    assert "'site' is filled in for some patients but not for 'P2' (line(s) 4)" in message
    assert "P3" not in message, "a blank row beside a filled one is fine"


def test_the_cohort_table_carries_the_sites_and_reads_a_table_without_them(tmp_path):
    present = np.ones((2, 3), bool)
    table = CohortTable(("p1", "p2"), ("A", "B"), (("s1",), ()), present, sites=("Oslo", "Bergen"))
    table.write(tmp_path / "cohort.tsv")
    assert pd.read_csv(tmp_path / "cohort.tsv", sep="\t").columns[-1] == "site"
    assert CohortTable.read(tmp_path / "cohort.tsv").sites == ("Oslo", "Bergen")
    CohortTable(("p1", "p2"), ("A", "B"), (("s1",), ()), present).write(tmp_path / "plain.tsv")
    assert "site" not in pd.read_csv(tmp_path / "plain.tsv", sep="\t").columns
    assert CohortTable.read(tmp_path / "plain.tsv").sites is None
    (tmp_path / "blank.tsv").write_text((tmp_path / "cohort.tsv").read_text().replace("Bergen", ""))
    with pytest.raises(CohortError, match=r"'site' is empty on line\(s\) 3; rerun rule assemble_cohort"):
        CohortTable.read(tmp_path / "blank.tsv")


# ---------------------------------------------------------------- metrics.md


def test_metrics_md_states_the_split_and_warns_when_one_site_holds_most_of_a_class():
    splits = pd.DataFrame(
        {"patient_id": [f"P{i}" for i in range(10)], "label": ["LUAD"] * 5 + ["LUSC"] * 5,
         "site": ["H1", "H1", "H1", "H2", "H3", "H1", "H2", "H2", "H3", "H3"], "fold": [0] * 10}
    )  # fmt: skip
    text = split_markdown(splits, {"folds": 3, "split": "patient"})
    assert "Split: by patient (`train.split: patient`)" in text
    assert "The validation split inside each training fold is patient-level" in text
    assert "site H1 holds 3 of 5 LUAD patients (60%; 4 of 10 patients overall)" in text
    assert "compare with `train.split: site`" in text
    assert "LUSC patients" not in text, "no site holds more than half of LUSC"

    by_site = split_markdown(splits, {"folds": 3, "split": "site"})
    assert "Split: by site (`train.split: site`): 3 test folds" in by_site and "(3 sites)" in by_site
    balanced = splits.assign(site=["H1", "H2", "H3", "H4", "H5"] * 2)
    assert "none holds more than half" in split_markdown(balanced, {"folds": 3, "split": "site"})
    unknown = split_markdown(splits.drop(columns="site"), {"folds": 3})
    assert "Split: by patient" in unknown and "Sites: unknown" in unknown


# ---------------------------------------------------------------- the demo target


def test_the_demo_site_overlay_is_nsclc_again_but_for_the_split_and_plans_site_level_training(tmp_path):
    shipped = yaml.safe_load((REPO / "config.yaml").read_text())
    overlay = yaml.safe_load((REPO / "workflow" / "configs" / "demo-site.yaml").read_text())
    site_cohort_config = overlay["cohorts"]["nsclc_site"]
    nsclc = shipped["cohorts"]["nsclc"]
    assert site_cohort_config["train"]["split"] == "site"
    assert {**site_cohort_config, "train": {**site_cohort_config["train"], "split": "patient"}} == {
        **nsclc,
        "train": {**nsclc["train"], "split": "patient"},
    }, "workflow/configs/demo-site.yaml's nsclc_site must stay config.yaml's nsclc, but for train.split"

    workdir = tmp_path / "work"
    (workdir / "workflow" / "configs").mkdir(parents=True)
    shutil.copy(REPO / "config.yaml", workdir / "config.yaml")
    shutil.copy(REPO / "workflow" / "configs" / "demo-site.yaml", workdir / "workflow" / "configs" / "demo-site.yaml")
    result = snakemake(
        workdir, "results/nsclc_site/metrics.md", "--configfile=workflow/configs/demo-site.yaml", "--dry-run"
    )
    output = result.stdout + result.stderr
    assert "train_fold" in output and "nsclc_site" in output
