"""mosare.slides.qc_metrics: slide quality metrics move the right way on generated tiles and slides."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qc_slides import EOSIN, HEMATOXYLIN, INKS, blurred, folded, he_tile, stained_rgb, write_qc_slide

from mosare.cohort.slide_qc_table import read_flagged_slides, slide_flags, slide_qc_table, write_slide_qc_table
from mosare.core.stores import open_store
from mosare.slides.qc_fields import QC_METRICS
from mosare.slides.qc_metrics import (
    FinePassQC,
    brightness_contrast,
    dark_fraction,
    ink_fraction,
    macenko_stain_vectors,
    patch_coverage,
    piece_count,
    sharpness,
    stain_densities,
)
from mosare.slides.tiling import tile_slide

ALL = np.ones((512, 512), bool)
TILING = {"target_mpp": 0.5, "patch_px": 256, "min_tissue_fraction": 0.5, "tissue": {"min_tissue_area_um2": 50_000.0}}


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sharpness_falls_with_every_step_of_blur(seed):
    tile = he_tile(seed=seed)
    scores = [sharpness(tile if sigma == 0 else blurred(tile, sigma), ALL) for sigma in (0, 0.7, 1.5, 3, 6)]
    assert all(later < earlier for earlier, later in zip(scores, scores[1:])), scores
    assert scores[-1] < 0.05 * scores[0]


def test_sharpness_ignores_the_tissue_edge_and_glass():
    tile = he_tile()
    half = np.zeros_like(ALL)
    half[:, :256] = True
    glassy = tile.copy()
    glassy[:, 256:] = 243  # a hard tissue/glass edge at the mask's border must not add "detail"
    assert sharpness(glassy, half) == pytest.approx(sharpness(tile[:, :256], ALL[:, :256]), rel=0.05)
    assert np.isnan(sharpness(tile, np.zeros_like(ALL)))


@pytest.mark.parametrize("h_scale", [0.8, 0.5, 0.2])
def test_faded_hematoxylin_lowers_h_optical_density_only(h_scale):
    normal, faded = he_tile(), he_tile(h_scale=h_scale)
    h_normal, e_normal = stain_densities(normal.reshape(-1, 3))
    h_faded, e_faded = stain_densities(faded.reshape(-1, 3))
    assert h_faded < h_normal
    assert abs(e_faded - e_normal) < abs(h_faded - h_normal)


def test_faded_eosin_lowers_e_optical_density():
    h_normal, e_normal = stain_densities(he_tile().reshape(-1, 3))
    h_faded, e_faded = stain_densities(he_tile(e_scale=0.4).reshape(-1, 3))
    assert e_faded < e_normal
    assert abs(h_faded - h_normal) < abs(e_faded - e_normal)


def test_brightness_rises_and_contrast_falls_when_the_stain_fades():
    bright, contrast = brightness_contrast(he_tile(), ALL)
    faded_bright, faded_contrast = brightness_contrast(he_tile(h_scale=0.4, e_scale=0.4), ALL)
    assert faded_bright > bright and faded_contrast < contrast


def test_a_fold_raises_the_dark_fraction():
    tile = he_tile()
    assert dark_fraction(folded(tile, 0.5), ALL) > dark_fraction(tile, ALL) + 0.05
    assert dark_fraction(np.full((8, 8, 3), 243, np.uint8), np.ones((8, 8), bool)) == 0.0


@pytest.mark.parametrize("order", ["as drawn", "shuffled", "reversed"])
def test_macenko_recovers_the_stain_vectors_of_a_known_mixture(order):
    rng = np.random.default_rng(0)
    # Independent concentrations: some pixels are nearly pure hematoxylin, some nearly pure eosin, as in tissue.
    hematoxylin = rng.exponential(0.5, (300, 300)).astype(np.float32)
    eosin = rng.exponential(0.5, (300, 300)).astype(np.float32)
    pixels = stained_rgb(hematoxylin, eosin).reshape(-1, 3)
    if order == "shuffled":
        pixels = pixels[rng.permutation(len(pixels))]
    elif order == "reversed":
        pixels = pixels[::-1]
    stains = macenko_stain_vectors(pixels)
    assert stains.shape == (2, 3)
    np.testing.assert_allclose(np.linalg.norm(stains, axis=1), 1.0)
    assert angle_deg(stains[0], HEMATOXYLIN) < 5
    assert angle_deg(stains[1], EOSIN) < 5


def test_macenko_on_glass_alone_is_nan():
    assert np.isnan(macenko_stain_vectors(np.full((100, 3), 243, np.uint8))).all()


def test_ink_fraction_counts_ink_outside_tissue():
    tissue = np.zeros((10, 10), bool)
    tissue[:, :5] = True
    ink = np.zeros_like(tissue)
    ink[:, 4:6] = True  # one column overlaps tissue and is counted as tissue
    assert ink_fraction(ink, tissue) == pytest.approx(10 / 60)
    assert ink_fraction(None, tissue) == 0.0
    assert ink_fraction(None, np.zeros_like(tissue)) == 0.0


def test_patch_coverage_and_pieces():
    fractions = np.array([[1.0, 0.6, 0.2], [0.0, 0.1, 0.1]])
    kept = fractions >= 0.5
    assert patch_coverage(fractions, kept) == pytest.approx(1.6 / 2.0)
    assert np.isnan(patch_coverage(np.zeros((2, 2)), np.zeros((2, 2), bool)))
    mask = np.zeros((9, 9), bool)
    mask[1:3, 1:3] = mask[5:8, 5:8] = mask[0, 8] = True
    assert piece_count(mask) == 3


def test_fine_pass_accumulation_equals_the_whole_image_metrics():
    tile = blurred(he_tile(), 0.5)
    tissue = np.ones(tile.shape[:2], bool)
    tissue[:, 300:] = False
    whole = FinePassQC()
    whole.add(tile, tissue)
    values = whole.metrics()
    assert values["sharpness"] == pytest.approx(sharpness(tile, tissue), rel=1e-6)
    assert (values["brightness"], values["contrast"]) == pytest.approx(brightness_contrast(tile, tissue), rel=1e-6)
    assert values["dark_fraction"] == pytest.approx(dark_fraction(tile, tissue))
    assert (values["od_hematoxylin"], values["od_eosin"]) == pytest.approx(stain_densities(tile[tissue]), rel=0.02)
    # Split into regions, brightness and dark area are exact sums; the stain means come from a sample.
    pieces = FinePassQC()
    for rows in (slice(0, 200), slice(200, 512)):
        pieces.add(tile[rows], tissue[rows])
    split = pieces.metrics()
    assert split["brightness"] == pytest.approx(values["brightness"], rel=1e-9)
    assert split["dark_fraction"] == pytest.approx(values["dark_fraction"], rel=1e-9)
    assert split["od_hematoxylin"] == pytest.approx(values["od_hematoxylin"], rel=0.02)
    assert np.isnan(FinePassQC().metrics()["sharpness"])


@pytest.fixture(scope="module")
def tiled_stores(tmp_path_factory):
    """Patch stores of eight normal slides and of altered copies of the first, tiled as the workflow does."""
    folder = tmp_path_factory.mktemp("qc_slides")
    variants = {
        "normal": {},
        **{f"normal_{seed}": {"seed": seed} for seed in range(1, 8)},
        "blurred": {"blur_sigma": 3.0},
        "faded": {"h_scale": 0.4},
        "folded": {"fold": True},
        **{f"{ink}_pen": {"ink": ink} for ink in INKS},
    }
    stores = {}
    for name, alteration in variants.items():
        slide = write_qc_slide(folder / f"{name}.svs", **alteration)
        stores[name] = folder / f"{name}.zarr"
        tile_slide(slide, stores[name], slide_id=name, tiling=TILING)
    return stores


@pytest.fixture(scope="module")
def tiled_qc(tiled_stores):
    return {name: dict(open_store(store).attrs)["qc"] for name, store in tiled_stores.items()}


def test_tiling_stores_every_qc_metric(tiled_qc):
    qc = tiled_qc["normal"]
    assert list(qc) == list(QC_METRICS)
    assert qc["n_pieces"] == 2 and qc["n_patches"] > 0
    # Two discs of radius 0.22 mm on a 1 mm slide.
    assert qc["tissue_area_mm2"] == pytest.approx(2 * np.pi * 0.22**2, rel=0.1)
    assert 0.5 < qc["patch_coverage"] <= 1.0
    assert qc["ink_fraction"] == 0.0 and qc["unreadable_fraction"] == 0.0
    assert all(value is not None for value in qc.values())


def test_tiled_copies_move_their_metric_the_right_way(tiled_qc):
    normal = tiled_qc["normal"]
    assert tiled_qc["blurred"]["sharpness"] < 0.5 * normal["sharpness"]
    assert tiled_qc["faded"]["od_hematoxylin"] < 0.7 * normal["od_hematoxylin"]
    assert tiled_qc["folded"]["dark_fraction"] > normal["dark_fraction"] + 0.03
    for ink in INKS:
        assert tiled_qc[f"{ink}_pen"]["ink_fraction"] > 0.1, ink


def test_flags_catch_every_altered_copy_in_a_cohort_of_normal_ones(tiled_stores, tmp_path):
    table = slide_qc_table(tiled_stores)
    write_slide_qc_table(table, tmp_path / "slide_qc.tsv")
    flagged = read_flagged_slides(tmp_path / "slide_qc.tsv")
    normals = {name for name in tiled_stores if name.startswith("normal")}
    assert not normals & set(flagged), {name: flagged[name] for name in normals & set(flagged)}
    assert set(flagged) == set(tiled_stores) - normals
    assert "sharpness low" in flagged["blurred"]
    assert "od_hematoxylin low" in flagged["faded"]
    assert "dark_fraction high" in flagged["folded"]
    for ink in INKS:
        assert "ink_fraction high" in flagged[f"{ink}_pen"], ink
    assert list(table.columns) == ["slide_id", *QC_METRICS, "flags", "status", "reason"]
    assert (table["status"] == "ok").all() and (table["reason"] == "").all()


def qc_rows(n: int, **columns) -> pd.DataFrame:
    """``n`` identical, unremarkable slides, with the given columns overridden."""
    rng = np.random.default_rng(0)
    base = {metric: 1.0 + 0.01 * rng.standard_normal(n) for metric in QC_METRICS}
    base.update(n_patches=np.full(n, 100.0), unreadable_fraction=np.zeros(n), ink_fraction=np.zeros(n))
    base.update(dark_fraction=np.zeros(n))
    base.update(columns)
    return pd.DataFrame({"slide_id": [f"s{i}" for i in range(n)], **base})


def test_identical_slides_flag_nothing_even_with_zero_mad():
    assert (slide_flags(qc_rows(10)) == "").all()


@pytest.mark.parametrize("position", [0, 4, 9])
def test_few_patches_are_flagged_at_any_position_and_cohort_size(position):
    for n in (1, 3, 10):
        if position >= n:
            continue
        patches = np.full(n, 100.0)
        patches[position] = 15
        flags = slide_flags(qc_rows(n, n_patches=patches), min_patches=16)
        assert flags.iloc[position].startswith("n_patches 15 < 16")
        assert (flags.drop(flags.index[position]) == "").all()


def test_small_cohorts_get_only_the_absolute_floors():
    sharpness_values = np.array([1.0, 1.0, 1.0, 0.01])
    assert (slide_flags(qc_rows(4, sharpness=sharpness_values)) == "").all()
    flags = slide_flags(qc_rows(5, sharpness=np.append(sharpness_values, 1.0)))
    assert flags.iloc[3].startswith("sharpness low")


def test_mad_k_sets_how_far_is_too_far():
    brightness = np.array([100.0, 101, 99, 100, 102, 98, 100, 112])  # MAD 1 -> spread 2 (the floor): z +6
    assert "brightness high" in slide_flags(qc_rows(8, brightness=brightness), mad_k=3.5).iloc[-1]
    assert slide_flags(qc_rows(8, brightness=brightness), mad_k=7).iloc[-1] == ""


def test_unreadable_area_and_missing_metrics_are_flagged():
    unreadable = np.zeros(6)
    unreadable[2] = 0.02
    table = qc_rows(6, unreadable_fraction=unreadable)
    table.loc[4, list(QC_METRICS)] = np.nan
    flags = slide_flags(table)
    assert "unreadable_fraction 0.020 > 0.01" in flags.iloc[2]
    assert flags.iloc[4] == "no QC metrics"


def test_min_patches_defaults_to_the_configured_gmm_components():
    from conftest import REPO

    from mosare.config import load_config, slide_qc_min_patches

    config = load_config(REPO / "config.yaml")
    assert config["qc"]["min_patches"] is None and config["qc"]["exclude_flagged"] is False
    assert slide_qc_min_patches(config) == config["gmm"]["components"]
    config["gmm"]["components"] = 4
    assert slide_qc_min_patches(config) == 4
    config["qc"]["min_patches"] = 9
    assert slide_qc_min_patches(config) == 9


@pytest.mark.parametrize("flagged_position", [0, 1, 2])
def test_excluded_slides_become_absent_but_their_patients_stay(flagged_position, caplog):
    from mosare.cohort.slide_qc_table import drop_slides

    sheet = pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P2", "P3"],
            "slide_id": ["a", "b", "c", ""],
            "slide_path": ["a.svs", "b.svs", "c.svs", ""],
            "label": ["x", "x", "y", "y"],
        }
    )
    slide = ["a", "b", "c"][flagged_position]
    with caplog.at_level("WARNING"):
        kept = drop_slides(sheet, {slide: "sharpness low (z -9.0)"}, "lung")
    assert list(kept["patient_id"]) == list(sheet["patient_id"])  # every patient keeps its rows
    assert list(kept["slide_id"]) == [("" if s == slide else s) for s in sheet["slide_id"]]
    assert kept.loc[kept["slide_id"] == "", "slide_path"].eq("").all()
    assert list(sheet["slide_id"]) == ["a", "b", "c", ""]  # the caller's sheet is untouched
    assert f"slide {slide} of patient" in caplog.text and "sharpness low (z -9.0)" in caplog.text
    assert "1 slide(s) left out of training" in caplog.text


def test_exclusion_of_slides_not_in_the_sheet_changes_nothing():
    from mosare.cohort.slide_qc_table import drop_slides

    sheet = pd.DataFrame({"patient_id": ["P1"], "slide_id": ["a"], "slide_path": ["a.svs"], "label": ["x"]})
    assert drop_slides(sheet, {"zz": "n_patches 0 < 16"}, "lung").equals(sheet)


def test_contact_sheets_hold_48_slides_a_page_and_frame_flagged_ones_in_red(tmp_path):
    from PIL import Image

    from mosare.reporting.plots.slide_qc import contact_sheet_name, plot_contact_sheets, plot_qc_overview

    table = qc_rows(50)
    table["flags"] = ["" for _ in range(50)]
    table.loc[49, "flags"] = "sharpness low (z -9.0); ink_fraction high (z +5.0); dark_fraction high (z +4.0)"
    pictures = {}
    for slide in table["slide_id"][:-1]:  # the last slide has no picture: an empty, captioned cell
        pictures[slide] = tmp_path / f"{slide}.png"
        Image.fromarray(np.full((300, 400, 3), 230, np.uint8)).save(pictures[slide])
    pages = plot_contact_sheets(table, pictures, tmp_path / "sheets")
    assert [page.name for page in pages] == [contact_sheet_name(1), contact_sheet_name(2)]
    second = np.asarray(Image.open(pages[1]).convert("RGB")).astype(int)
    first = np.asarray(Image.open(pages[0]).convert("RGB")).astype(int)
    red = lambda image: ((image[..., 0] > 180) & (image[..., 1] < 90) & (image[..., 2] < 90)).sum()  # noqa: E731
    assert red(second) > 200 and red(first) == 0  # only the page with the flagged slide has a red frame
    plot_qc_overview(table, tmp_path / "overview.png")
    assert red(np.asarray(Image.open(tmp_path / "overview.png").convert("RGB")).astype(int)) > 0


# ---- Which slides' pictures the report embeds (mosare.reporting.slide_qc_report) ---------------------------------------------

SHEET = [f"s{i:03d}" for i in range(100)]


def test_report_takes_every_flagged_slide_then_fills_the_cap_with_others_spread_over_the_sheet():
    from mosare.reporting.slide_qc_report import select_report_slides

    flagged = {"s097", "s003", "s050"}
    selection = select_report_slides(SHEET, flagged, 7)
    assert selection.flagged == ["s003", "s050", "s097"]  # sheet order, whatever order the flags came in
    assert len(selection.unflagged) == 4 and not set(selection.unflagged) & flagged
    unflagged = [slide for slide in SHEET if slide not in flagged]
    # One from the middle of each quarter of the 97 unflagged slides, not the first four of the sheet.
    assert [unflagged.index(slide) // 24 for slide in selection.unflagged] == [0, 1, 2, 3]
    assert selection.flagged_left_out == []
    assert select_report_slides(SHEET, sorted(flagged, reverse=True), 7) == selection


@pytest.mark.parametrize("cap", [1, 2, 33, 99, 100, 150])
def test_report_selection_has_min_of_cap_and_cohort_distinct_slides(cap):
    from mosare.reporting.slide_qc_report import select_report_slides

    selection = select_report_slides(SHEET, {"s010"}, cap)
    chosen = selection.flagged + selection.unflagged
    assert len(chosen) == len(set(chosen)) == min(cap, len(SHEET))
    assert selection.flagged == ["s010"]  # the flagged slide is always the first in


def test_flagged_slides_beyond_the_cap_are_named_not_embedded():
    from mosare.reporting.slide_qc_report import select_report_slides

    flagged = {f"s{i:03d}" for i in range(0, 100, 10)}
    selection = select_report_slides(SHEET, flagged, 4)
    assert selection.flagged == ["s000", "s010", "s020", "s030"] and selection.unflagged == []
    assert selection.flagged_left_out == [f"s{i:03d}" for i in range(40, 100, 10)]
    none = select_report_slides(SHEET, flagged, 0)
    assert (none.flagged, none.unflagged, len(none.flagged_left_out)) == ([], [], 10)


def test_report_selection_ignores_flags_of_slides_not_in_the_sheet_and_refuses_a_negative_cap():
    from mosare.reporting.slide_qc_report import select_report_slides

    assert select_report_slides(["a", "b"], {"zz"}, 5).flagged == []
    assert select_report_slides([], {"zz"}, 5).unflagged == []
    with pytest.raises(ValueError, match="max_slide_pictures"):
        select_report_slides(SHEET, set(), -1)


def test_report_copies_are_jpegs_of_at_most_the_report_size_in_status_folders(tmp_path):
    from PIL import Image

    from mosare.reporting.slide_qc_report import REPORT_PICTURE_MAX_SIDE, select_report_slides, write_report_copies

    rng = np.random.default_rng(0)
    pictures = {}
    for slide, shape in {"big": (1500, 3000), "small": (300, 200), "other": (50, 50)}.items():
        pixels = np.zeros((*shape, 3), np.uint8)
        pixels[..., 2] = 200  # blue, plus noise that PNG cannot compress
        pixels[..., 1] = rng.integers(0, 60, shape)
        pictures[slide] = tmp_path / f"{slide}.png"
        Image.fromarray(pixels).save(pictures[slide])
    selection = select_report_slides(["other", "small", "big"], {"small"}, 2)  # the middle of [other, big]: big
    written = write_report_copies(selection, pictures, tmp_path / "report")
    assert sorted(path.relative_to(tmp_path / "report").as_posix() for path in written) == [
        "flagged/small.jpg",
        "unflagged/big.jpg",
    ]
    big = Image.open(tmp_path / "report/unflagged/big.jpg")
    assert big.format == "JPEG" and big.size == (REPORT_PICTURE_MAX_SIDE, REPORT_PICTURE_MAX_SIDE // 2)
    assert Image.open(tmp_path / "report/flagged/small.jpg").size == (200, 300)  # never enlarged
    assert np.asarray(big)[..., 2].mean() > 180  # still the picture's colour
    assert (tmp_path / "report/unflagged/big.jpg").stat().st_size < (tmp_path / "big.png").stat().st_size


@pytest.mark.parametrize("n_flagged", [0, 1, 3])
@pytest.mark.parametrize("exclude_flagged", [False, True])
def test_metrics_md_counts_and_names_the_slides_left_out(n_flagged, exclude_flagged, tmp_path):
    from mosare.cohort.slide_qc_table import slides_left_out
    from mosare.evaluation.results import excluded_slides_markdown

    table = qc_rows(6)
    table["flags"] = [f"sharpness low (z -{i}.0)" if i < n_flagged else "" for i in range(6)]
    table["status"] = ["ok"] * 5 + ["excluded"]
    table["reason"] = [""] * 5 + ["tiling: not a slide"]
    write_slide_qc_table(table, tmp_path / "slide_qc.tsv")
    text = excluded_slides_markdown(slides_left_out(tmp_path / "slide_qc.tsv", exclude_flagged=exclude_flagged))
    expected = 1 + (n_flagged if exclude_flagged else 0)
    assert f"Slides left out of training (`slides.on_error`, `qc.exclude_flagged`): {expected}.\n" in text
    for i, slide in enumerate(table["slide_id"][:5]):
        assert (f"- {slide}: flagged by slide QC (qc.exclude_flagged): sharpness low (z -{i}.0)" in text) == (
            exclude_flagged and i < n_flagged
        )
    assert f"- {table['slide_id'].iloc[5]}: excluded at tiling: not a slide\n" in text
    assert excluded_slides_markdown(None) == ""  # a slide-less cohort says nothing about slides
