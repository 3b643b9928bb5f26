"""RNA encoders: a global MLP over the gene vector and 16 local tokens from attention pooling over genes."""

from __future__ import annotations

import torch
from torch import nn


class RNAGlobalMLP(nn.Module):
    """genes -> h -> h -> dim, each hidden layer Linear, LayerNorm, ReLU, Dropout(0.2)."""

    def __init__(self, genes: int, hidden: int, dim: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(genes, hidden),
            nn.LayerNorm(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.LayerNorm(hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
        )

    def forward(self, expression: torch.Tensor) -> torch.Tensor:
        return self.layers(expression)


class GeneAttentionTokens(nn.Module):
    """Local RNA tokens: every gene is a token, `tokens` gated-attention heads each pool one token over all genes.

    Gene g with value x carries the token t_g = x * w_g + b_g (token_dim wide; w_g, b_g learned per gene, so a token
    knows which gene it is, unlike the authors' shared MLP of the bare value). Head h scores the genes with a gated
    attention MLP of the same (value, gene) pair, softmax over genes, and pools sum_g p_gh t_g; LayerNorm, GELU and
    Linear(token_dim, dim) follow the pooling. Because t_g is linear in x, the pooling is two (B*heads, genes) x
    (genes, token_dim) matmuls: the (B, genes, heads x token_dim) tensor of a per-gene MLP is never built.
    """

    def __init__(
        self, genes: int, tokens: int, dim: int, token_dim: int = 64, attention_hidden: int = 16, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.value_weight = nn.Parameter(torch.randn(genes, token_dim))
        self.value_bias = nn.Parameter(torch.randn(genes, token_dim))
        # tanh and sigmoid branches of the gate, each an affine function of the value per gene
        self.tanh_weight = nn.Parameter(torch.randn(genes, attention_hidden))
        self.tanh_bias = nn.Parameter(torch.randn(genes, attention_hidden))
        self.sigmoid_weight = nn.Parameter(torch.randn(genes, attention_hidden))
        self.sigmoid_bias = nn.Parameter(torch.randn(genes, attention_hidden))
        self.attention_scores = nn.Linear(attention_hidden, tokens, bias=False)  # softmax ignores a bias
        self.output = nn.Sequential(nn.LayerNorm(token_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(token_dim, dim))

    def forward(self, expression: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, genes) -> tokens (B, tokens, dim), attention over genes (B, genes, tokens)."""
        values = expression.unsqueeze(-1)
        gate = torch.tanh(torch.addcmul(self.tanh_bias, values, self.tanh_weight)) * torch.sigmoid(
            torch.addcmul(self.sigmoid_bias, values, self.sigmoid_weight)
        )
        weights = torch.softmax(self.attention_scores(gate), dim=1)
        pooled = torch.einsum("bgh,gd->bhd", weights * values, self.value_weight) + torch.einsum(
            "bgh,gd->bhd", weights, self.value_bias
        )
        return self.output(pooled), weights
