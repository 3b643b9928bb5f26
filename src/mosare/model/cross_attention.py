"""Cross-modal guided attention (MCAN-style): each modality's tokens query the tokens of the two others."""

from __future__ import annotations

import itertools

import torch
from torch import nn

from mosare.model.common import masked_sigmoid_gate, zero_missing


class MaskedMultiHeadAttention(nn.Module):
    """Multi-head attention gated by the sigmoid of the scaled query-key scores (as in the authors' code), averaged
    over the present keys; masked keys get exactly zero weight and a query with no key at all returns zeros.

    A softmax would be degenerate here: the global level has one key per query, and the local level too with the
    default ``local_top_k=1``, so every softmax weight would be 1 and the query and key projections would never
    learn. The sigmoid gate lets each query scale how much of each key's value it takes.
    """

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by {heads} attention heads")
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key_value = nn.Linear(dim, 2 * dim)
        self.output = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """(B, Tq, D) attends to (B, Tk, D) where key_mask (B, Tk) is True -> (B, Tq, D)."""
        batch, query_len, dim = queries.shape
        head_dim = dim // self.heads
        q = self.query(queries).view(batch, query_len, self.heads, head_dim).transpose(1, 2)
        k, v = self.key_value(keys).view(batch, -1, 2, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) * head_dim**-0.5
        weights = self.dropout(masked_sigmoid_gate(scores, key_mask[:, None, None, :]))
        return self.output((weights @ v).transpose(1, 2).reshape(batch, query_len, dim))


class GuidedAttention(nn.Module):
    """x' = LN(x + MHA(q=x, k=v=y)); out = LN(x' + FFN(x')), FFN D -> 2D -> D."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.attention = MaskedMultiHeadAttention(dim, heads, dropout)
        self.attention_norm = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim)
        )
        self.feed_forward_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, y: torch.Tensor, y_mask: torch.Tensor) -> torch.Tensor:
        x = self.attention_norm(x + self.dropout(self.attention(x, y, y_mask)))
        return self.feed_forward_norm(x + self.dropout(self.feed_forward(x)))


class CrossModalAttention(nn.Module):
    """One guided-attention block per ordered pair of the three modalities (six blocks).

    Modality m's output is the mean of its blocks over the partners that are present (a missing partner is a
    masked key, so its input cannot reach m), or of both blocks when no partner is present; then times m's mask.
    """

    def __init__(self, dim: int, heads: int, dropout: float, modalities: int = 3) -> None:
        super().__init__()
        self.pairs = [(m, j) for m, j in itertools.product(range(modalities), repeat=2) if m != j]
        self.blocks = nn.ModuleList(GuidedAttention(dim, heads, dropout) for _ in self.pairs)

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """tokens (B, M, T, D) with missing modalities zeroed, present (B, M) bool -> (B, M, T, D)."""
        batch, modalities, token_count, _ = tokens.shape
        present_float = present.to(tokens.dtype)
        outputs = []
        for m in range(modalities):
            partners = [j for j in range(modalities) if j != m]
            attended = torch.stack(
                [
                    self.blocks[self.pairs.index((m, j))](
                        tokens[:, m], tokens[:, j], present[:, j, None].expand(batch, token_count)
                    )
                    for j in partners
                ],
                dim=1,
            )  # (B, partners, T, D)
            partner_present = present_float[:, partners]
            n_present = partner_present.sum(dim=1, keepdim=True)
            weights = torch.where(n_present > 0, partner_present / n_present.clamp(min=1), 1.0 / len(partners))
            outputs.append(torch.einsum("bj,bjtd->btd", weights, attended))
        return zero_missing(torch.stack(outputs, dim=1), present)
