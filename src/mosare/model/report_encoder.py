"""Report encoder: projects the precomputed report embedding and its sentence-GMM tokens to the hidden size."""

from __future__ import annotations

import torch
from torch import nn

from mosare.model.common import TokenProjection


class ReportEncoder(nn.Module):
    """Global report feature (B, dim) and local tokens (B, C, dim) from sentence-transformer features."""

    def __init__(self, text_dim: int, dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.global_projection = TokenProjection(text_dim, dim, dropout)
        self.local_projection = TokenProjection(text_dim, dim, dropout)

    def forward(self, report: torch.Tensor, sentence_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.global_projection(report), self.local_projection(sentence_tokens)
