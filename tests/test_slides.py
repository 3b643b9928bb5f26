"""mosare.slides.reader: the one slide reader (resolution, levels, patches, thumbnails, bad files)."""

from __future__ import annotations

import math

import numpy as np
import openslide
import pytest
from synthetic_slides import GLASS, tissue_image, write_image_tool_tiff, write_slide

import mosare.slides.reader
from mosare.slides.reader import ImplausibleMppError, MissingMppError, SlideError, SlideOpenError, open_slide


@pytest.fixture
def pyramid_slide(tmp_path):
    image = tissue_image(2048, 1536, blobs=[(0.5, 0.5, 0.3, 0.3)])
    return write_slide(tmp_path / "pyramid.svs", image, mpp=0.2527, downsamples=(1, 4, 16))


@pytest.fixture
def slide_without_mpp(tmp_path):
    return write_slide(tmp_path / "no-mpp.svs", tissue_image(512, 512, blobs=[(0.5, 0.5, 0.3, 0.3)]), mpp=None)


def test_pyramidal_slide_reports_file_mpp_and_levels(pyramid_slide):
    with open_slide(pyramid_slide, slide_id="S1") as slide:
        assert slide.slide_id == "S1"
        assert slide.mpp == pytest.approx(0.2527)
        assert slide.mpp_source == "file"
        assert slide.dimensions == (2048, 1536)
        assert slide.level_count == 3
        assert slide.level_dimensions == ((2048, 1536), (512, 384), (128, 96))
        assert slide.level_downsamples == pytest.approx((1.0, 4.0, 16.0))


def test_slide_id_defaults_to_file_stem_and_closing_twice_is_harmless(pyramid_slide):
    with open_slide(pyramid_slide) as slide:
        assert slide.slide_id == "pyramid"
        slide.close()


def test_slide_without_mpp_fails_naming_the_slide_and_both_fixes(slide_without_mpp):
    with pytest.raises(MissingMppError) as caught:
        open_slide(slide_without_mpp, slide_id="P7-slide")
    message = str(caught.value)
    assert "P7-slide" in message and str(slide_without_mpp) in message
    assert "'mpp' column" in message
    assert "assume_mpp" in message


def test_sample_sheet_mpp_is_used_when_the_file_has_none(slide_without_mpp):
    with open_slide(slide_without_mpp, mpp_override=0.25, assume_mpp=0.5) as slide:
        assert (slide.mpp, slide.mpp_source) == (0.25, "sample_sheet")


def test_config_assume_mpp_is_used_when_file_and_sheet_lack_it(slide_without_mpp):
    # A blank sample-sheet cell arrives as NaN.
    with open_slide(slide_without_mpp, mpp_override=math.nan, assume_mpp=0.5) as slide:
        assert (slide.mpp, slide.mpp_source) == (0.5, "config")


@pytest.fixture
def tiff_72_dpi(tmp_path):
    """An image-tool TIFF: its 72 dpi default tag reads as 352.78 µm/px in OpenSlide."""
    return write_image_tool_tiff(tmp_path / "export.tif", tissue_image(512, 512, blobs=[(0.5, 0.5, 0.3, 0.3)]))


def test_sample_sheet_mpp_overrides_the_file_and_the_disagreement_is_logged(pyramid_slide, caplog):
    with open_slide(pyramid_slide, slide_id="S1", mpp_override=0.5) as slide:
        assert (slide.mpp, slide.mpp_source) == (0.5, "sample_sheet")
    assert "'S1'" in caplog.text
    assert "sample sheet's mpp 0.5000 µm/px overrides the file's 0.2527 µm/px" in caplog.text


def test_sample_sheet_mpp_agreeing_with_the_file_logs_nothing(pyramid_slide, caplog):
    with open_slide(pyramid_slide, mpp_override=0.2526) as slide:
        assert slide.mpp == 0.2526
    assert "overrides" not in caplog.text


def test_sample_sheet_mpp_corrects_a_72_dpi_tiff(tiff_72_dpi, caplog):
    with open_slide(tiff_72_dpi, slide_id="T1", mpp_override=0.5) as slide:
        assert (slide.mpp, slide.mpp_source) == (0.5, "sample_sheet")
    assert "T1" in caplog.text and "the file's 352.7778 µm/px" in caplog.text


@pytest.mark.parametrize(
    ("mpp_override", "assume_mpp", "value", "source", "fix"),
    [
        (None, None, "352.778", "the file's metadata", "put the slide's true level-0 µm/px in the sample sheet"),
        (None, 0.5, "352.778", "the file's metadata", "put the slide's true level-0 µm/px in the sample sheet"),
        (20, None, "20 µm/px", "the sample sheet's 'mpp' column", "correct this row's 'mpp' in the sample sheet"),
    ],
)
def test_implausible_resolution_fails_naming_slide_file_value_source_and_fix(
    tiff_72_dpi, mpp_override, assume_mpp, value, source, fix
):
    with pytest.raises(ImplausibleMppError) as caught:
        open_slide(tiff_72_dpi, slide_id="T1", mpp_override=mpp_override, assume_mpp=assume_mpp)
    message = str(caught.value)
    assert "'T1'" in message and str(tiff_72_dpi) in message
    assert value in message and f"from {source}" in message and fix in message


def test_implausible_config_mpp_fails_naming_the_config_key(slide_without_mpp):
    with pytest.raises(ImplausibleMppError, match="from the config's tiling.assume_mpp.*correct tiling.assume_mpp"):
        open_slide(slide_without_mpp, assume_mpp=0.01)


def test_non_slide_file_fails_naming_the_file(tmp_path):
    junk = tmp_path / "notes.svs"
    junk.write_bytes(b"this is not a slide" * 100)
    with pytest.raises(SlideOpenError, match="notes.svs"):
        open_slide(junk)


def test_missing_file_fails_naming_the_file(tmp_path):
    with pytest.raises(SlideOpenError, match="gone.svs.*not found"):
        open_slide(tmp_path / "gone.svs")


def test_truncated_slide_fails_with_a_slide_error_naming_the_file(tmp_path):
    path = write_slide(tmp_path / "cut.svs", tissue_image(1024, 1024, blobs=[(0.5, 0.5, 0.4, 0.4)]), mpp=0.5)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SlideError, match="cut.svs"):
        with open_slide(path) as slide:
            slide.read_level_binned(0, 1)


def test_read_patch_at_native_size_equals_openslide_pixels(pyramid_slide):
    with open_slide(pyramid_slide) as slide:
        patch = slide.read_patch(300, 200, 0, 128, 128)
    expected = np.asarray(openslide.OpenSlide(str(pyramid_slide)).read_region((300, 200), 0, (128, 128)))[..., :3]
    assert patch.dtype == np.uint8 and patch.shape == (128, 128, 3)
    np.testing.assert_array_equal(patch, expected)


def test_read_patch_resizes_to_patch_px_keeping_colour(pyramid_slide):
    with open_slide(pyramid_slide) as slide:
        large = slide.read_patch(512, 512, 1, 64, 64)
        shrunk = slide.read_patch(512, 512, 0, 256, 64)
    assert shrunk.shape == (64, 64, 3)
    # Level 1 was made from level 0 by area averaging, so shrinking level 0 gives nearly the same picture.
    assert np.abs(shrunk.astype(int) - large.astype(int)).mean() < 8


def test_area_outside_the_scan_reads_as_white_not_black(pyramid_slide):
    with open_slide(pyramid_slide) as slide:
        patch = slide.read_patch(2048 - 32, 0, 0, 64, 64)
    assert (patch[:, 32:] == 255).all()  # transparent in OpenSlide, composited on white
    assert np.abs(patch[:, :32].astype(int) - GLASS).max() < 16


def test_thumbnail_fits_max_px_and_keeps_aspect(pyramid_slide):
    with open_slide(pyramid_slide) as slide:
        thumbnail = slide.thumbnail(200)
    assert thumbnail.shape == (150, 200, 3)


def test_strip_wise_level_read_equals_a_single_read(tmp_path, monkeypatch):
    path = write_slide(tmp_path / "flat.svs", tissue_image(1000, 900, blobs=[(0.4, 0.6, 0.3, 0.2)]), mpp=0.5)
    with open_slide(path) as slide:
        whole = slide.read_level_binned(0, 16)
        reads = []
        read_rgb = slide._read_rgb
        monkeypatch.setattr(slide, "_read_rgb", lambda *region: reads.append(region) or read_rgb(*region))
        monkeypatch.setattr(mosare.slides.reader, "MAX_READ_BYTES", 1000 * 16 * 4 * 3)  # 3 output rows per strip
        strips = slide.read_level_binned(0, 16)
    assert whole.shape == (900 // 16, 1000 // 16, 3)
    assert len(reads) == math.ceil(56 / 3)
    assert max(height for *_, height in reads) == 48
    np.testing.assert_array_equal(strips, whole)
