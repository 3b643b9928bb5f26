"""Tiling on what real slides bring: corrupt JPEG tiles at any pyramid level, and blue, green and black marker ink."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest
import zarr
from synthetic_slides import corrupt_tiles, tissue_image, write_slide

from mosare.reporting.plots.tissue import INK_COLOUR, UNREADABLE_COLOUR, plot_tissue_qc
from mosare.slides.reader import TooManyUnreadableTilesError, open_slide
from mosare.slides.tiling import tile_slide

TILING = {"target_mpp": 0.5, "patch_px": 256, "min_tissue_fraction": 0.5, "tissue": {}}
# 5000 x 4000 px at 0.25 µm/px, levels 1/4/16 (as in the report): 20 x 16 tiles of 256 px at level 0, 5 x 4 at
# level 1 and 2 x 1 at level 2; tissue covers the middle.
SIZE = (5000, 4000)
DOWNSAMPLES = (1, 4, 16)
# (column, row) of a tile inside the tissue, per level
TISSUE_TILE = {0: (10, 8), 1: (2, 2), 2: (0, 0)}


def _colour_pixels(picture: np.ndarray, colour: str) -> int:
    rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(picture - rgb).sum(axis=-1) < 30).sum())


@pytest.fixture(scope="module")
def clean_slide(tmp_path_factory):
    image = tissue_image(*SIZE, blobs=[(0.5, 0.5, 0.35, 0.35)])
    path = write_slide(tmp_path_factory.mktemp("clean") / "clean.svs", image, mpp=0.25, downsamples=DOWNSAMPLES)
    store = path.with_suffix(".zarr")
    result = tile_slide(path, store, slide_id="clean", tiling=TILING)
    return image, result


@pytest.mark.parametrize("levels", [(0,), (1,), (2,), (0, 1, 2)], ids=["level0", "level1", "level2", "every-level"])
def test_corrupt_tiles_are_recorded_warned_drawn_and_lose_no_slide(tmp_path, clean_slide, levels, caplog):
    image, clean = clean_slide
    path = write_slide(tmp_path / "bad.svs", image, mpp=0.25, downsamples=DOWNSAMPLES)
    for level in levels:
        corrupt_tiles(path, level, [TISSUE_TILE[level]])
    store, qc = tmp_path / "bad.zarr", tmp_path / "bad.png"
    with caplog.at_level(logging.WARNING):
        result = tile_slide(path, store, slide_id="S-bad", tiling=TILING, thumbnail=True)
    plot_tissue_qc(result, qc)
    recorded = zarr.open_group(str(store), mode="r").attrs["unreadable_tiles"]
    assert sorted({tile["level"] for tile in recorded}) == sorted(levels)
    for tile in recorded:
        column, row = TISSUE_TILE[tile["level"]]
        downsample = DOWNSAMPLES[tile["level"]]
        assert (
            abs(tile["x"] - column * 256 * downsample) <= downsample and abs(tile["y"] - row * 256 * downsample) <= 16
        )
        assert tile["filled_from"] == (tile["level"] - 1 if tile["level"] > 0 else None)
    assert "'S-bad'" in caplog.text and "cannot be decoded" in caplog.text
    # Only a level-0 tile is lost (filled with background): at most the patches it touches differ.
    changed = {tuple(c) for c in clean.coords} ^ {tuple(c) for c in result.coords}
    assert len(changed) <= (4 if 0 in levels else 0)
    picture = cv2.cvtColor(cv2.imread(str(qc)), cv2.COLOR_BGR2RGB).astype(int)
    assert _colour_pixels(picture, UNREADABLE_COLOUR) > 20


def test_a_slide_with_more_unreadable_area_than_allowed_fails_naming_it_and_the_setting(tmp_path):
    image = tissue_image(2048, 2048, blobs=[(0.5, 0.5, 0.4, 0.4)])
    path = write_slide(tmp_path / "rotten.svs", image, mpp=0.5)
    corrupt_tiles(path, 0, [(column, 3) for column in range(8)])  # one row of 8 x 8 tiles: 12.5% of the area
    with pytest.raises(
        TooManyUnreadableTilesError, match=r"'rotten'.*rotten.svs.*tiling.max_unreadable_fraction = 0.05"
    ):
        tile_slide(path, tmp_path / "r.zarr", slide_id="rotten", tiling=TILING)
    assert not (tmp_path / "r.zarr").exists()
    # Allowing more keeps the slide, with the row's patches gone.
    result = tile_slide(path, tmp_path / "r.zarr", slide_id="rotten", tiling={**TILING, "max_unreadable_fraction": 0.2})
    assert result.n_patches > 0 and not ((result.coords[:, 1] >= 768) & (result.coords[:, 1] < 1024)).any()


def test_the_region_reader_reopens_the_handle_so_reads_after_a_corrupt_tile_still_work(tmp_path):
    image = tissue_image(1024, 1024, blobs=[(0.5, 0.5, 0.4, 0.4)])
    path = corrupt_tiles(write_slide(tmp_path / "one.svs", image, mpp=0.5), 0, [(1, 1)])
    with open_slide(path, max_unreadable_fraction=0.1) as slide:  # the tile is 1/16 of this small slide
        region = slide.read_region(0, 0, 0, 1024, 1024)
        assert (region[256:512, 256:512] == 255).all()
        np.testing.assert_array_equal(region[:256], slide.read_region(0, 0, 0, 1024, 256))
    assert np.abs(region[512:].astype(int) - image[512:]).mean() < 3


INKS = {"blue": (35, 60, 140), "green": (30, 125, 70), "black": (38, 38, 42)}


def _ink_slide(path, colour, width_um, mpp=0.5):
    """2 x 2 mm: a tissue disc, one stroke on glass and one along the disc's edge (half on tissue)."""
    size = round(2000 / mpp)
    image = tissue_image(size, size, blobs=[(0.45, 0.5, 0.3, 0.3)], seed=3)
    width_px = max(1, round(width_um / mpp))
    ink = np.zeros((size, size), np.uint8)
    cv2.line(ink, (round(0.85 * size), round(0.1 * size)), (round(0.85 * size), round(0.9 * size)), 1, width_px)
    cv2.ellipse(ink, (round(0.45 * size), round(0.5 * size)), (round(0.3 * size),) * 2, 0, 200, 340, 1, width_px)
    # Marker ink is translucent: it darkens what lies under it (glass or tissue) like a filter.
    filtered = image.astype(np.float32) * (np.array(INKS[colour], np.float32) / 255)
    image[ink > 0] = filtered[ink > 0].astype(np.uint8)
    tissue = np.zeros((size, size), np.uint8)
    cv2.ellipse(tissue, (round(0.45 * size), round(0.5 * size)), (round(0.3 * size),) * 2, 0, 0, 360, 1, -1)
    write_slide(path, image, mpp=mpp, downsamples=(1, 4, 16))
    return ink > 0, tissue > 0


@pytest.mark.parametrize("width_um", [50, 150, 500])
@pytest.mark.parametrize("colour", sorted(INKS))
def test_marker_ink_on_glass_and_along_tissue_is_excluded_and_the_tissue_beside_it_kept(tmp_path, colour, width_um):
    path = tmp_path / f"{colour}.svs"
    ink, tissue = _ink_slide(path, colour, width_um)
    result = tile_slide(path, tmp_path / "p.zarr", slide_id=colour, tiling=TILING, thumbnail=True)
    footprint = result.geometry.footprint_px
    rows, cols = tissue.shape[0] // footprint, tissue.shape[1] // footprint
    clean_tissue = (tissue & ~ink)[: rows * footprint, : cols * footprint]
    fractions = clean_tissue.reshape(rows, footprint, cols, footprint).mean(axis=(1, 3))
    kept = {(int(x) // footprint, int(y) // footprint) for x, y in result.coords}
    # No kept patch is mostly ink or glass: ink does not count as tissue ...
    assert min(fractions[r, c] for c, r in kept) >= 0.35
    # ... and every cell that is >= 70% ink-free tissue is kept: ink does not take the tissue beside it.
    assert {(c, r) for r, c in zip(*np.nonzero(fractions >= 0.7))} <= kept
    # The stroke on glass is outlined as ink, not as tissue.
    ink_contours = np.concatenate(result.tissue.ink_contours)
    assert (ink_contours[:, 0] > 0.8 * tissue.shape[1]).any()
    assert all(contour[:, 0].max() < 0.8 * tissue.shape[1] for contour in result.tissue.tissue_contours)
    if width_um == 500:
        qc = tmp_path / "qc.png"
        plot_tissue_qc(result, qc)
        picture = cv2.cvtColor(cv2.imread(str(qc)), cv2.COLOR_BGR2RGB).astype(int)
        assert _colour_pixels(picture, INK_COLOUR) > 100
