"""Small synthetic cohorts in the real store formats, with a known class signal per modality (training tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from mosare.cohort.data import CohortInputs
from mosare.core.stores import write_store
from mosare.features.gmm import GMMResult
from mosare.features.gmm_store import SlideGMMStore


def write_synthetic_cohort(
    root: Path,
    n_patients: int = 40,
    classes: tuple[str, ...] = ("A", "B"),
    signal: tuple[float, float, float] = (1.0, 1.0, 1.0),
    missing_rna: float = 0.1,
    missing_text: float = 0.1,
    two_slide_fraction: float = 0.2,
    wsi_dim: int = 16,
    genes: int = 24,
    text_dim: int = 12,
    components: int = 4,
    patches: tuple[int, int] = (12, 30),
    seed: int = 0,
    labels: np.ndarray | None = None,
    complementary: bool = False,
    with_rna: bool = True,
    with_text: bool = True,
    without_wsi: tuple[int, ...] = (),
) -> CohortInputs:
    """Write cohort.tsv and feature / GMM / text / RNA stores under ``root``.

    Each modality carries the class as a mean shift of size ``signal[m]`` along a few dimensions, plus unit noise.
    Labels alternate over patients unless given. Some patients lack RNA or text, some have two slides.
    ``complementary``: patient i carries the signal in modality i % 3 only (the others are noise there), so each
    modality alone classifies a third of the patients and only their combination classifies them all.
    ``with_rna=False`` / ``with_text=False``: the cohort has no RNA matrix / no reports at all, stored as the RNA and
    text stages store it (RNA: zero genes; text: zero embeddings), every patient's flag False; the other modalities'
    values are those of the same seed with the modality. ``without_wsi``: indices of patients with no slide (their
    ``slide_ids`` empty and ``has_wsi`` False, as the cohort stage writes a patient whose slides are all missing).
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n_patients) % len(classes) if labels is None else np.asarray(labels)
    direction = np.where(labels == 0, -1.0, 1.0) if len(classes) == 2 else labels.astype(float) - labels.mean()
    ids = [f"P{i:03d}" for i in range(n_patients)]
    has_rna = rng.random(n_patients) >= missing_rna
    has_text = rng.random(n_patients) >= missing_text
    has_rna &= with_rna
    has_text &= with_text
    rows, rna, text_global, text_local = [], [], [], []
    features_dir, gmm_dir = root / "features" / "enc", root / "gmm" / "enc"
    for i, pid in enumerate(ids):
        strength = [signal[m] * (not complementary or i % 3 == m) for m in range(3)]
        n_slides = 2 if rng.random() < two_slide_fraction else 1
        slides = [f"{pid}-S{k}" for k in range(n_slides)] if i not in without_wsi else []
        for slide in slides:
            n = int(rng.integers(*patches))
            shift = np.zeros(wsi_dim)
            shift[:4] = strength[0] * direction[i]
            x = (
                rng.normal(size=(n, wsi_dim)) + shift + rng.normal(size=wsi_dim)
            )  # slide-level noise, like RNA's and text's
            write_store(
                features_dir / f"{slide}.zarr", {"features": x.astype(np.float16), "coords": np.zeros((n, 2), np.int64)}
            )
            weights = np.full(components, 1.0 / components, dtype=np.float32)
            means = np.stack([x[k::components].mean(0) for k in range(components)]).astype(np.float32)
            tokens = GMMResult(weights, means, np.ones_like(means), 0.0, 1, True, components, n, True, n)
            SlideGMMStore(slide, "enc", 0, tokens).write(gmm_dir / f"{slide}.zarr")
        gene_shift = np.zeros(genes)
        gene_shift[:4] = strength[1] * direction[i]
        rna.append(rng.normal(size=genes) + gene_shift)
        text_shift = np.zeros(text_dim)
        text_shift[:4] = strength[2] * direction[i]
        text_global.append(rng.normal(size=text_dim) + text_shift)
        text_local.append(rng.normal(size=(components, text_dim)) + text_shift)
        rows.append(
            {
                "patient_id": pid,
                "label": classes[labels[i]],
                "slide_ids": ",".join(slides),
                "has_wsi": bool(slides),
                "has_rna": bool(has_rna[i]),
                "has_text": bool(has_text[i]),
            }
        )
    cohort_table = root / "cohort.tsv"
    pd.DataFrame(rows).to_csv(cohort_table, sep="\t", index=False)
    text_store, rna_store = root / "text.zarr", root / "rna.zarr"
    write_store(
        text_store,
        {
            "patient_ids": np.array(ids),
            "global": np.where(has_text[:, None], np.array(text_global), 0).astype(np.float32),
            "local": np.where(has_text[:, None, None], np.array(text_local), 0).astype(np.float32),
            "present": has_text,
            "n_sentences": has_text.astype(np.int32),
        },
    )
    stored_genes = genes if with_rna else 0
    write_store(
        rna_store,
        {
            "patient_ids": np.array(ids),
            "gene_ids": np.array([f"G{g}" for g in range(stored_genes)], dtype=str),
            "values": np.where(has_rna[:, None], np.array(rna), 0).astype(np.float32)[:, :stored_genes],
            "present": has_rna,
        },
    )
    return CohortInputs(cohort_table, features_dir, gmm_dir, text_store, rna_store)


class StandInModel(nn.Module):
    """A linear model over pooled inputs with the model package's interface (tests of the protocol only)."""

    MODALITIES = {"abmil": (0,), "rna_mlp": (1,), "report_mlp": (2,)}

    def __init__(self, name: str, dims: tuple[int, int, int], n_classes: int) -> None:
        super().__init__()
        self.uses = self.MODALITIES.get(name, (0, 1, 2))
        self.heads = nn.ModuleList(nn.Linear(d, n_classes) for d in dims)
        self.calls: list[tuple[bool, torch.Tensor]] = []

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.calls.append((self.training, batch["present"].clone()))
        mask = batch["wsi_patch_mask"].float()
        pooled = (batch["wsi_patches"] * mask[..., None]).sum(1) / mask.sum(1).clamp(min=1)[:, None]
        inputs = (pooled, batch["rna"], batch["text_global"])
        present = batch["present"].float()
        logits = sum(self.heads[m](inputs[m]) * present[:, m : m + 1] for m in self.uses)
        return {"logits": logits}

    def compute_loss(self, batch, outputs, epoch):
        loss = F.cross_entropy(outputs["logits"], batch["label"])
        return loss, {"ce": float(loss.detach())}


def stand_in_factory(paths_dims: tuple[int, int, int], built: list | None = None):
    """``build_model``-shaped factory of :class:`StandInModel`; appends each model to ``built`` when given."""

    def build(name, dims, n_classes, hparams):
        model = StandInModel(name, paths_dims, n_classes)
        if built is not None:
            built.append((name, model))
        return model

    return build


def small_train_config(**overrides) -> dict:
    """A validated-looking ``train`` config section small enough for a test to cross-validate in seconds."""
    config = {
        "folds": 3,
        "epochs": 3,
        "batch_size": 8,
        "lr": 1e-2,
        "weight_decay": 0.0,
        "warmup_epochs": 1,
        "contrastive_warmup_epochs": 1,
        "missing_rates": [0.5],
        "val_fraction": 0.25,
        "patience": None,
        "patches_per_step": 8,
        "models": ["late_fusion", "abmil", "rna_mlp"],
        "seed": 0,
    }
    config.update(overrides)
    return config
