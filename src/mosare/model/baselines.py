"""Baselines on the same batch format: ABMIL (WSI only), RNA MLP, report MLP, late fusion of global features."""

from __future__ import annotations

import abc

import torch
import torch.nn.functional as F
from torch import nn

from mosare.model.abmil import GatedAttentionMIL
from mosare.model.common import MODALITIES, ModelDims, ModelHParams, TokenProjection, zero_missing
from mosare.model.rna import RNAGlobalMLP

Batch = dict[str, torch.Tensor]


def real_patches(batch: Batch) -> torch.Tensor:
    """The patch mask, all False for patients whose slide is missing."""
    return batch["wsi_patch_mask"].bool() & batch["present"][:, :1].bool()


class SupervisedBaseline(nn.Module, abc.ABC):
    """Plain cross-entropy on `logits`; subclasses define `features(batch) -> (B, F)` and `self.classifier`."""

    classifier: nn.Module

    @abc.abstractmethod
    def features(self, batch: Batch) -> torch.Tensor:
        """(B, F) features of the modality (or modalities) this baseline sees."""

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        features = self.features(batch)
        return {"logits": self.classifier(features), "features": features}

    def compute_loss(
        self, batch: Batch, outputs: dict[str, torch.Tensor], epoch: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        loss = F.cross_entropy(outputs["logits"].float(), batch["label"].long())
        return loss, {"ce": float(loss.detach()), "total": float(loss.detach())}


class ABMILBaseline(SupervisedBaseline):
    """WSI only: gated attention MIL over the patches; a patient without a slide gets a zero feature."""

    def __init__(self, dims: ModelDims, n_classes: int, hparams: ModelHParams) -> None:
        super().__init__()
        self.hidden_dim = dims.hidden
        self.encoder = GatedAttentionMIL(dims.wsi_dim, dims.hidden, hparams.abmil_attention_hidden, hparams.dropout)
        self.classifier = nn.Linear(dims.hidden, n_classes)

    def features(self, batch: Batch) -> torch.Tensor:
        slide, _ = self.encoder(batch["wsi_patches"], real_patches(batch))
        return zero_missing(slide, batch["present"][:, 0].bool())


def require_modality(dims: ModelDims, modality: int, model: str) -> None:
    """A single-modality baseline cannot be built for a cohort that lacks its modality altogether."""
    if not dims.in_cohort[modality]:
        raise ValueError(
            f"{model} reads only {MODALITIES[modality]}, which this cohort lacks altogether (size 0 in ModelDims); "
            "leave it out of train.models"
        )


class RNABaseline(SupervisedBaseline):
    """RNA only: the global RNA MLP (genes -> h -> h -> D) and a linear classifier."""

    def __init__(self, dims: ModelDims, n_classes: int, hparams: ModelHParams) -> None:
        super().__init__()
        require_modality(dims, 1, "rna_mlp")
        self.hidden_dim = dims.hidden
        self.encoder = RNAGlobalMLP(dims.rna_genes, hparams.rna_hidden, dims.hidden)
        self.classifier = nn.Linear(dims.hidden, n_classes)

    def features(self, batch: Batch) -> torch.Tensor:
        return zero_missing(self.encoder(batch["rna"]), batch["present"][:, 1].bool())


class ReportBaseline(SupervisedBaseline):
    """Report only: a two-layer MLP on the whole-report embedding."""

    def __init__(self, dims: ModelDims, n_classes: int, hparams: ModelHParams) -> None:
        super().__init__()
        require_modality(dims, 2, "report_mlp")
        self.hidden_dim = dims.hidden
        self.encoder = TokenProjection(dims.text_dim, dims.hidden, hparams.dropout)
        self.classifier = nn.Linear(dims.hidden, n_classes)

    def features(self, batch: Batch) -> torch.Tensor:
        return zero_missing(self.encoder(batch["text_global"]), batch["present"][:, 2].bool())


class LateFusionBaseline(SupervisedBaseline):
    """The three global encoders, missing modalities zero-filled, concatenated, one linear classifier.

    A modality the cohort lacks altogether (size 0 in `ModelDims`) has no encoder; its slot holds zeros."""

    def __init__(self, dims: ModelDims, n_classes: int, hparams: ModelHParams) -> None:
        super().__init__()
        self.hidden_dim = dims.hidden
        self.wsi = GatedAttentionMIL(dims.wsi_dim, dims.hidden, hparams.abmil_attention_hidden, hparams.dropout)
        self.rna = RNAGlobalMLP(dims.rna_genes, hparams.rna_hidden, dims.hidden) if dims.rna_genes else None
        self.report = TokenProjection(dims.text_dim, dims.hidden, hparams.dropout) if dims.text_dim else None
        self.classifier = nn.Linear(3 * dims.hidden, n_classes)

    def features(self, batch: Batch) -> torch.Tensor:
        slide, _ = self.wsi(batch["wsi_patches"], real_patches(batch))
        rna = self.rna(batch["rna"]) if self.rna is not None else torch.zeros_like(slide)
        report = self.report(batch["text_global"]) if self.report is not None else torch.zeros_like(slide)
        stacked = torch.stack([slide, rna, report], dim=1)
        return zero_missing(stacked, batch["present"].bool()).flatten(1)
