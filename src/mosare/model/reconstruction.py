"""Decoupled reconstruction: a per-modality decoder predicts each modality's feature from the fused feature."""

from __future__ import annotations

import torch
from torch import nn


class DecoupledReconstruction(nn.Module):
    """rec_m = D_m(x), D_m a 2-layer MLP; x = sum of the present modalities' features.

    With `from_others` (default) x leaves modality m out, so D_m learns to predict m from the others, which is
    exactly its job when m is missing; the paper's form (x includes m) is `from_others=False`.
    """

    def __init__(self, dim: int, modalities: int = 3, from_others: bool = True) -> None:
        super().__init__()
        self.from_others = from_others
        self.decoders = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim)) for _ in range(modalities)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, M, D), zero where missing -> reconstructions (B, M, D)."""
        total = features.sum(dim=1, keepdim=True)
        inputs = total - features if self.from_others else total.expand_as(features)
        return torch.stack([decoder(inputs[:, m]) for m, decoder in enumerate(self.decoders)], dim=1)


def reconstruction_loss(reconstructed: torch.Tensor, features: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the present (patient, modality) pairs; the target is detached, so the loss moves
    the decoders rather than pulling the real features toward their reconstructions."""
    if not present.any():
        return reconstructed.sum() * 0.0
    errors = (reconstructed.float() - features.detach().float()).pow(2).mean(dim=-1)
    return errors[present].mean()
