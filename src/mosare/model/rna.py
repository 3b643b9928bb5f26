"""RNA encoders: a global MLP over the gene vector and 16 local tokens from attention pooling over genes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RNAGlobalMLP(nn.Module):
    """genes -> h -> h -> dim, each hidden layer Linear, LayerNorm, ReLU, Dropout(0.2)."""

    def __init__(self, genes: int, hidden: int, dim: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(genes, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, dim),
        )

    def forward(self, expression: torch.Tensor) -> torch.Tensor:
        return self.layers(expression)


class GeneAttentionTokens(nn.Module):
    """Local RNA tokens: every gene is a token, `tokens` gated-attention heads each pool one token over all genes.

    A gene token is GELU(LayerNorm(value * w_gene + b_gene)) in a small `token_dim` space: w_gene and b_gene are
    learned per gene, so a token knows which gene it is (the authors' shared scalar MLP does not), and the
    (B, genes, 16 x 256) tensor of the authors' version is never built. Heads share the token space and the gate's
    hidden layer and differ in their last scoring layer; each pooled token is then mapped to `dim`.
    """

    def __init__(
        self, genes: int, tokens: int, dim: int, token_dim: int = 64, attention_hidden: int = 32, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.gene_weight = nn.Parameter(torch.randn(genes, token_dim))
        self.gene_bias = nn.Parameter(torch.randn(genes, token_dim))
        self.token_norm = nn.LayerNorm(token_dim)
        self.attention_gates = nn.Linear(token_dim, 2 * attention_hidden)
        self.attention_scores = nn.Linear(attention_hidden, tokens, bias=False)  # softmax ignores a bias
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(token_dim, dim)

    def forward(self, expression: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, genes) -> tokens (B, tokens, dim), attention over genes (B, genes, tokens)."""
        gene_tokens = F.gelu(self.token_norm(torch.addcmul(self.gene_bias, expression.unsqueeze(-1), self.gene_weight)))
        tanh_branch, sigmoid_branch = self.attention_gates(gene_tokens).chunk(2, dim=-1)
        scores = self.attention_scores(torch.tanh(tanh_branch) * torch.sigmoid(sigmoid_branch))
        weights = torch.softmax(scores, dim=1)
        pooled = torch.einsum("bgh,bgd->bhd", weights, gene_tokens)
        # dropout on the 16 pooled tokens, not on the (B, genes, token_dim) tensor: same role, a fraction of the cost
        return self.output(self.dropout(pooled)), weights
