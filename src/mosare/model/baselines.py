"""Baselines on the same batch format: one single-modality baseline (ABMIL on slides, RNA MLP, report MLP; see
``mosare.model.specs``) and late fusion of the global features."""

from __future__ import annotations

import abc
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mosare.core.modalities import MODALITIES
from mosare.model.abmil import GatedAttentionMIL
from mosare.model.common import ModelDims, ModelHParams, TokenProjection, zero_missing
from mosare.model.rna_encoders import RNAGlobalMLP

Batch = dict[str, torch.Tensor]


def real_patches(batch: Batch) -> torch.Tensor:
    """The patch mask, all False for patients whose slide is missing."""
    return batch["wsi_patch_mask"].bool() & batch["present"][:, :1].bool()


class SupervisedBaseline(nn.Module, abc.ABC):
    """Plain cross-entropy on `logits`; subclasses define `features(batch) -> (B, F)` and `self.classifier`."""

    classifier: nn.Module
    survival: Any = None  # a SurvivalSetup on a survival cohort: `classifier` is then its SurvivalHead

    @abc.abstractmethod
    def features(self, batch: Batch) -> torch.Tensor:
        """(B, F) features of the modality (or modalities) this baseline sees."""

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        features = self.features(batch)
        return {"logits": self.classifier(features), "features": features}

    def compute_loss(
        self, batch: Batch, outputs: dict[str, torch.Tensor], epoch: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if self.survival is not None:  # the survival head's loss (hazard NLL or Cox), over the patients it sees
            head = self.classifier
            loss = head.loss(outputs["logits"], batch["time"], batch["event"])  # type: ignore[operator]
            return loss, {"survival": float(loss.detach()), "total": float(loss.detach())}
        loss = F.cross_entropy(outputs["logits"].float(), batch["label"].long())
        return loss, {"ce": float(loss.detach()), "total": float(loss.detach())}


def require_modality(dims: ModelDims, modality: int) -> None:
    """A single-modality baseline cannot be built for a cohort that lacks its modality altogether."""
    if not dims.in_cohort[modality]:
        raise ValueError(
            f"the baseline reads only {MODALITIES[modality]}, which this cohort lacks altogether (size 0 in "
            "ModelDims); leave it out of train.models"
        )


def modality_encoder(modality: int, dims: ModelDims, hparams: ModelHParams) -> nn.Module:
    """The global encoder of one modality: gated attention MIL (slides), the RNA MLP, or a projection of the report
    embedding."""
    if modality == 0:
        return GatedAttentionMIL(dims.wsi_dim, dims.hidden, hparams.abmil_attention_hidden, hparams.dropout)
    if modality == 1:
        return RNAGlobalMLP(dims.rna_genes, hparams.rna_hidden, dims.hidden)
    return TokenProjection(dims.text_dim, dims.hidden, hparams.dropout)


def encode_modality(encoder: nn.Module, modality: int, batch: Batch) -> torch.Tensor:
    """(B, hidden) global feature of ``modality`` from ``batch`` (not yet zeroed for absent patients)."""
    if modality == 0:
        return encoder(batch["wsi_patches"], real_patches(batch))[0]
    return encoder(batch["rna"] if modality == 1 else batch["text_global"])


class SingleModalityBaseline(SupervisedBaseline):
    """One modality only (ABMIL, RNA MLP, report MLP): its global encoder and a linear classifier; a patient without
    the modality gets a zero feature."""

    def __init__(
        self, dims: ModelDims, n_classes: int, hparams: ModelHParams, *, modality: str, survival: Any = None
    ) -> None:
        super().__init__()
        self.modality = MODALITIES.index(modality)
        require_modality(dims, self.modality)
        self.hidden_dim = dims.hidden
        self.encoder = modality_encoder(self.modality, dims, hparams)
        self.survival = survival
        self.classifier = nn.Linear(dims.hidden, n_classes) if survival is None else survival.make_head(dims.hidden)

    def features(self, batch: Batch) -> torch.Tensor:
        feature = encode_modality(self.encoder, self.modality, batch)
        return zero_missing(feature, batch["present"][:, self.modality].bool())


class LateFusionBaseline(SupervisedBaseline):
    """The three global encoders, missing modalities zero-filled, concatenated, one linear classifier.

    A modality the cohort lacks altogether (size 0 in `ModelDims`) has no encoder; its slot holds zeros."""

    def __init__(self, dims: ModelDims, n_classes: int, hparams: ModelHParams, *, survival: Any = None) -> None:
        super().__init__()
        self.hidden_dim = dims.hidden
        self.encoders = nn.ModuleList(
            modality_encoder(m, dims, hparams) if dims.in_cohort[m] else nn.Identity() for m in range(3)
        )
        self.in_cohort = dims.in_cohort
        self.survival = survival
        self.classifier = (
            nn.Linear(3 * dims.hidden, n_classes) if survival is None else survival.make_head(3 * dims.hidden)
        )

    def features(self, batch: Batch) -> torch.Tensor:
        batch_size = batch["present"].shape[0]
        zeros = batch["present"].new_zeros((batch_size, self.hidden_dim), dtype=torch.float32)
        stacked = torch.stack(
            [encode_modality(self.encoders[m], m, batch) if self.in_cohort[m] else zeros for m in range(3)], dim=1
        )
        return zero_missing(stacked, batch["present"].bool()).flatten(1)
