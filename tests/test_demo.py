"""The generated demo cohort: deterministic, complete, openable, and carrying class signal with noise."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import cv2
import numpy as np
import openslide
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from mosare.core.samples import load_sample_sheet
from mosare.demo.plan import demo_settings, make_demo_plan, plan_demo_cohort
from mosare.demo.render import patient_phenotype, render_tissue, write_demo_slide
from mosare.demo.reports import demo_report
from mosare.demo.writer import demo_rna_matrix, write_demo_cohort, write_demo_tables
from mosare.reporting.plots.demo import write_demo_overview

CLASSES = ["LUAD", "LUSC"]
TINY = {"patients": 6, "seed": 5, "slide_px": 2048, "genes": 60, "fraction_two_slides": 0.34}
LEAK_WORDS = re.compile(r"adenocarcinoma|squamous|clear cell|papillary|ductal|lobular", re.IGNORECASE)


def file_hashes(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("demo") / "nsclc"
    write_demo_cohort("nsclc", TINY, CLASSES, out_dir)
    return out_dir


def test_plan_is_deterministic_for_a_seed_and_changes_with_the_seed(tmp_path):
    first = plan_demo_cohort("nsclc", {"patients": 30, "seed": 1}, CLASSES, tmp_path)
    again = plan_demo_cohort("nsclc", {"patients": 30, "seed": 1}, CLASSES, tmp_path)
    other = plan_demo_cohort("nsclc", {"patients": 30, "seed": 2}, CLASSES, tmp_path)
    pd.testing.assert_frame_equal(first, again)
    assert first["label"].tolist() != other["label"].tolist()


def test_plan_has_balanced_classes_two_slide_patients_and_the_configured_missingness(tmp_path):
    config = {"patients": 40, "seed": 1, "fraction_missing_report": 0.25, "fraction_two_slides": 0.1}
    sheet = plan_demo_cohort("nsclc", config, CLASSES, tmp_path)
    patients = sheet.drop_duplicates("patient_id")
    assert patients["label"].value_counts().to_dict() == {"LUAD": 20, "LUSC": 20}
    assert (sheet.groupby("patient_id").size() == 2).sum() == 4
    assert patients["report_path"].isna().sum() == 10
    assert all(Path(p).is_absolute() for p in sheet["slide_path"])
    assert [Path(p) for p in sheet["slide_path"]] == [tmp_path / "slides" / f"{s}.svs" for s in sheet["slide_id"]]
    assert sheet["mpp"].isna().all()


def test_written_sample_sheet_validates_and_equals_the_plan(tiny_cohort):
    loaded = load_sample_sheet(tiny_cohort / "samples.tsv", CLASSES)
    planned = plan_demo_cohort("nsclc", TINY, CLASSES, tiny_cohort)
    pd.testing.assert_frame_equal(loaded, planned)
    assert "\t/" not in (tiny_cohort / "samples.tsv").read_text(), "paths in the sheet are relative to its folder"


def test_same_seed_writes_byte_identical_files(tmp_path, tiny_cohort):
    write_demo_cohort("nsclc", TINY, CLASSES, tmp_path / "nsclc")
    assert file_hashes(tmp_path / "nsclc") == file_hashes(tiny_cohort)


def test_slides_open_in_openslide_as_aperio_at_40x_and_20x_with_halving_levels(tiny_cohort):
    sheet = load_sample_sheet(tiny_cohort / "samples.tsv", CLASSES)
    seen_mpp = set()
    for path in sheet["slide_path"]:
        with openslide.OpenSlide(path) as slide:
            assert slide.properties["openslide.vendor"] == "aperio"
            mpp = float(slide.properties["openslide.mpp-x"])
            seen_mpp.add(mpp)
            width, height = slide.dimensions
            # Every slide covers the same 512 µm field whatever its magnification.
            assert width * mpp == height * mpp == pytest.approx(512.0)
            expected_levels = 3 if mpp == 0.25 else 2
            assert slide.level_count == expected_levels
            assert slide.level_downsamples == pytest.approx([2.0**k for k in range(expected_levels)])
            assert slide.properties["openslide.objective-power"] == ("40" if mpp == 0.25 else "20")
    assert seen_mpp == {0.25, 0.5}


def test_a_40x_slide_read_at_its_second_level_matches_the_20x_rendering(tmp_path):
    phenotype = patient_phenotype(seed=9, patient_index=0, class_position=1.0)
    paths = {mpp: tmp_path / f"slide-{mpp}.svs" for mpp in (0.25, 0.5)}
    for mpp, path in paths.items():
        write_demo_slide(path, seed=9, slide_index=0, phenotype=phenotype, mpp=mpp, slide_px=2048)
    with openslide.OpenSlide(paths[0.25]) as high, openslide.OpenSlide(paths[0.5]) as low:
        from_40x = np.asarray(high.read_region((0, 0), 1, (1024, 1024)).convert("RGB"), dtype=float)
        from_20x = np.asarray(low.read_region((0, 0), 0, (1024, 1024)).convert("RGB"), dtype=float)
    assert np.abs(from_40x - from_20x).mean() < 6.0


def test_rendered_tissue_is_pink_and_purple_pieces_on_near_white_glass():
    picture = render_tissue(4, 0, patient_phenotype(4, 0, 0.0), 768.0, pen=False)
    saturation = cv2.cvtColor(picture, cv2.COLOR_RGB2HSV)[..., 1]
    tissue = saturation > 20
    assert 0.3 < tissue.mean() < 0.85
    glass = picture[~tissue]
    assert glass.min(axis=1).mean() > 225
    red, green, blue = picture[tissue].astype(float).mean(axis=0)
    assert red > green and blue > green, "H&E tissue is pink-purple: green is absorbed most"
    nuclei = picture[tissue].min(axis=1) < 100
    assert 0.03 < nuclei.mean() < 0.5


def test_pen_stroke_adds_marker_ink_to_the_glass():
    phenotype = patient_phenotype(4, 0, 0.0)
    clean = render_tissue(4, 0, phenotype, 768.0, pen=False)
    marked = render_tissue(4, 0, phenotype, 768.0, pen=True)
    changed = np.abs(marked.astype(int) - clean.astype(int)).max(axis=2) > 40
    assert 0.01 < changed.mean() < 0.3


def test_glandular_fraction_leans_to_the_class_but_overlaps():
    first = np.array([patient_phenotype(0, i, 0.0).gland_fraction for i in range(300)])
    last = np.array([patient_phenotype(0, i, 1.0).gland_fraction for i in range(300, 600)])
    auc = roc_auc_score([0] * 300 + [1] * 300, np.concatenate([-first, -last]))
    assert 0.7 < auc < 0.95


def test_rna_matrix_lists_exactly_the_patients_with_rna(tiny_cohort, tmp_path):
    rna = pd.read_csv(tiny_cohort / "rna.tsv", sep="\t")
    plan = make_demo_plan("nsclc", TINY, CLASSES, tiny_cohort)
    assert rna.columns[0] == "gene_id"
    assert list(rna.columns[1:]) == [p.patient_id for p in plan.patients if p.has_rna]
    assert sum(not p.has_rna for p in plan.patients) == 1
    n_genes = TINY["genes"] + demo_settings(TINY)["noise_genes"]  # the class genes, then the pure-noise ones
    assert rna["gene_id"].tolist() == [f"GENE{g:05d}" for g in range(1, n_genes + 1)]
    counts = rna.iloc[:, 1:].to_numpy()
    assert counts.dtype.kind == "i" and counts.min() >= 0


def test_rna_separates_the_classes_moderately_not_perfectly(tmp_path):
    plan = make_demo_plan("nsclc", {"patients": 120, "seed": 3, "genes": 300}, CLASSES, tmp_path)
    rna = demo_rna_matrix(plan)
    labels = {p.patient_id: p.label == "LUSC" for p in plan.patients}
    x = np.log2(rna.to_numpy().T + 1)
    y = np.array([labels[pid] for pid in rna.columns])
    scores = cross_val_predict(LogisticRegression(C=0.05, max_iter=2000), x, y, cv=5, method="predict_proba")[:, 1]
    assert 0.7 < roc_auc_score(y, scores) < 0.995


def test_reports_lean_to_the_class_and_sometimes_name_the_subtype(tmp_path):
    plan = make_demo_plan("nsclc", {"patients": 60, "seed": 2, "fraction_missing_report": 0.0}, CLASSES, tmp_path)
    reports = {p.patient_id: demo_report(plan, p) for p in plan.patients}
    leaking = [pid for pid, text in reports.items() if LEAK_WORDS.search(text)]
    assert 10 < len(leaking) < 50
    assert len(set(reports.values())) == len(reports)
    squamous = [reports[p.patient_id] for p in plan.patients if p.label == "LUSC"]
    glandular = [reports[p.patient_id] for p in plan.patients if p.label == "LUAD"]
    assert sum("p40: positive" in r for r in squamous) > sum("p40: positive" in r for r in glandular)


@pytest.mark.parametrize(
    ("classes", "markers"),
    [(["CCRCC", "PRCC"], ("CA-IX", "CK7")), (["IDC", "ILC"], ("E-cadherin",))],
)
def test_reports_of_each_default_cohort_use_that_organs_stains(tmp_path, classes, markers):
    plan = make_demo_plan("c", {"patients": 30, "seed": 1, "fraction_missing_report": 0.0}, classes, tmp_path)
    text = "\n".join(demo_report(plan, p) for p in plan.patients)
    assert all(marker in text for marker in markers)
    assert "lung" not in text.lower()


def test_unknown_class_names_get_generic_reports_that_can_name_the_class(tmp_path):
    plan = make_demo_plan("x", {"patients": 30, "seed": 1}, ["alpha", "beta", "gamma"], tmp_path)
    reports = [demo_report(plan, p) for p in plan.patients]
    assert any(re.search(r"\b(alpha|beta|gamma)\b", r) for r in reports)
    assert {p.label for p in plan.patients} == {"alpha", "beta", "gamma"}


def test_patients_without_a_report_have_no_report_file(tiny_cohort):
    sheet = load_sample_sheet(tiny_cohort / "samples.tsv", CLASSES)
    without = sheet.loc[sheet["report_path"].isna(), "patient_id"].unique()
    assert len(without) == 1
    written = {p.stem for p in (tiny_cohort / "reports").glob("*.txt")}
    assert written == set(sheet["patient_id"]) - set(without)
    assert sheet.groupby("patient_id").size().max() == 2


def test_unknown_demo_setting_is_rejected_with_the_known_names():
    with pytest.raises(ValueError, match="unknown demo setting.*'patiens'.*patients"):
        demo_settings({"patiens": 10})


def test_tables_refuse_to_write_a_sample_sheet_before_every_slide_exists(tmp_path):
    plan = make_demo_plan("nsclc", TINY, CLASSES, tmp_path)
    with pytest.raises(FileNotFoundError, match=r"8 planned slide\(s\) missing.*nsclc-001-A\.svs.*rule demo_slide"):
        write_demo_tables(plan)
    assert not (tmp_path / "samples.tsv").exists()


def test_overview_picture_shows_the_slides_in_colour(tiny_cohort, tmp_path):
    plan = make_demo_plan("nsclc", TINY, CLASSES, tiny_cohort)
    write_demo_overview(plan, tmp_path / "overview.png")
    picture = cv2.imread(str(tmp_path / "overview.png"))
    saturation = cv2.cvtColor(picture, cv2.COLOR_BGR2HSV)[..., 1]
    assert (saturation > 40).mean() > 0.05, "tissue thumbnails, not an empty grid"


def test_an_external_cohort_shares_the_class_biology_through_biology_seed_and_differs_in_patients(tmp_path):
    def class_signal(settings: dict) -> tuple[pd.Series, pd.DataFrame]:
        plan = make_demo_plan("nsclc", {"patients": 120, "genes": 300, **settings}, CLASSES, tmp_path)
        rna = np.log2(demo_rna_matrix(plan).iloc[:300] + 1.0)  # the class genes (the noise genes after them mark none)
        labels = pd.Series({p.patient_id: p.label for p in plan.patients})[rna.columns]
        return rna.loc[:, labels == "LUSC"].mean(axis=1) - rna.loc[:, labels == "LUAD"].mean(axis=1), rna

    internal, internal_rna = class_signal({"seed": 1})
    external, external_rna = class_signal({"seed": 11, "biology_seed": 1})
    unrelated, _ = class_signal({"seed": 11})
    assert np.corrcoef(internal, external)[0, 1] > 0.6, "the same genes mark the classes"
    assert abs(np.corrcoef(internal, unrelated)[0, 1]) < 0.3, "another biology_seed is another disease"
    assert not np.array_equal(internal_rna.to_numpy()[:, :5], external_rna.to_numpy()[:, :5])
    same, _ = class_signal({"seed": 1, "biology_seed": 1})
    pd.testing.assert_series_equal(same, internal)  # biology_seed equal to seed changes nothing


def test_stain_shift_changes_the_colours_not_the_tissue():
    phenotype = patient_phenotype(4, 0, 0.0)
    plain = render_tissue(4, 0, phenotype, 768.0, pen=False).astype(float)
    shifted = render_tissue(4, 0, phenotype, 768.0, pen=False, stain_shift=0.2).astype(float)
    tissue = plain.mean(axis=2) < 200
    glass = plain.mean(axis=2) > 235
    assert tissue.mean() > 0.2
    assert np.percentile(np.abs(shifted[glass] - plain[glass]), 99) <= 1, (
        "glass stays glass: only stained pixels change"
    )
    # Stronger haematoxylin absorbs more red; weaker eosin lets more green through.
    assert shifted[tissue, 0].mean() < plain[tissue, 0].mean() - 3
    assert shifted[tissue, 1].mean() > plain[tissue, 1].mean() + 3
    np.testing.assert_array_equal(
        render_tissue(4, 0, phenotype, 768.0, pen=False, stain_shift=0.0), plain.astype(np.uint8)
    )


def test_every_demo_patient_has_a_site_every_site_holds_every_class_and_each_site_stains_its_own_way(tmp_path):
    plan = make_demo_plan("nsclc", {"patients": 40, "seed": 1, "stain_shift": 0.15}, CLASSES, tmp_path)
    sites = pd.crosstab([p.site for p in plan.patients], [p.label for p in plan.patients])
    assert list(sites.index) == ["S1", "S2", "S3", "S4", "S5"]
    assert (sites == 4).all().all(), "each class dealt evenly over the sites"
    shifts = {p.site: p.stain_shift for p in plan.patients}
    assert all(p.stain_shift == shifts[p.site] for p in plan.patients), "one stain per site"
    assert sorted(shifts.values()) == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.25]), "the cohort's shift +- the site's"
    sheet = plan.sheet
    assert sheet["site"].tolist() == [slide.patient.site for slide in plan.slides]
    again = make_demo_plan("nsclc", {"patients": 40, "seed": 1, "stain_shift": 0.15}, CLASSES, tmp_path)
    assert [(p.site, p.stain_shift) for p in again.patients] == [(p.site, p.stain_shift) for p in plan.patients]
    # Sites come from a stream of their own: the patients, labels and missing modalities are as before sites.
    no_sites = make_demo_plan("nsclc", {"patients": 40, "seed": 1, "sites": 1}, CLASSES, tmp_path)
    assert [p.label for p in no_sites.patients] == [p.label for p in plan.patients]
    assert [(p.has_rna, p.has_report) for p in no_sites.patients] == [(p.has_rna, p.has_report) for p in plan.patients]


def test_the_demo_rna_has_more_genes_than_top_genes_and_each_fold_chooses_its_own(tmp_path):
    """The shipped config's rna.top_genes must leave genes out on the demo, so per-fold gene selection is exercised:
    the noise genes vary as much as the class genes, and which genes make the cut depends on the fold's patients."""
    import yaml

    from mosare.cohort.data import CohortData
    from mosare.evaluation.splits import fold_validation_split, make_folds
    from mosare.features.expression import select_rna_features
    from mosare.training.fold_inputs import fit_normalisation

    shipped = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    top_genes = shipped["rna"]["top_genes"]
    plan = make_demo_plan("nsclc", shipped["cohorts"]["nsclc"]["demo"], CLASSES, tmp_path)
    matrix = demo_rna_matrix(plan)
    settings = demo_settings(shipped["cohorts"]["nsclc"]["demo"])
    assert len(matrix) == settings["genes"] + settings["noise_genes"] > top_genes
    ids = [p.patient_id for p in plan.patients]
    rna = select_rna_features(matrix, ids)  # what the RNA stage stores: log2(count + 1)
    n = len(ids)
    data = CohortData(
        patient_ids=np.array(ids), labels=np.array([CLASSES.index(p.label) for p in plan.patients]),
        classes=CLASSES, available=np.stack([np.zeros(n, bool), rna.present, np.zeros(n, bool)], axis=1),
        patches=np.zeros((0, 4), np.float16), patch_offsets=np.zeros(n + 1, np.int64),
        wsi_local=np.zeros((n, 2, 4), np.float32), rna=rna.values,
        text_global=np.zeros((n, 3), np.float32), text_local=np.zeros((n, 2, 3), np.float32),
    )  # fmt: skip
    train = {"val_fraction": 0.2, "seed": 0}
    folds = make_folds(data.patient_ids, data.labels, 5, seed=0)
    chosen = []
    for fold in range(5):
        fit, _ = fold_validation_split(folds, fold, data.labels, train)
        chosen.append(frozenset(fit_normalisation(data, fit, top_genes).rna_genes.tolist()))
    assert all(len(genes) == top_genes for genes in chosen)
    assert len(set(chosen)) == 5, "every fold keeps its own genes"
    noise = set(range(settings["genes"], len(matrix)))
    assert all(genes & noise and noise - genes for genes in chosen), "noise genes compete for the cut, some win"
