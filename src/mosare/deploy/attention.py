"""Where the model looked: a saved model's gated-attention (ABMIL) weights over every patch of every slide of a
cohort, stored per slide with the patches' level-0 coordinates, exported as GeoJSON, and drawn.

A patient's attention is the softmax over all of its patches at once (a patient with several slides: their
patches pooled, as the model pools them), computed with the saved final model and its saved normalisation, then
split back per slide: a slide's weights sum to its share of the patient's attention and a patient's slides sum to
1. Training and cross-validation show the model a sampled subset of ``train.patches_per_step`` patches; here every
patch is scored. Because a weight's size depends on how many patches share the softmax, each store also holds a
rank-normalised copy (0 the slide's lowest patch, 1 its highest), which is what the heatmap colours.

Per slide, under the output folders:

- ``attention/{slide}.zarr`` (:class:`mosare.deploy.attention_store.AttentionStore`): each patch's level-0
  top-left, rows as in the slide's feature store, its attention weight and rank-normalised copy; attrs name the
  model, the patient, the patch footprint and the slide's share of the patient's attention.
- ``attention/{slide}.geojson``: the ``GEOJSON_TOP_PATCHES`` highest-attention patches as polygons of their level-0
  footprint, with the scores as properties and QuPath measurements (File > Import objects from file in QuPath).
- ``heatmaps/{slide}.png``, ``montages/{slide}.png``: see :mod:`mosare.reporting.plots.attention`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mosare.cohort.table import CohortTable
from mosare.core.atomic_files import atomic_file
from mosare.deploy.attention_store import AttentionStore
from mosare.deploy.slide_attention import SlideAttention
from mosare.features.feature_store import FeatureStore
from mosare.model.abmil import GatedAttentionMIL
from mosare.slides.patch_store import PatchStore
from mosare.training.final_models import LoadedModel, ModelMismatchError, load_final_model, mismatches
from mosare.training.fold_inputs import Normalisation

log = logging.getLogger(__name__)

GEOJSON_TOP_PATCHES = 100


class AttentionError(ValueError):
    """Attention cannot be mapped with this model or these inputs; the message names the file and the fix."""


def attention_module(model: torch.nn.Module, model_dir: str | Path = "") -> GatedAttentionMIL:
    """The model's one gated-attention MIL module; an error when it has none (a model trained without slides)."""
    found = [module for module in model.modules() if isinstance(module, GatedAttentionMIL)]
    if len(found) != 1:
        raise AttentionError(
            f"model {model_dir} has {len(found)} patch-attention modules; patch attention needs a model trained on a "
            "cohort with slides (mosare or abmil)"
        )
    return found[0]


def patch_attention(model: torch.nn.Module, normalisation: Normalisation, features: np.ndarray) -> np.ndarray:
    """(P,) the model's attention weights over all P patches (raw features, z-scored with the saved statistics);
    they sum to 1. No patch: an empty array."""
    if len(features) == 0:
        return np.zeros(0)
    mean, std = normalisation.patches
    z = (np.asarray(features, dtype=np.float32) - mean) / std
    abmil = attention_module(model)
    with torch.no_grad():
        _, weights = abmil(torch.from_numpy(z)[None], torch.ones(1, len(z), dtype=torch.bool))
    return weights[0].double().numpy()


def patient_attention(
    model: torch.nn.Module, normalisation: Normalisation, slide_features: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Each slide's part of the attention over the patient's pooled patches (slides in the order given)."""
    counts = [len(features) for features in slide_features]
    pooled = np.concatenate(list(slide_features)) if sum(counts) else np.zeros((0, 0), np.float32)
    return np.split(patch_attention(model, normalisation, pooled), np.cumsum(counts)[:-1])


def _check_features(loaded: LoadedModel, model_dir: Path, feature_store: Path, store: FeatureStore) -> None:
    """Refuse slide features made otherwise than the model's (another encoder, checkpoint or dimension)."""
    saved = loaded.facts.inputs
    given = dataclasses.replace(
        saved,
        encoder=store.record.encoder,
        encoder_weights_sha256=store.record.weights_sha256,
        wsi_dim=store.dim if store.n_patches else 0,
    )
    problems = mismatches(loaded.facts, given)
    if problems:
        raise ModelMismatchError(
            f"model {model_dir} does not fit the slide features in {feature_store}:\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )


def cohort_attention(
    loaded: LoadedModel, model_dir: Path, table: CohortTable, features_dir: Path, patches_dir: Path
) -> Iterator[SlideAttention]:
    """Every slide's attention, patient after patient (a slide without patches: empty arrays)."""
    for patient_id, slides in zip(table.patient_ids, table.slide_ids):
        features, coords, footprints = [], [], []
        for slide_id in slides:
            store_path = features_dir / f"{slide_id}.zarr"
            store = FeatureStore.read(store_path)  # rows and coordinates that do not align: FeatureStoreError
            slide_features, slide_coords = store.features, store.coords
            if len(slide_features):
                _check_features(loaded, model_dir, store_path, store)
            features.append(slide_features)
            coords.append(slide_coords)
            footprints.append(PatchStore.read(patches_dir / f"{slide_id}.zarr").footprint_px)
        weights = patient_attention(loaded.model, loaded.normalisation, features) if slides else []
        for slide_id, slide_coords, slide_weights, footprint in zip(slides, coords, weights, footprints):
            yield SlideAttention(str(slide_id), str(patient_id), slide_coords, slide_weights, footprint)


def top_patch_geojson(attention: SlideAttention, top: int = GEOJSON_TOP_PATCHES) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the ``top`` highest-attention patches, highest first: each a closed polygon of
    its level-0 footprint, with its scores as properties and as QuPath measurements."""
    order = np.argsort(-attention.attention, kind="stable")[:top]
    ranks, size = attention.rank, attention.footprint_px
    features = []
    for place, row in enumerate(order, start=1):
        x, y = (int(v) for v in attention.coords[row])
        scores = {"attention": float(attention.attention[row]), "attention_rank": float(ranks[row])}
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]],
                },
                "properties": {
                    "objectType": "detection",
                    "name": f"attention top {place}",
                    "classification": {"name": "High attention", "color": [255, 64, 0]},
                    "slide_id": attention.slide_id,
                    "patch_row": int(row),
                    **scores,
                    "measurements": scores,
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def write_geojson(collection: Mapping[str, Any], path: str | Path) -> None:
    with atomic_file(Path(path)) as tmp:
        tmp.write_text(json.dumps(collection), encoding="utf-8")


def write_cohort_attention(
    models_dir: str | Path,
    cohort_table: str | Path,
    features_dir: str | Path,
    patches_dir: str | Path,
    outputs: Mapping[str, str | Path],
    classes: Sequence[str],
    model_name: str,
) -> list[SlideAttention]:
    """Map ``model_name``'s patch attention over every slide of the cohort in ``cohort_table``; write, per slide,
    ``outputs["attention"]/{slide}.zarr`` and ``.geojson``. Returns the slides' attention, which
    ``mosare.reporting.plots.attention.draw_cohort_attention`` draws."""
    model_dir = Path(models_dir) / model_name
    if not (model_dir / "model.json").exists():
        available = sorted(p.parent.name for p in Path(models_dir).glob("*/model.json"))
        raise AttentionError(
            f"no final model {model_name!r} in {models_dir} (found: {available}); patch "
            f"attention maps the {model_name} model: add it to train.models of the source cohort"
        )
    loaded = load_final_model(model_dir)
    attention_module(loaded.model, model_dir)
    table = CohortTable.read(Path(cohort_table), [*classes, ""] if classes else None)  # none: a survival cohort
    folders = {"attention": Path(outputs["attention"])}
    folders["attention"].mkdir(parents=True, exist_ok=True)
    slides = []
    for slide in cohort_attention(loaded, model_dir, table, Path(features_dir), Path(patches_dir)):
        store = AttentionStore(slide, model=model_name, model_dir=str(model_dir), source_cohort=loaded.facts.cohort)
        store.write(folders["attention"] / f"{slide.slide_id}.zarr")
        write_geojson(top_patch_geojson(slide), folders["attention"] / f"{slide.slide_id}.geojson")
        log.info(
            "slide %s (patient %s): %d patches, %.3f of the patient's attention", slide.slide_id, slide.patient_id,
            slide.n_patches, slide.patient_share,
        )  # fmt: skip
        slides.append(slide)
    return slides
