"""slides.on_error: a slide that cannot be tiled or embedded never holds back the other slides of its chunk.

Real failure modes, each at the first, middle and last place of one embedding chunk: a truncated file, a file that is
not a slide, a slide without a resolution (tiling), and a slide whose patches fail to decode (embedding). With
``exclude`` every good slide of the chunk is embedded bit-identically to a chunk without the bad ones, and each bad
one is recorded with its reason; with ``stop`` the error says how to switch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_slides import tissue_image, write_slide
from test_embedding import CORRUPT_TILE, MeanColour, make_patch_store, make_slide, mean_colour_encoder, tile_grid
from workflow_runs import make_workdir, snakemake, tiny_demo_config

from mosare.cohort.slide_qc_table import drop_slides, slide_qc_table, slides_left_out, write_slide_qc_table
from mosare.core.stores import open_store
from mosare.features.embedding import EmbeddingError, SlideJob, embed_slides
from mosare.features.feature_store import FeatureStore, FeatureStoreError
from mosare.features.gmm_store import GMMStoreError, SlideGMMStore
from mosare.features.slide_gmm import SlideGMMJob, fit_slide_gmms
from mosare.slides.exclusion import SWITCH_HINT, SlideExclusion
from mosare.slides.patch_store import PatchStore, PatchStoreError
from mosare.slides.reader import SlideError
from mosare.slides.tiling import tile_or_exclude

# The slides are ~0.5 mm wide: the default minimum tissue area (0.25 mm²) would drop every piece.
TILING = {"tissue": {"min_tissue_area_um2": 5000.0, "min_hole_area_um2": 2000.0, "detection_mpp": 4.0}}
GOOD = ("good-1", "good-2", "good-3")


def good_slide(path: Path, seed: int) -> Path:
    return write_slide(path, tissue_image(1024, 1024, blobs=[(0.5, 0.5, 0.4, 0.35)], seed=seed), mpp=0.5)


def truncated_slide(path: Path) -> Path:
    good_slide(path, 9)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def not_a_slide(path: Path) -> Path:
    path.write_text("patient_id\tlabel\nP1\tLUAD\n")  # a sample sheet saved under a slide's name
    return path


def slide_without_resolution(path: Path) -> Path:
    return write_slide(path, tissue_image(1024, 1024, blobs=[(0.5, 0.5, 0.4, 0.35)], seed=5), mpp=None)


BAD = {"truncated": truncated_slide, "not-a-slide": not_a_slide, "no-resolution": slide_without_resolution}


def chunk_order(position: str, bad: list[str]) -> list[str]:
    return {
        "first": [*bad, *GOOD],
        "middle": [GOOD[0], *bad, *GOOD[1:]],
        "last": [*GOOD, *bad],
    }[position]


@pytest.fixture(scope="module")
def slides(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("slides")
    made = {slide_id: good_slide(folder / f"{slide_id}.svs", seed) for seed, slide_id in enumerate(GOOD)}
    made.update({slide_id: make(folder / f"{slide_id}.svs") for slide_id, make in BAD.items()})
    return made


def tile_all(slides: dict[str, Path], order: list[str], folder: Path, on_error: str) -> dict[str, Path]:
    stores = {}
    for slide_id in order:
        stores[slide_id] = folder / "patches" / f"{slide_id}.zarr"
        tile_or_exclude(slides[slide_id], stores[slide_id], slide_id=slide_id, tiling=TILING, on_error=on_error)
    return stores


@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_unusable_slides_anywhere_in_a_chunk_are_excluded_and_the_good_ones_embedded_bit_identically(
    position, slides, tmp_path
):
    order = chunk_order(position, list(BAD))
    stores = tile_all(slides, order, tmp_path, "exclude")
    for slide_id, store in stores.items():
        exclusion = SlideExclusion.read(store)
        assert (exclusion is None) == (slide_id in GOOD)
        if exclusion is not None:
            assert exclusion.stage == "tiling" and str(slides[slide_id]) in exclusion.reason
            assert PatchStore.count(store) == 0
            with pytest.raises(PatchStoreError, match=f"{slide_id}.*excluded at tiling"):
                PatchStore.read(store)
    assert all(PatchStore.count(stores[slide_id]) > 0 for slide_id in GOOD)

    encoder = mean_colour_encoder(MeanColour(), tmp_path / "weights.bin")
    jobs = [SlideJob(stores[s], tmp_path / "features" / f"{s}.zarr") for s in order]
    embed_slides(jobs, encoder, batch_size=4, num_workers=2, on_error="exclude")
    alone = [SlideJob(stores[s], tmp_path / "alone" / f"{s}.zarr") for s in GOOD]
    embed_slides(alone, encoder, batch_size=4, num_workers=2, on_error="exclude")
    for slide_id in GOOD:
        chunk, reference = (FeatureStore.read(tmp_path / kind / f"{slide_id}.zarr") for kind in ("features", "alone"))
        assert chunk.n_patches == PatchStore.count(stores[slide_id]) > 0
        np.testing.assert_array_equal(chunk.features, reference.features)
        np.testing.assert_array_equal(chunk.coords, reference.coords)
    for slide_id in BAD:
        features = tmp_path / "features" / f"{slide_id}.zarr"
        assert SlideExclusion.read(features) == SlideExclusion.read(stores[slide_id])  # passed on as it was
        assert FeatureStore.count(features) == 0

    table = slide_qc_table(stores, {s: tmp_path / "features" / f"{s}.zarr" for s in order})
    assert list(table["slide_id"]) == order
    excluded = table.set_index("slide_id")
    for slide_id in order:
        row = excluded.loc[slide_id]
        assert row["status"] == ("ok" if slide_id in GOOD else "excluded")
        assert row["reason"].startswith("tiling: ") == (slide_id not in GOOD)
        assert ("excluded at tiling" in row["flags"]) == (slide_id not in GOOD)


def test_each_kind_of_unusable_slide_is_recorded_with_a_reason_that_names_it(slides, tmp_path):
    stores = tile_all(slides, list(BAD), tmp_path, "exclude")
    reasons = {slide_id: SlideExclusion.read(store).reason for slide_id, store in stores.items()}  # type: ignore[union-attr]
    assert "no-resolution" in reasons["no-resolution"] and "mpp" in reasons["no-resolution"].lower()
    assert all(str(slides[slide_id]) in reason for slide_id, reason in reasons.items())


@pytest.mark.parametrize("kind", list(BAD))
def test_with_on_error_stop_a_bad_slide_fails_its_job_saying_how_to_switch(kind, slides, tmp_path):
    with pytest.raises(SlideError) as raised:
        tile_or_exclude(slides[kind], tmp_path / "p.zarr", slide_id=kind, tiling=TILING, on_error="stop")
    assert str(slides[kind]) in str(raised.value) and SWITCH_HINT in str(raised.value)
    assert not (tmp_path / "p.zarr").exists()


@pytest.mark.parametrize("position", [0, 1, 2])
def test_a_slide_over_the_decode_failure_fraction_is_excluded_at_embedding_and_its_neighbours_go_on(position, tmp_path):
    encoder = mean_colour_encoder(MeanColour(), tmp_path / "weights.bin")
    good = make_slide(tmp_path / "good.svs")
    bad = make_slide(tmp_path / "bad-slide.svs", corrupt_tile=CORRUPT_TILE)
    slides = [good, good]
    slides.insert(position, bad)
    patches = [make_patch_store(tmp_path / f"p{i}.zarr", slide, tile_grid()) for i, slide in enumerate(slides)]
    jobs = [SlideJob(store, tmp_path / "out" / f"{i}.zarr") for i, store in enumerate(patches)]

    results = embed_slides(jobs, encoder, batch_size=4, num_workers=2, max_failed_fraction=0.0, on_error="exclude")

    good_patches = patches[1 if position == 0 else 0]
    embed_slides([SlideJob(good_patches, tmp_path / "alone.zarr")], encoder, batch_size=4, num_workers=0)
    reference = FeatureStore.read(tmp_path / "alone.zarr")
    for index, (job, result) in enumerate(zip(jobs, results, strict=True)):
        if index == position:
            assert isinstance(result, SlideExclusion) and result.stage == "embedding"
            assert "1 of 16 patches failed to decode" in result.reason
            assert SlideExclusion.read(job.output) == result
            with pytest.raises(FeatureStoreError, match="excluded at embedding"):
                FeatureStore.read(job.output)
        else:
            stored = FeatureStore.read(job.output)
            np.testing.assert_array_equal(stored.features, reference.features)
    # With stop, the same chunk fails naming the slide and saying how to switch.
    with pytest.raises(EmbeddingError, match="bad-slide") as raised:
        embed_slides(jobs, encoder, batch_size=4, num_workers=0, max_failed_fraction=0.0, on_error="stop")
    assert SWITCH_HINT in str(raised.value)


def test_an_excluded_slide_gets_an_exclusion_for_its_gmm_store_and_a_picture_saying_why(tmp_path):
    exclusion = SlideExclusion("s1", "/data/s1.svs", "tiling", "not a slide")
    exclusion.write(tmp_path / "features.zarr")
    drawn = []
    job = SlideGMMJob("s1", tmp_path / "features.zarr", tmp_path / "gmm.zarr", tmp_path / "p.zarr", "/data/s1.svs",
                      tmp_path / "qc.png")  # fmt: skip
    fit_slide_gmms([job], {"components": 2, "seed": 0}, draw=lambda fitted, j: drawn.append(fitted))
    assert drawn == [exclusion] and SlideExclusion.read(tmp_path / "gmm.zarr") == exclusion
    with pytest.raises(GMMStoreError, match="excluded at tiling: not a slide"):
        SlideGMMStore.read(tmp_path / "gmm.zarr")


def test_the_cohort_table_drops_excluded_slides_and_their_patients_stay(tmp_path):
    table = pd.DataFrame({"slide_id": ["a", "b", "c"], "flags": ["", "sharpness low (z -9.0)", "excluded at tiling"],
                          "status": ["ok", "ok", "excluded"], "reason": ["", "", "tiling: not a slide"]})  # fmt: skip
    write_slide_qc_table(table, tmp_path / "slide_qc.tsv")
    sheet = pd.DataFrame({"patient_id": ["P1", "P1", "P2"], "slide_id": ["a", "b", "c"],
                          "slide_path": ["a.svs", "b.svs", "c.svs"], "label": ["x", "x", "y"]})  # fmt: skip
    kept = drop_slides(sheet, slides_left_out(tmp_path / "slide_qc.tsv", exclude_flagged=False), "lung")
    assert list(kept["slide_id"]) == ["a", "b", ""] and list(kept["patient_id"]) == ["P1", "P1", "P2"]
    kept = drop_slides(sheet, slides_left_out(tmp_path / "slide_qc.tsv", exclude_flagged=True), "lung")
    assert list(kept["slide_id"]) == ["a", "", ""]


def test_a_cohort_with_unusable_slides_in_one_chunk_runs_to_its_qc_table_and_cohort_table(slides, tmp_path):
    """The workflow itself: one embedding chunk of three good and three bad slides, no --keep-going needed."""
    data = tmp_path / "cohort"
    (data / "reports").mkdir(parents=True)
    rows = ["patient_id\tslide_id\tslide_path\tlabel\treport_path"]
    order = chunk_order("middle", list(BAD))
    for index, slide_id in enumerate(order):
        (data / "reports" / f"P{index}.txt").write_text("Microscopic description: tumour cells.\n")
        rows.append(f"P{index}\t{slide_id}\t{slides[slide_id]}\t{'AB'[index % 2]}\treports/P{index}.txt")
    (data / "samples.tsv").write_text("\n".join(rows) + "\n")
    config = tiny_demo_config()
    config["cohorts"] = {"mixed": {"classes": ["A", "B"], "samples": str(data / "samples.tsv")}}
    config["tiling"] = TILING
    workdir = make_workdir(tmp_path / "work", config)
    run = snakemake(workdir, "results/mixed/slide_qc.tsv", "results/mixed/cohort.tsv")
    summary = run.stdout + run.stderr
    assert "3 slide(s) could not be used and were left out (slides.on_error: exclude" in summary
    assert all(f"{slide_id}: tiling: " in summary for slide_id in BAD)

    qc = pd.read_csv(workdir / "results/mixed/slide_qc.tsv", sep="\t", dtype=str).fillna("").set_index("slide_id")
    assert {s: qc.loc[s, "status"] for s in order} == {s: "ok" if s in GOOD else "excluded" for s in order}
    assert all(str(slides[s]) in qc.loc[s, "reason"] for s in BAD)
    cohort = pd.read_csv(workdir / "results/mixed/cohort.tsv", sep="\t", dtype=str, keep_default_na=False)
    has_wsi = dict(zip(cohort["slide_ids"].where(cohort["slide_ids"] != "", cohort["patient_id"]), cohort["has_wsi"]))
    assert {s: has_wsi[s] for s in GOOD} == dict.fromkeys(GOOD, "True")
    assert len(cohort) == len(order) and (cohort["has_wsi"] == "False").sum() == len(BAD)  # slide-less now
    for slide_id in GOOD:
        assert open_store(workdir / f"results/mixed/features/efficientnet-lite0/{slide_id}.zarr").attrs["n_patches"] > 0
