"""mosare.slides.tiling: exact-resolution patch geometry, tissue detection, patch stores and QC pictures."""

from __future__ import annotations

import logging
from dataclasses import asdict

import cv2
import numpy as np
import pytest
import zarr
from synthetic_slides import tissue_image, write_image_tool_tiff, write_slide

import mosare.slides.reader
from mosare.reporting.plots.tissue import SMALL_PIECE_COLOUR, plot_tissue_qc
from mosare.slides.patch_geometry import patch_geometry
from mosare.slides.patch_grid import grid_starts, mask_cell_fractions
from mosare.slides.reader import ImplausibleMppError, MissingMppError, SlideError, open_slide
from mosare.slides.tiling import explain_no_patches, patch_coords, tile_slide
from mosare.slides.tissue import TissueMask, TissueParams, detect_tissue

TILING = {"target_mpp": 0.5, "patch_px": 256, "min_tissue_fraction": 0.5, "tissue": {}}


def tile(slide, store, qc, **kwargs):
    """Tile as the workflow script does: the stage, then the QC picture when ``qc`` is given."""
    result = tile_slide(slide, store, thumbnail=qc is not None, **kwargs)
    if qc is not None:
        plot_tissue_qc(result, qc)
    return result


def coarse_coords(tissue, dimensions, footprint_px, min_tissue_fraction):
    """Patch coordinates from the coarse mask alone (no slide to read the fine pass from)."""
    xs, ys = grid_starts(dimensions, footprint_px)
    fractions = mask_cell_fractions(tissue.mask, tissue.downsample, xs, ys, footprint_px)
    return patch_coords(fractions, xs, ys, min_tissue_fraction)


@pytest.mark.parametrize(("slide_mpp", "footprint"), [(0.25, 512), (0.2527, 507), (0.5, 256)])
def test_footprint_covers_exactly_the_target_field_of_view(slide_mpp, footprint):
    geometry = patch_geometry(slide_mpp, 0.5, 256, (1.0,))
    assert geometry.footprint_px == footprint
    assert (geometry.read_level, geometry.read_px) == (0, footprint)


@pytest.mark.parametrize(
    ("slide_mpp", "target_mpp", "level", "read_px"),
    [
        (0.25, 0.5, 0, 512),  # level 1 (1 µm/px) is coarser than the target: read level 0 and shrink
        (0.25, 1.0, 1, 256),  # level 1 is exactly the target
        (0.25, 2.0, 1, 512),
        (0.25, 4.0, 2, 256),
        (0.2527, 1.0, 1, 253),  # level 1 at 1.0108 µm/px is within tolerance of 1.0: read 253 px, enlarge 1%
        (0.2527, 0.5, 0, 507),
    ],
)
def test_read_level_is_the_coarsest_at_or_finer_than_the_target(slide_mpp, target_mpp, level, read_px):
    geometry = patch_geometry(slide_mpp, target_mpp, 256, (1.0, 4.0, 16.0))
    assert (geometry.read_level, geometry.read_px) == (level, read_px)


def test_patch_coords_keep_grid_cells_with_enough_tissue():
    mask = np.zeros((8, 8), bool)
    mask[0:4, 0:4] = True  # top-left 4x4 mask px = level-0 [0, 64) at downsample 16
    mask[4:8, 4:6] = True  # half of the bottom-right cell
    tissue = TissueMask(mask, downsample=16.0, mpp=8.0, threshold=8.0)
    coords = coarse_coords(tissue, (128, 128), footprint_px=64, min_tissue_fraction=0.5)
    assert coords.dtype == np.int64
    assert coords.tolist() == [[0, 0], [64, 64]]
    assert coarse_coords(tissue, (128, 128), 64, 0.6).tolist() == [[0, 0]]


def test_patch_grid_stays_inside_the_slide():
    tissue = TissueMask(np.ones((10, 10), bool), downsample=16.0, mpp=8.0, threshold=8.0)
    coords = coarse_coords(tissue, (160, 150), footprint_px=50, min_tissue_fraction=0.5)
    assert coords.tolist() == [[x, y] for y in (0, 50, 100) for x in (0, 50, 100)]


def test_real_cmu_slide_gives_tissue_patches_and_a_qc_picture(cmu_slide, tmp_path):
    store, qc = tmp_path / "cmu.zarr", tmp_path / "qc" / "cmu.png"
    result = tile(cmu_slide, store, qc, slide_id="CMU-1", tiling=TILING)
    # 1.1 x 1.5 mm of skin with ~0.6 mm² of tissue; a 256 px patch at 0.5 µm/px covers 0.0164 mm²,
    # so at most ~40 patches can be half tissue and the wide central strip alone holds more than 20.
    assert 20 <= result.n_patches <= 45
    # Real H&E without marker ink: nothing is excluded as ink (keratin flakes and colour fringes included).
    assert not result.tissue.ink_contours and not result.tissue.ink.any()
    group = zarr.open_group(str(store), mode="r")
    coords = group["coords"][:]
    attrs = dict(group.attrs)
    assert coords.shape == (result.n_patches, 2) and coords.dtype == np.int64
    assert attrs["mpp_level0"] == pytest.approx(0.499) and attrs["mpp_source"] == "file"
    assert (attrs["footprint_px"], attrs["read_level"], attrs["read_px"]) == (257, 0, 257)
    assert attrs["upsample_factor"] == 1.0
    assert attrs["n_patches"] == result.n_patches
    assert 0.3e6 < attrs["tissue_area_um2"] < 1.5e6
    assert attrs["tissue"]["saturation_threshold"] == 8 and attrs["slide_path"] == str(cmu_slide.resolve())
    assert qc.stat().st_size > 50_000
    with open_slide(cmu_slide) as slide:
        patches = [slide.read_patch(x, y, 0, 257, 256) for x, y in coords[:10]]
    saturation = [cv2.cvtColor(p, cv2.COLOR_RGB2HSV)[..., 1].mean() for p in patches]
    assert min(saturation) > 20  # stained tissue, not glass (glass is below 10)


def test_demo_like_slide_finds_each_tissue_piece_and_skips_pen_ink(tmp_path):
    image = tissue_image(4096, 4096, blobs=[(0.3, 0.3, 0.2, 0.2), (0.7, 0.7, 0.2, 0.2)], pen=(0.05, 0.95, 0.55, 0.95))
    path = write_slide(tmp_path / "demo.svs", image, mpp=0.25, downsamples=(1, 4, 16))
    store = tmp_path / "demo.zarr"
    # The slide is 1 mm wide, so each disc (0.13 mm²) is below the default 0.25 mm² fragment size.
    tiling = {**TILING, "tissue": {"min_tissue_area_um2": 50_000.0}}
    result = tile(path, store, tmp_path / "demo.png", slide_id="demo", tiling=tiling)
    coords = zarr.open_group(str(store), mode="r")["coords"][:]
    assert result.geometry.footprint_px == 512
    centres = coords + 256
    in_first = np.hypot(centres[:, 0] - 0.3 * 4096, centres[:, 1] - 0.3 * 4096) < 0.2 * 4096 + 256
    in_second = np.hypot(centres[:, 0] - 0.7 * 4096, centres[:, 1] - 0.7 * 4096) < 0.2 * 4096 + 256
    assert in_first.any() and in_second.any()
    assert (in_first | in_second).all()  # nothing on the ink stroke or glass
    # Each disc has area pi * 0.2² * 4096² px; a patch is 512² px.
    expected_per_disc = np.pi * (0.2 * 4096) ** 2 / 512**2
    assert 0.6 * expected_per_disc < in_first.sum() < 1.3 * expected_per_disc


def test_tissue_mask_has_holes_where_the_tissue_has_large_gaps(tmp_path):
    image = tissue_image(2048, 2048, blobs=[(0.5, 0.5, 0.45, 0.45)])
    # A glass gap of radius 150 µm (0.07 mm²), above the default 0.04 mm² minimum hole.
    cv2.circle(image, (1024, 1024), 300, (243, 243, 245), -1)
    path = write_slide(tmp_path / "ring.svs", image, mpp=0.5)
    with open_slide(path) as slide:
        tissue = detect_tissue(slide, TissueParams())
    assert len(tissue.tissue_contours) == 1 and len(tissue.hole_contours) == 1
    hole_centre = tissue.hole_contours[0].mean(axis=0)
    assert np.allclose(hole_centre, 1024, atol=32)
    assert not tissue.mask[1024 // 16, 1024 // 16]


def test_otsu_threshold_finds_the_same_tissue(tmp_path):
    path = write_slide(tmp_path / "s.svs", tissue_image(2048, 2048, blobs=[(0.5, 0.5, 0.35, 0.35)]), mpp=0.5)
    with open_slide(path) as slide:
        fixed = detect_tissue(slide, TissueParams())
        otsu = detect_tissue(slide, TissueParams(saturation_threshold=None))
    assert otsu.threshold > 8
    overlap = (fixed.mask & otsu.mask).sum() / (fixed.mask | otsu.mask).sum()
    assert overlap > 0.95


def test_blank_slide_gives_a_valid_empty_store_and_a_warning(tmp_path, caplog):
    blank = np.full((1024, 1024, 3), 250, np.uint8)
    path = write_slide(tmp_path / "blank.svs", blank, mpp=0.5)
    store, qc = tmp_path / "blank.zarr", tmp_path / "blank.png"
    with caplog.at_level(logging.WARNING):
        result = tile(path, store, qc, slide_id="blank", tiling=TILING)
    group = zarr.open_group(str(store), mode="r")
    assert result.n_patches == 0
    assert group["coords"].shape == (0, 2) and group["coords"].dtype == np.int64
    assert group.attrs["n_patches"] == 0 and group.attrs["tissue_area_um2"] == 0
    assert "blank" in caplog.text and "no tissue patches" in caplog.text
    assert "no pixel was above tiling.tissue.saturation_threshold = 8" in caplog.text
    assert qc.exists()


def test_tiling_uses_sample_sheet_then_config_mpp_and_records_the_source(tmp_path):
    path = write_slide(tmp_path / "nompp.svs", tissue_image(2048, 2048, blobs=[(0.5, 0.5, 0.4, 0.4)]), mpp=None)
    tile(path, tmp_path / "a.zarr", None, slide_id="nompp", tiling=TILING, mpp_override=0.25)
    tile(path, tmp_path / "b.zarr", None, slide_id="nompp", tiling={**TILING, "assume_mpp": 0.5})
    sheet = zarr.open_group(str(tmp_path / "a.zarr"), mode="r").attrs
    config = zarr.open_group(str(tmp_path / "b.zarr"), mode="r").attrs
    assert (sheet["mpp_source"], sheet["mpp_level0"], sheet["footprint_px"]) == ("sample_sheet", 0.25, 512)
    assert (config["mpp_source"], config["mpp_level0"], config["footprint_px"]) == ("config", 0.5, 256)


def test_tiling_a_slide_without_any_mpp_fails_and_writes_nothing(tmp_path):
    path = write_slide(tmp_path / "nompp.svs", tissue_image(512, 512, blobs=[(0.5, 0.5, 0.4, 0.4)]), mpp=None)
    with pytest.raises(MissingMppError, match="S9.*'mpp' column.*assume_mpp"):
        tile(path, tmp_path / "s.zarr", tmp_path / "s.png", slide_id="S9", tiling=TILING)
    assert not (tmp_path / "s.zarr").exists() and not (tmp_path / "s.png").exists()


def test_tiling_a_corrupt_file_fails_naming_it(tmp_path):
    path = tmp_path / "broken.svs"
    path.write_bytes(b"II*\x00" + bytes(range(256)) * 40)
    with pytest.raises(SlideError, match="broken.svs"):
        tile(path, tmp_path / "b.zarr", None, slide_id="broken", tiling=TILING)
    assert not (tmp_path / "b.zarr").exists()


def test_one_level_slide_tissue_read_in_strips_equals_the_direct_read(tmp_path, monkeypatch):
    image = tissue_image(3000, 2600, blobs=[(0.35, 0.4, 0.3, 0.3), (0.75, 0.7, 0.2, 0.25)])
    path = write_slide(tmp_path / "flat.svs", image, mpp=0.5)
    with open_slide(path) as slide:
        direct = detect_tissue(slide, TissueParams())
        monkeypatch.setattr(mosare.slides.reader, "MAX_READ_BYTES", 3000 * 4 * 16 * 10)  # 10 mask rows per strip
        strips = detect_tissue(slide, TissueParams())
    assert direct.mask.shape == (2600 // 16, 3000 // 16) and direct.mask.any()
    np.testing.assert_array_equal(strips.mask, direct.mask)
    assert strips.area_um2 == direct.area_um2


def test_tissue_mask_is_centred_on_the_tissue(tmp_path):
    # An even closing kernel (CLAM's 4) used to shift the mask a detection pixel down-right.
    image = tissue_image(4096, 4096, blobs=[(0.5, 0.5, 0.3, 0.3)])
    path = write_slide(tmp_path / "disc.svs", image, mpp=0.5, downsamples=(1, 4))
    with open_slide(path) as slide:
        tissue = detect_tissue(slide, TissueParams(closing=4))
    rows, cols = np.nonzero(tissue.mask)
    centre = (np.array([cols.mean(), rows.mean()]) + 0.5) * tissue.downsample
    assert np.abs(centre - 2048).max() < 0.25 * tissue.downsample


def test_demo_cohort_slide_with_a_marker_stroke_keeps_patches_off_the_ink(tmp_path):
    from mosare.demo.writer import patient_phenotype, write_demo_slide

    path = tmp_path / "demo-pen.svs"
    write_demo_slide(
        path, seed=0, slide_index=0, phenotype=patient_phenotype(0, 0, 0.0), mpp=0.5, slide_px=7168, pen=True
    )
    result = tile(path, tmp_path / "p.zarr", None, slide_id="demo-pen", tiling=TILING)
    coords = zarr.open_group(str(tmp_path / "p.zarr"), mode="r")["coords"][:]
    # 1.8 x 1.8 mm field with about 1.5 mm² of tissue; a patch covers 0.0164 mm².
    assert 60 <= result.n_patches <= 110
    with open_slide(path) as slide:
        ink_fraction = []
        for x, y in coords:
            hsv = cv2.cvtColor(slide.read_patch(x, y, 0, 256, 256), cv2.COLOR_RGB2HSV)
            ink_fraction.append(((hsv[..., 2] < 130) & (hsv[..., 1] < 60)).mean())
    assert max(ink_fraction) < 0.35


def test_footprint_below_one_level0_pixel_is_refused_with_the_cause():
    with pytest.raises(ValueError, match="16 px patch at 0.1 µm/px covers 1.6 µm, less than one level-0 pixel"):
        patch_geometry(8.0, 0.1, 16, (1.0,))
    with pytest.raises(ValueError, match="at least 1 level-0 pixel"):
        grid_starts((64, 64), 0)


def test_tiling_with_a_footprint_below_one_pixel_fails_naming_the_slide(tmp_path):
    path = write_slide(tmp_path / "coarse.svs", tissue_image(256, 256, blobs=[(0.5, 0.5, 0.4, 0.4)]), mpp=8.0)
    tiling = {**TILING, "target_mpp": 0.1, "patch_px": 16}
    with pytest.raises(SlideError, match="'S-coarse'.*coarse.svs.*8 µm/px from file.*less than one level-0 pixel"):
        tile(path, tmp_path / "c.zarr", None, slide_id="S-coarse", tiling=tiling)
    assert not (tmp_path / "c.zarr").exists()


def test_72_dpi_tiff_is_tiled_at_the_sample_sheet_mpp(tmp_path):
    image = tissue_image(2048, 2048, blobs=[(0.5, 0.5, 0.4, 0.4)])
    path = write_image_tool_tiff(tmp_path / "export.tif", image)
    result = tile(path, tmp_path / "e.zarr", None, slide_id="export", tiling=TILING, mpp_override=0.5)
    attrs = zarr.open_group(str(tmp_path / "e.zarr"), mode="r").attrs
    assert (attrs["mpp_source"], attrs["mpp_level0"], attrs["footprint_px"]) == ("sample_sheet", 0.5, 256)
    # A 0.8 mm disc holds about 0.5 mm² / 0.0164 mm² = 31 patches.
    assert 20 <= result.n_patches <= 40


def test_72_dpi_tiff_without_sample_sheet_mpp_fails_and_writes_nothing(tmp_path):
    path = write_image_tool_tiff(tmp_path / "export.tif", tissue_image(512, 512, blobs=[(0.5, 0.5, 0.4, 0.4)]))
    with pytest.raises(ImplausibleMppError, match="'export'.*352.778 µm/px from the file's metadata.*'mpp' column"):
        tile(path, tmp_path / "e.zarr", tmp_path / "e.png", slide_id="export", tiling=TILING)
    assert not (tmp_path / "e.zarr").exists() and not (tmp_path / "e.png").exists()


def test_slide_of_specks_smaller_than_a_patch_warns_that_the_area_filter_removed_them(tmp_path, caplog):
    # Two specks of radius 50 µm (7,850 µm² each), below the default minimum piece: one 128 x 128 µm patch.
    image = tissue_image(2048, 2048, blobs=[(0.3, 0.3, 0.05, 0.05), (0.7, 0.6, 0.05, 0.05)])
    path = write_slide(tmp_path / "specks.svs", image, mpp=0.5, downsamples=(1, 4))
    qc = tmp_path / "specks.png"
    with caplog.at_level(logging.WARNING):
        result = tile(path, tmp_path / "b.zarr", qc, slide_id="specks", tiling=TILING)
    tissue = result.tissue
    assert result.n_patches == 0
    assert len(tissue.small_piece_contours) == 2
    assert tissue.small_piece_areas_um2[0] == pytest.approx(np.pi * 50**2, rel=0.3)
    warning = caplog.text
    assert "'specks'" in warning and "no tissue patches" in warning
    assert "2 tissue piece(s) were found but all were smaller than tiling.tissue.min_tissue_area_um2 = 16384" in (
        warning
    )
    assert f"largest: {tissue.small_piece_areas_um2[0]:.0f} µm²" in warning
    for setting in ("saturation_threshold", "exclude_pen", "min_tissue_area_um2", "tiling.min_tissue_fraction"):
        assert setting in warning
    # The QC picture outlines the dropped pieces in their own colour.
    picture = cv2.cvtColor(cv2.imread(str(qc)), cv2.COLOR_BGR2RGB).astype(int)
    magenta = np.array([int(SMALL_PIECE_COLOUR[i : i + 2], 16) for i in (1, 3, 5)])
    assert (np.abs(picture - magenta).sum(axis=-1) < 30).sum() > 100


def test_default_area_filter_keeps_biopsy_fragments_that_hold_a_patch(tmp_path):
    # Needle-biopsy-sized fragments of radius 100 µm (0.031 mm²): the old 0.25 mm² default dropped them.
    image = tissue_image(2048, 2048, blobs=[(0.3, 0.3, 0.1, 0.1), (0.7, 0.6, 0.1, 0.1)])
    path = write_slide(tmp_path / "biopsy.svs", image, mpp=0.5, downsamples=(1, 4))
    result = tile(path, tmp_path / "b.zarr", None, slide_id="biopsy", tiling=TILING)
    # Each fragment holds about 0.031 / 0.0164 = 1.9 patches' area, so one to three half-tissue grid cells.
    assert 2 <= result.n_patches <= 6
    assert result.tissue.min_piece_um2 == 128.0**2
    raised = {**TILING, "tissue": {"min_tissue_area_um2": 250_000.0}}
    assert tile(path, tmp_path / "c.zarr", None, slide_id="biopsy", tiling=raised).n_patches == 0


def test_no_patch_explanation_names_pen_removal_and_min_tissue_fraction():
    empty = TissueMask(np.zeros((8, 8), bool), downsample=16.0, mpp=8.0, threshold=8.0, stained_area_um2=5000.0)
    assert "all of it was classed as pen ink" in explain_no_patches(empty, TissueParams(), (128, 128), 64, 0.5)
    sliver = np.zeros((8, 8), bool)
    sliver[:, 0] = True  # a quarter of each left-column patch
    thin = TissueMask(sliver, downsample=16.0, mpp=8.0, threshold=8.0)
    reason = explain_no_patches(thin, TissueParams(), (128, 128), 64, 0.5)
    assert "no patch has tiling.min_tissue_fraction = 0.5 of its area in tissue (best: 0.25)" in reason
    too_small = explain_no_patches(thin, TissueParams(), (50, 50), 64, 0.5)
    assert "smaller than one patch (64 level-0 px)" in too_small


def test_low_resolution_slide_warns_of_upsampling_and_records_the_factor(tmp_path, caplog):
    image = tissue_image(512, 512, blobs=[(0.5, 0.5, 0.45, 0.45)])
    path = write_slide(tmp_path / "lowres.svs", image, mpp=2.0)
    with caplog.at_level(logging.WARNING):
        result = tile(path, tmp_path / "l.zarr", None, slide_id="lowres", tiling=TILING)
    attrs = zarr.open_group(str(tmp_path / "l.zarr"), mode="r").attrs
    assert (attrs["footprint_px"], attrs["read_px"], attrs["upsample_factor"]) == (64, 64, 4.0)
    assert result.n_patches > 0
    assert "'lowres'" in caplog.text
    assert "2.0000 µm/px (from file), coarser than tiling.target_mpp 0.500 µm/px" in caplog.text
    assert "upsampled 4.00x to 256 px" in caplog.text


def test_level_within_tolerance_of_the_target_is_not_reported_as_upsampling(tmp_path, caplog):
    path = write_slide(tmp_path / "near.svs", tissue_image(1024, 1024, blobs=[(0.5, 0.5, 0.45, 0.45)]), mpp=0.505)
    with caplog.at_level(logging.WARNING):
        tile(path, tmp_path / "n.zarr", None, slide_id="near", tiling=TILING)
    assert patch_geometry(0.505, 0.5, 256, (1.0,)).upsampled is False
    assert "upsampled" not in caplog.text


def test_tissue_detector_registry_schema_and_docs_agree():
    from mosare.core.config_schema import config_schema
    from mosare.slides.tissue import TISSUE_DETECTORS, tissue_detector

    schema = config_schema()
    tissue = schema["properties"]["tiling"]["properties"]["tissue"]["properties"]
    method = tissue["method"]
    assert {key: spec["default"] for key, spec in tissue.items()} == asdict(TissueParams())
    assert tissue_detector(TissueParams()).name == method["default"] in TISSUE_DETECTORS.names()
    with pytest.raises(ValueError, match="unknown tissue detector 'otsu-unet'; registered: .*saturation"):
        tissue_detector(TissueParams(method="otsu-unet"))


def test_fine_pass_read_in_pieces_equals_the_one_read_per_row(tmp_path, monkeypatch):
    from mosare.slides.tissue import fine_cell_fractions

    image = tissue_image(3000, 2600, blobs=[(0.35, 0.4, 0.3, 0.3), (0.75, 0.7, 0.2, 0.25)])
    path = write_slide(tmp_path / "flat.svs", image, mpp=0.5)
    params = TissueParams()
    with open_slide(path) as slide:
        xs, ys = grid_starts(slide.dimensions, 256)
        whole = fine_cell_fractions(slide, detect_tissue(slide, params), params, xs, ys, 256)
        monkeypatch.setattr(mosare.slides.reader, "MAX_READ_BYTES", 256 * 4 * 300 * 3)  # about 3 cells per read
        pieces = fine_cell_fractions(slide, detect_tissue(slide, params), params, xs, ys, 256)
    assert (whole >= 0.5).sum() > 20
    np.testing.assert_allclose(pieces, whole, atol=1e-9)


def test_a_dark_stroke_broken_by_tissue_colour_into_pieces_each_under_the_stroke_area_is_still_ink():
    """Dark ink over tissue takes the stain's hue in places, so the ink rule sees a stroke as fragments (nsclc-035-A).
    Fragments a few pixels apart count as one stroke; ink-coloured debris specks spread over tissue do not."""
    from mosare.slides.tissue_plugins.saturation import MIN_STROKE_AREA_UM2, STROKE_GAP_UM, ink_mask

    mpp = 8.0
    rgb = np.full((120, 400, 3), (215, 140, 200), np.uint8)  # eosin-pink tissue
    for start in range(10, 380, 38):  # a 6 px (48 µm) dark stroke in 34 px pieces, 4 px (32 µm) of purple between
        rgb[20:26, start : start + 34] = (40, 40, 48)
        rgb[20:26, start + 34 : start + 38] = (120, 60, 130)
    for y in range(60, 110, 25):  # dark debris specks, 4x4 px, 24 px apart
        for x in range(20, 380, 24):
            rgb[y : y + 4, x : x + 4] = (40, 40, 48)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    min_px, gap_px = MIN_STROKE_AREA_UM2 / mpp**2, round(STROKE_GAP_UM / mpp)
    assert 6 * 34 < min_px  # each piece alone is below the area of a stroke

    ink = ink_mask(rgb, hsv, min_px, gap_px)
    unlinked = ink_mask(rgb, hsv, min_px, 0)

    assert ink[20:26, 10:380].mean() > 0.8 and not unlinked[20:26].any()
    assert not ink[55:].any()  # the specks stay tissue
