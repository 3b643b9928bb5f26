"""Where the model looked: patch attention of a saved MoSARe model over every patch of generated slides, stored
with the feature store's coordinates, exported as GeoJSON and drawn."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from synthetic_slides import tissue_image, write_slide

import mosare
from mosare.cohort.table import CohortTable
from mosare.core.stores import open_store, write_store
from mosare.deploy.attention import AttentionError, cohort_attention, write_cohort_attention
from mosare.deploy.slide_attention import extreme_rows, read_extreme_patches
from mosare.model.factory import ModelDims, build_model
from mosare.reporting.plots.attention import attention_grid, draw_cohort_attention
from mosare.slides.reader import open_slide
from mosare.slides.tiling import tile_slide
from mosare.training.final_models import (
    FinalModelFacts,
    InputFacts,
    ModelMismatchError,
    load_final_model,
    save_final_model,
)
from mosare.training.fold_inputs import Normalisation

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CLASSES = ["A", "B"]
WSI_DIM = 16
TILING = {"target_mpp": 0.5, "patch_px": 32, "min_tissue_fraction": 0.5}  # read at level 1 (2x)
# Patient -> slides: two slides, one slide, a slide with no tissue (zero patches), no slide at all, an empty slide
# listed before a slide with patches.
PATIENTS = {"P0": ("P0-a", "P0-b"), "P1": ("P1-a",), "P2": ("P2-blank",), "P3": (), "P4": ("P4-blank", "P4-a")}


def save_untrained_mosare(directory, seed: int = 0) -> None:
    """A MoSARe final model as training saves it, with random weights made peaky so attention is far from uniform."""
    torch.manual_seed(seed)
    dims = ModelDims(wsi_dim=WSI_DIM, rna_genes=0, text_dim=0, local_tokens=4, hidden=8)
    hparams = {"prototypes_per_class": 2, "patches_per_step": 8, "val_fraction": 0.25}
    model = build_model("mosare", dims, len(CLASSES), hparams)
    with torch.no_grad():
        model.wsi_global.attention_score.weight.mul_(40.0)
    rng = np.random.default_rng(seed)
    unit = (np.zeros(4, np.float32), np.ones(4, np.float32))
    stats = Normalisation(
        patches=(rng.normal(size=WSI_DIM).astype(np.float32), rng.uniform(0.5, 2, WSI_DIM).astype(np.float32)),
        wsi_local=(np.zeros(WSI_DIM, np.float32), np.ones(WSI_DIM, np.float32)),
        rna_genes=np.zeros(0, np.int64), rna=unit, text_global=unit, text_local=unit,
    )  # fmt: skip
    inputs = InputFacts("enc", "ab" * 32, WSI_DIM, 4, None, 0, (), (), None)
    facts = FinalModelFacts(
        cohort="source", model="mosare", classes=tuple(CLASSES), inputs=inputs, dims=dataclasses.asdict(dims),
        hparams=hparams, selected_epoch=1, rna_genes=(), class_prior=(0.5, 0.5), package_version=mosare.__version__,
    )  # fmt: skip
    save_final_model(directory, model.state_dict(), stats, facts, "card")


def write_features(store, coords: np.ndarray, seed: int, encoder: str = "enc") -> np.ndarray:
    """A feature store for ``coords`` (rows shuffled, as a store with failed patches dropped need not follow the patch
    store's order); returns its features."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(coords))
    features = rng.normal(size=(len(coords), WSI_DIM)).astype(np.float16)
    write_store(
        store, {"features": features, "coords": coords[order]}, {"encoder": encoder, "weights_sha256": "ab" * 32}
    )
    return features


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("attention")
    (root / "slides").mkdir()
    for k, slides in enumerate(PATIENTS.values()):
        for j, slide_id in enumerate(slides):
            blobs = [] if slide_id.endswith("blank") else [(0.4, 0.45, 0.3, 0.25), (0.75, 0.7, 0.12, 0.15)]
            image = tissue_image(768, 640, blobs=blobs, seed=10 * k + j)
            path = write_slide(root / "slides" / f"{slide_id}.svs", image, mpp=0.25, downsamples=(1, 2, 4))
            result = tile_slide(path, root / "patches" / f"{slide_id}.zarr", slide_id=slide_id, tiling=TILING)
            write_features(root / "features" / f"{slide_id}.zarr", result.coords, seed=10 * k + j)
    present = np.array([[any(not s.endswith("blank") for s in slides), False, False] for slides in PATIENTS.values()])
    table = CohortTable(tuple(PATIENTS), ("A", "B", "A", "", "B"), tuple(PATIENTS.values()), present)
    table.write(root / "cohort.tsv")
    save_untrained_mosare(root / "models" / "mosare")
    outputs = {name: root / "out" / name for name in ("attention", "heatmaps", "montages")}
    slides = write_cohort_attention(
        root / "models", root / "cohort.tsv", root / "features", root / "patches", outputs, CLASSES, "mosare"
    )
    draw_cohort_attention(slides, root / "patches", outputs["heatmaps"], outputs["montages"])
    return root, outputs, {slide.slide_id: slide for slide in slides}


def test_every_slide_gets_a_store_geojson_heatmap_and_montage_and_the_generated_slides_have_patches(cohort):
    root, outputs, slides = cohort
    every_slide = sorted(s for listed in PATIENTS.values() for s in listed)
    assert sorted(slides) == every_slide
    assert sorted(p.name for p in outputs["attention"].iterdir()) == sorted(
        [f"{s}.zarr" for s in every_slide] + [f"{s}.geojson" for s in every_slide]
    )
    for name in ("heatmaps", "montages"):
        assert sorted(p.name for p in outputs[name].iterdir()) == [f"{s}.png" for s in every_slide]
        assert all(p.stat().st_size > 1000 for p in outputs[name].iterdir())
    assert all(slides[s].n_patches >= 10 for s in ("P0-a", "P0-b", "P1-a", "P4-a")), "tiling found too little tissue"
    assert slides["P2-blank"].n_patches == slides["P4-blank"].n_patches == 0


def test_stored_coords_are_the_feature_stores_and_scores_sum_to_one_per_patient(cohort):
    root, outputs, _ = cohort
    totals = {}
    for patient, slides in PATIENTS.items():
        for slide_id in slides:
            store = open_store(outputs["attention"] / f"{slide_id}.zarr")
            features = open_store(root / "features" / f"{slide_id}.zarr")
            np.testing.assert_array_equal(store["coords"][...], features["coords"][...])
            scores = store["scores"][...]
            assert scores.shape == (features["features"].shape[0], 2) and list(store.attrs["score_columns"]) == [
                "attention",
                "attention_rank",
            ]
            assert store.attrs["patient_id"] == patient and store.attrs["model"] == "mosare"
            assert (
                store.attrs["footprint_px"] == open_store(root / "patches" / f"{slide_id}.zarr").attrs["footprint_px"]
            )
            assert np.isclose(store.attrs["patient_share"], scores[:, 0].sum())
            totals[patient] = totals.get(patient, 0.0) + scores[:, 0].sum()
            if len(scores):
                assert scores[:, 1].min() == 0 and scores[:, 1].max() == 1
                assert (np.argsort(scores[:, 0], kind="stable") == np.argsort(scores[:, 1], kind="stable")).all()
    assert np.isclose(totals["P0"], 1) and np.isclose(totals["P1"], 1) and totals["P2"] == 0
    assert np.isclose(totals["P4"], 1), "an empty slide takes no attention from its patient's other slide"
    shares = [open_store(outputs["attention"] / f"{s}.zarr").attrs["patient_share"] for s in PATIENTS["P0"]]
    assert 0 < min(shares) and max(shares) < 1, "a two-slide patient's attention is shared between its slides"


def test_attention_is_the_full_models_own_over_the_patients_pooled_patches(cohort):
    """Against MoSARe's forward pass, which returns its patch attention, over all of P0's patches in one bag."""
    root, _, slides = cohort
    loaded = load_final_model(root / "models" / "mosare")
    features = np.concatenate([open_store(root / "features" / f"{s}.zarr")["features"][...] for s in PATIENTS["P0"]])
    mean, std = loaded.normalisation.patches
    z = torch.from_numpy(((features.astype(np.float32) - mean) / std)[None])
    batch = {
        "wsi_patches": z, "wsi_patch_mask": torch.ones(z.shape[:2], dtype=torch.bool),
        "wsi_local": torch.zeros(1, 4, WSI_DIM), "rna": torch.zeros(1, 0), "text_global": torch.zeros(1, 0),
        "text_local": torch.zeros(1, 4, 0), "present": torch.tensor([[True, False, False]]), "label": torch.tensor([0]),
    }  # fmt: skip
    with torch.no_grad():
        expected = loaded.model(batch)["wsi_attention"][0].double().numpy()
    ours = np.concatenate([slides[s].attention for s in PATIENTS["P0"]])
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-9)
    assert ours.max() > 5 / len(ours), "the planted peaky model attends unevenly"


def test_scores_follow_the_coordinates_when_rows_are_shuffled_or_a_patch_is_copied(cohort, tmp_path):
    """Shuffling a feature store's rows moves each score with its coordinate; copying the top patch's features to
    another coordinate gives that coordinate the top score."""
    root, _, slides = cohort
    original = slides["P1-a"]
    store = open_store(root / "features" / "P1-a.zarr")
    features, coords = store["features"][...], store["coords"][...]
    order = np.random.default_rng(5).permutation(len(coords))
    top, target = int(np.argmax(original.attention)), int(np.argmin(original.attention))
    planted = features[order].copy()
    planted[np.flatnonzero(order == target)[0]] = features[top]
    features_dir = tmp_path / "features"
    write_store(features_dir / "P1-a.zarr", {"features": planted, "coords": coords[order]}, dict(store.attrs))
    table = CohortTable(("P1",), ("B",), (("P1-a",),), np.array([[True, False, False]]))
    loaded = load_final_model(root / "models" / "mosare")
    (shuffled,) = cohort_attention(loaded, root / "models" / "mosare", table, features_dir, root / "patches")
    np.testing.assert_array_equal(shuffled.coords, coords[order])
    at = {tuple(xy): w for xy, w in zip(shuffled.coords.tolist(), shuffled.attention)}
    top_xy, target_xy = tuple(coords[top].tolist()), tuple(coords[target].tolist())
    assert np.isclose(at[target_xy], at[top_xy]) and at[top_xy] == max(at.values())
    others = [xy for xy in at if xy != target_xy]
    before = {tuple(xy): w for xy, w in zip(coords.tolist(), original.attention)}
    ratios = np.array([at[xy] / before[xy] for xy in others])
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-5)  # one softmax normaliser changed, nothing moved


def test_geojson_polygons_are_the_patch_footprints_of_the_top_patches(cohort):
    root, outputs, slides = cohort
    for slide_id, slide in slides.items():
        collection = json.loads((outputs["attention"] / f"{slide_id}.geojson").read_text())
        footprint = open_store(root / "patches" / f"{slide_id}.zarr").attrs["footprint_px"]
        assert collection["type"] == "FeatureCollection" and len(collection["features"]) == min(100, slide.n_patches)
        stored = open_store(outputs["attention"] / f"{slide_id}.zarr")["scores"][...]
        previous = np.inf
        for feature in collection["features"]:
            row = feature["properties"]["patch_row"]
            x, y = (int(v) for v in slide.coords[row])
            ring = feature["geometry"]["coordinates"][0]
            assert ring == [[x, y], [x + footprint, y], [x + footprint, y + footprint], [x, y + footprint], [x, y]]
            assert feature["properties"]["attention"] == stored[row, 0]
            assert feature["properties"]["measurements"]["attention_rank"] == stored[row, 1]
            assert feature["properties"]["attention"] <= previous
            previous = feature["properties"]["attention"]
        if slide.n_patches:
            assert collection["features"][0]["properties"]["patch_row"] == int(np.argmax(slide.attention))


def test_heatmap_grid_puts_each_patch_rank_in_its_cell(cohort):
    _, _, slides = cohort
    for slide in slides.values():
        grid, shape = attention_grid(slide)
        if not slide.n_patches:
            assert np.isnan(grid).all()
            continue
        columns, rows = (slide.coords // slide.footprint_px).T
        np.testing.assert_array_equal(grid[rows, columns], slide.rank)
        assert np.isnan(grid).sum() == grid.size - slide.n_patches, "one cell per patch, the rest empty"


def test_montage_shows_the_extreme_patches_read_from_the_slide(cohort):
    root, _, slides = cohort
    slide = slides["P0-b"]
    patches = read_extreme_patches(slide, root / "patches" / "P0-b.zarr")
    order = np.argsort(slide.attention)
    assert list(patches.top_rows) == list(order[::-1][:8]) and list(patches.bottom_rows) == list(order[:8])
    attrs = open_store(root / "patches" / "P0-b.zarr").attrs
    with open_slide(root / "slides" / "P0-b.svs") as wsi:
        x, y = slide.coords[patches.top_rows[0]]
        expected = wsi.read_patch(int(x), int(y), attrs["read_level"], attrs["read_px"], attrs["patch_px"])
    np.testing.assert_array_equal(patches.top_images[0], expected)
    assert patches.top_images[0].shape == (attrs["patch_px"], attrs["patch_px"], 3)
    empty = read_extreme_patches(slides["P2-blank"], root / "patches" / "P2-blank.zarr")
    assert empty.top_images == [] and empty.bottom_images == []


@pytest.mark.parametrize("n", [0, 1, 5, 15, 16, 40])
def test_extreme_rows_never_repeat_a_patch(n):
    weights = np.random.default_rng(n).random(n)
    top, bottom = extreme_rows(weights)
    assert len(top) == min(n, 8) and len(bottom) == min(max(n - 8, 0), 8)
    assert not set(top) & set(bottom)
    if n:
        assert weights[top[0]] == weights.max() and (n < 9 or weights[bottom[0]] == weights.min())


def test_features_from_another_encoder_and_a_missing_model_are_refused(cohort, tmp_path):
    root, _, _ = cohort
    store = open_store(root / "features" / "P1-a.zarr")
    write_features(tmp_path / "features" / "P1-a.zarr", store["coords"][...], seed=1, encoder="uni")
    table = CohortTable(("P1",), ("B",), (("P1-a",),), np.array([[True, False, False]]))
    loaded = load_final_model(root / "models" / "mosare")
    with pytest.raises(ModelMismatchError, match=r"P1-a.zarr:\n  - encoder: model 'enc', data 'uni'"):
        list(cohort_attention(loaded, root / "models" / "mosare", table, tmp_path / "features", root / "patches"))
    with pytest.raises(AttentionError, match=r"no final model 'abmil' .*found: \['mosare'\]"):
        write_cohort_attention(
            root / "models", root / "cohort.tsv", root / "features", root / "patches", {}, CLASSES, "abmil"
        )


def test_drawing_processes_write_the_same_pictures_to_the_same_slides(cohort, tmp_path):
    root, outputs, _ = cohort
    table = CohortTable(("P0",), ("A",), (PATIENTS["P0"],), np.array([[True, False, False]]))
    table.write(tmp_path / "cohort.tsv")
    parallel = {name: tmp_path / name for name in ("attention", "heatmaps", "montages")}
    slides = write_cohort_attention(
        root / "models", tmp_path / "cohort.tsv", root / "features", root / "patches", parallel, CLASSES, "mosare"
    )
    draw_cohort_attention(slides, root / "patches", parallel["heatmaps"], parallel["montages"], workers=2)
    for name in ("heatmaps", "montages"):
        for slide_id in PATIENTS["P0"]:
            assert (parallel[name] / f"{slide_id}.png").read_bytes() == (outputs[name] / f"{slide_id}.png").read_bytes()


# ---- The attention pictures the report embeds (mosare.reporting.attention_report) -----------------------------------------

# The mapped model (mosare) gets P0 and P4 wrong, P1 and P2 right; P3 is unlabelled. abmil's rows must not count.
PREDICTIONS = [
    ("mosare", "P0", "A", "B"),
    ("mosare", "P1", "B", "B"),
    ("mosare", "P2", "A", "A"),
    ("mosare", "P3", "", "B"),
    ("mosare", "P4", "B", "A"),
    ("abmil", "P1", "B", "A"),
    ("abmil", "P2", "A", "B"),
]
MISCLASSIFIED_SLIDES = ["P0-a", "P0-b", "P4-blank", "P4-a"]  # cohort order


def write_predictions(path, rows=PREDICTIONS):
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["model", "patient_id", "label", "predicted"]).assign(prob_A=0.5, prob_B=0.5)
    frame.to_csv(path, sep="\t", index=False)
    return path


def test_misclassified_patients_are_the_labelled_ones_the_mapped_model_got_wrong(tmp_path):
    from mosare.reporting.attention_report import misclassified_patients

    predictions = write_predictions(tmp_path / "predictions.tsv")
    assert misclassified_patients(predictions, "mosare") == {"P0", "P4"}
    assert misclassified_patients(predictions, "abmil") == {"P1", "P2"}
    with pytest.raises(ValueError, match=r"predictions\.tsv holds no predictions of model 'late_fusion'.*abmil"):
        misclassified_patients(predictions, "late_fusion")


@pytest.mark.parametrize("cap", [0, 3, 5, 50])
def test_report_slides_are_misclassified_patients_slides_first_then_others_up_to_the_cap(cohort, tmp_path, cap):
    from mosare.reporting.attention_report import select_attention_slides

    root, _, slides = cohort
    predictions = write_predictions(tmp_path / "predictions.tsv")
    selection = select_attention_slides(root / "cohort.tsv", predictions, "mosare", cap)

    assert selection.flagged == MISCLASSIFIED_SLIDES[:cap]
    assert selection.flagged_left_out == MISCLASSIFIED_SLIDES[cap:]
    others = ["P1-a", "P2-blank"]
    assert len(selection.unflagged) == min(max(cap - len(MISCLASSIFIED_SLIDES), 0), len(others))
    assert set(selection.unflagged) <= set(others)
    assert len(selection.flagged) + len(selection.unflagged) == min(cap, len(slides))


def test_an_unlabelled_target_has_no_misclassified_slides_and_is_sampled_across_the_cohort(cohort, tmp_path):
    from mosare.reporting.attention_report import select_attention_slides

    root, _, _ = cohort
    unlabelled = [("mosare", patient, "", "A") for patient in PATIENTS]
    predictions = write_predictions(tmp_path / "p.tsv", unlabelled)
    selection = select_attention_slides(root / "cohort.tsv", predictions, "mosare", 2)
    assert selection.flagged == [] and selection.unflagged == ["P0-b", "P4-blank"]  # middles of 2 stretches of 6


def test_report_copies_are_capped_jpegs_and_every_full_size_picture_stays(cohort, tmp_path):
    import hashlib

    from PIL import Image

    from mosare.reporting.attention_report import select_attention_slides, write_attention_report_pictures
    from mosare.reporting.slide_qc_report import REPORT_PICTURE_MAX_SIDE

    root, outputs, slides = cohort

    def full_size() -> dict:
        return {
            (name, p.name): hashlib.sha256(p.read_bytes()).hexdigest()
            for name in ("heatmaps", "montages")
            for p in outputs[name].iterdir()
        }

    before = full_size()
    selection = select_attention_slides(root / "cohort.tsv", write_predictions(tmp_path / "p.tsv"), "mosare", 5)
    for name in ("heatmaps", "montages"):
        written = write_attention_report_pictures(selection, outputs[name], tmp_path / "report" / name)
        assert sorted(str(p.relative_to(tmp_path / "report" / name)) for p in written) == sorted(
            [f"misclassified/{s}.jpg" for s in MISCLASSIFIED_SLIDES] + [f"other/{s}.jpg" for s in selection.unflagged]
        )
        assert sorted(p.name for p in (tmp_path / "report" / name).rglob("*.jpg")) == sorted(p.name for p in written)
        for copy in written:
            with Image.open(copy) as image:
                assert image.format == "JPEG" and max(image.size) <= REPORT_PICTURE_MAX_SIDE
    assert full_size() == before and len(before) == 2 * len(slides)

    with pytest.raises(FileNotFoundError, match=r"lacks the attention pictures of slide\(s\) P0-a.*deploy_attention"):
        write_attention_report_pictures(selection, tmp_path / "empty", tmp_path / "report2")
