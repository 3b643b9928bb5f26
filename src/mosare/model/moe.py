"""Sparse mixture of experts (top-k of E, renormalised) and the local gate that keeps the best local tokens."""

from __future__ import annotations

import math

import torch
from torch import nn


class MixtureOfExperts(nn.Module):
    """E experts Linear-ReLU-Linear, gate Linear(D, E) softmax, keep the top-k per token, renormalise, weighted sum.

    Expert weights are stacked (E, ...) so all experts run as one batched matmul; with a few hundred tokens per
    batch that is cheaper than dispatching tokens, and unselected experts get weight exactly 0.
    """

    def __init__(self, dim: int, experts: int = 5, top_k: int = 2) -> None:
        super().__init__()
        self.top_k = top_k
        self.gate = nn.Linear(dim, experts)
        bound = 1 / math.sqrt(dim)  # nn.Linear's default initialisation, per expert
        self.w1 = nn.Parameter(torch.empty(experts, dim, dim).uniform_(-bound, bound))
        self.b1 = nn.Parameter(torch.empty(experts, dim).uniform_(-bound, bound))
        self.w2 = nn.Parameter(torch.empty(experts, dim, dim).uniform_(-bound, bound))
        self.b2 = nn.Parameter(torch.empty(experts, dim).uniform_(-bound, bound))

    def routing(self, tokens: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., E) weights: top-k gate probabilities renormalised to sum 1, others exactly 0."""
        probabilities = torch.softmax(self.gate(tokens), dim=-1)
        top_values, top_indices = probabilities.topk(self.top_k, dim=-1)
        return torch.zeros_like(probabilities).scatter(-1, top_indices, top_values / top_values.sum(-1, keepdim=True))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., D) -> output (..., D), routing weights (..., E)."""
        weights = self.routing(tokens)
        flat = tokens.reshape(-1, tokens.shape[-1])
        hidden = torch.relu(torch.einsum("nd,edh->neh", flat, self.w1) + self.b1)
        expert_outputs = torch.einsum("neh,ehd->ned", hidden, self.w2) + self.b2
        output = torch.einsum("ne,ned->nd", weights.reshape(-1, weights.shape[-1]), expert_outputs)
        return output.reshape(tokens.shape), weights


class SingleExpert(nn.Module):
    """The no-MoE ablation: one dense Linear-ReLU-Linear expert for every token (no gate, no routing)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.layers(tokens), torch.ones(*tokens.shape[:-1], 1, dtype=tokens.dtype, device=tokens.device)


class LocalTokenGate(nn.Module):
    """Scores the local tokens with Linear(D, 1) and keeps the top-k (authors: 1).

    The kept tokens are multiplied by 1 + p - p.detach() (p = softmax of the scores): exactly 1 in the forward pass,
    yet the gate learns from the loss through p (a bare top-k index has no gradient).
    """

    def __init__(self, dim: int, keep: int = 1) -> None:
        super().__init__()
        self.keep = keep
        self.score = nn.Linear(dim, 1, bias=False)  # softmax over tokens ignores a bias

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D) -> kept tokens (B, keep, D), their indices (B, keep)."""
        probabilities = torch.softmax(self.score(tokens).squeeze(-1), dim=-1)
        kept_probabilities, indices = probabilities.topk(self.keep, dim=-1)
        kept = tokens.gather(1, indices.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        straight_through = 1.0 + kept_probabilities - kept_probabilities.detach()  # exactly 1, gradient of p
        return kept * straight_through.unsqueeze(-1), indices
