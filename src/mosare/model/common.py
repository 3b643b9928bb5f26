"""Dimensions, hyper-parameters and small tensor helpers shared by every model component."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mosare.core.config_schema import schema_defaults

# Hyper-parameters that are also train config keys take the schema's defaults (the one place a default lives).
TRAIN_DEFAULTS = schema_defaults("train")


@dataclass(frozen=True)
class ModelDims:
    """Input sizes (from the encoders and the RNA matrix) and the common hidden size every feature is projected to.

    A size of 0 says that no patient of the cohort has the modality (no slides, no ``rna:`` matrix, no reports):
    the models build no encoder for it, its features are zeros and it is never reconstructed; the batch's tensors
    for it are not read. At least one modality must exist.
    """

    wsi_dim: int
    rna_genes: int
    text_dim: int
    local_tokens: int  # C, the GMM components (gmm.components)
    hidden: int  # train.hidden

    def __post_init__(self) -> None:
        if min(self.wsi_dim, self.rna_genes, self.text_dim) < 0:
            raise ValueError(f"input sizes must be >= 0, got {self.wsi_dim}, {self.rna_genes}, {self.text_dim}")
        if not any(self.in_cohort):
            raise ValueError("a model needs at least one modality; every input size is 0")

    @property
    def in_cohort(self) -> tuple[bool, bool, bool]:
        """Whether the cohort has each modality at all, in MODALITIES order."""
        return (self.wsi_dim > 0, self.rna_genes > 0, self.text_dim > 0)


@dataclass(frozen=True)
class ModelHParams:
    """Loss weights, schedule and model sizes; defaults are the paper's or its authors' where they give one
    (docs/model.md lists which). The fields that are ``train`` config keys default to the schema's values; the others
    are architecture constants, not configurable."""

    lambda_symcl: float = TRAIN_DEFAULTS["lambda_symcl"]
    lambda_mcl: float = TRAIN_DEFAULTS["lambda_mcl"]
    lambda_rec: float = TRAIN_DEFAULTS["lambda_rec"]
    prototypes_per_class: int = TRAIN_DEFAULTS["prototypes_per_class"]
    contrastive_warmup_epochs: int = TRAIN_DEFAULTS["contrastive_warmup_epochs"]
    rna_hidden: int = TRAIN_DEFAULTS["rna_hidden"]
    heads: int = 4
    experts: int = 5
    expert_top_k: int = 2
    local_top_k: int = 1
    dropout: float = 0.1
    abmil_attention_hidden: int = 256
    rna_token_dim: int = 64
    rna_attention_hidden: int = 16
    symcl_temperature: float = 0.07
    mcl_temperature: float = 0.1
    mcl_momentum: float = 0.999
    mcl_queue_per_class: int = 256
    sinkhorn_iterations: int = 3
    reconstruct_from: str = "others"

    def __post_init__(self) -> None:
        if self.reconstruct_from not in ("others", "all"):
            raise ValueError(f"reconstruct_from must be 'others' or 'all', got {self.reconstruct_from!r}")
        if not 1 <= self.expert_top_k <= self.experts:
            raise ValueError(f"expert_top_k={self.expert_top_k} must lie in 1..experts={self.experts}")

    @classmethod
    def from_mapping(cls, hparams: Mapping[str, Any]) -> ModelHParams:
        """Pick the keys this class knows from a config `train` section; the rest (lr, epochs, ...) are not ours."""
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in hparams.items() if key in known})


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax over the entries where `mask` is True; masked entries get exactly 0, all-masked slices all 0."""
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=dim) * mask


def masked_sigmoid_gate(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sigmoid(scores) divided by the number of unmasked keys (last dimension); masked entries get exactly 0.

    Unlike a softmax, the weights do not sum to one, so a query with a single key still learns how much to take.
    """
    mask = mask.expand_as(scores)
    keys = mask.sum(dim=-1, keepdim=True).clamp(min=1).to(scores.dtype)
    return torch.where(mask, torch.sigmoid(scores), torch.zeros((), dtype=scores.dtype, device=scores.device)) / keys


def zero_missing(features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Replace a missing modality's feature by exact zeros (where(), so not even a NaN input can leak through).

    `present` is (B,) or (B, M) and broadcasts over the trailing feature dimensions of `features`.
    """
    mask = present.reshape(present.shape + (1,) * (features.dim() - present.dim()))
    return torch.where(mask, features, torch.zeros((), dtype=features.dtype, device=features.device))


class TokenProjection(nn.Module):
    """Linear map of precomputed encoder features (report embeddings, GMM means) to the hidden size, then LayerNorm."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(in_dim, out_dim), nn.LayerNorm(out_dim), nn.GELU(), nn.Dropout(dropout))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)
