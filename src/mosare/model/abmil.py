"""Gated attention MIL (Ilse et al. 2018) over a patient's patch features: the global WSI feature."""

from __future__ import annotations

import torch
from torch import nn

from mosare.model.common import masked_softmax


class GatedAttentionMIL(nn.Module):
    """2 x [Linear, LayerNorm, GELU, Dropout] per patch, gated attention, softmax over the real patches only."""

    def __init__(self, in_dim: int, dim: int, attention_hidden: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Sequential(
            nn.Linear(in_dim, dim),
            nn.LayerNorm(dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(dim, dim),
            nn.LayerNorm(dim),
            nn.GELU(),
            nn.Dropout(dropout),
        )
        # tanh and sigmoid branches of the gate in one matmul
        self.attention_gates = nn.Linear(dim, 2 * attention_hidden)
        self.attention_score = nn.Linear(attention_hidden, 1, bias=False)  # softmax ignores a bias

    def forward(self, patches: torch.Tensor, patch_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, P, in_dim), (B, P) bool -> slide feature (B, dim), attention weights (B, P).

        A patient with no real patch gets a zero feature and zero weights (never NaN).
        """
        embedded = self.embed(patches).masked_fill(~patch_mask.unsqueeze(-1), 0.0)
        tanh_branch, sigmoid_branch = self.attention_gates(embedded).chunk(2, dim=-1)
        scores = self.attention_score(torch.tanh(tanh_branch) * torch.sigmoid(sigmoid_branch)).squeeze(-1)
        weights = masked_softmax(scores, patch_mask, dim=-1)
        return torch.einsum("bp,bpd->bd", weights, embedded), weights
