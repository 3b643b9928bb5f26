"""Training losses: cross-entropy helpers, symmetric contrastive alignment (SymCL), multi-prototype contrast (MCL)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def present_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of per-modality logits (B, M, K) over the present (patient, modality) pairs only."""
    if not present.any():
        return logits.sum() * 0.0
    expanded = labels.unsqueeze(1).expand(present.shape)
    return F.cross_entropy(logits[present].float(), expanded[present])


def full_precision(tensor: torch.Tensor) -> torch.autocast:
    """Autocast switched off: similarities over a small temperature and EMA steps of 0.001 need float32."""
    return torch.autocast(tensor.device.type, enabled=False)


def symmetric_info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between paired rows of a and b (N, D); the other rows of the batch are the negatives."""
    with full_precision(a):
        a = F.normalize(a.float(), dim=-1)
        b = F.normalize(b.float(), dim=-1)
        logits = a @ b.T / temperature
    targets = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


def symmetric_alignment_loss(
    features: torch.Tensor, fused: torch.Tensor, present: torch.Tensor, temperature: float
) -> torch.Tensor:
    """SymCL at one level: features (B, M, D) vs the fused feature (B, D), per modality over the patients that have
    it (at least two, so there is a negative), averaged over modalities."""
    terms = [
        symmetric_info_nce(features[present[:, m], m], fused[present[:, m]], temperature)
        for m in range(features.shape[1])
        if int(present[:, m].sum()) >= 2
    ]
    if not terms:
        return fused.sum() * 0.0
    return torch.stack(terms).mean()


@torch.no_grad()
def sinkhorn(scores: torch.Tensor, iterations: int, epsilon: float = 0.05) -> torch.Tensor:
    """Balanced soft assignment (N, P) of N features to P prototypes from similarity scores (SwAV's Sinkhorn-Knopp)."""
    assignment = torch.exp((scores - scores.max()) / epsilon).T  # (P, N)
    assignment /= assignment.sum()
    prototypes, samples = assignment.shape
    for _ in range(iterations):
        assignment /= assignment.sum(dim=1, keepdim=True) * prototypes
        assignment /= assignment.sum(dim=0, keepdim=True) * samples
    return (assignment * samples).T


class MultiPrototypeContrast(nn.Module):
    """Several prototypes per class on the unit sphere; logit of a class = best similarity among its prototypes.

    Prototypes are buffers, not parameters: a per-class queue of recent (detached, L2-normalised) fused features is
    assigned to the class's prototypes by Sinkhorn, and each prototype moves by EMA toward the mean of its features.
    A class's prototypes start at randomly chosen queued features of that class the first time its queue holds
    enough of them (random unit vectors would need thousands of EMA steps at momentum 0.999 to become meaningful).
    """

    # Buffers (registered in __init__).
    prototypes: torch.Tensor  # (K, P, D) unit vectors
    prototypes_initialised: torch.Tensor  # (K,) bool
    queue: torch.Tensor  # (K, Q, D) recent normalised features of each class, circular
    queue_length: torch.Tensor  # (K,) long: filled slots
    queue_position: torch.Tensor  # (K,) long: the next slot to write

    def __init__(
        self,
        n_classes: int,
        prototypes_per_class: int,
        dim: int,
        queue_per_class: int = 256,
        momentum: float = 0.999,
        temperature: float = 0.1,
        sinkhorn_iterations: int = 3,
    ) -> None:
        super().__init__()
        self.momentum = momentum
        self.temperature = temperature
        self.sinkhorn_iterations = sinkhorn_iterations
        self.register_buffer("prototypes", F.normalize(torch.randn(n_classes, prototypes_per_class, dim), dim=-1))
        self.register_buffer("prototypes_initialised", torch.zeros(n_classes, dtype=torch.bool))
        self.register_buffer("queue", torch.zeros(n_classes, queue_per_class, dim))
        self.register_buffer("queue_length", torch.zeros(n_classes, dtype=torch.long))
        self.register_buffer("queue_position", torch.zeros(n_classes, dtype=torch.long))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, K): max over each class's prototypes of the cosine similarity, over the temperature."""
        # a copy, because update_prototypes() changes the buffer in place before backward() runs
        prototypes = self.prototypes.clone()
        with full_precision(features):
            similarities = torch.einsum("bd,kpd->bkp", F.normalize(features.float(), dim=-1), prototypes)
            return similarities.amax(dim=-1) / self.temperature

    def loss(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(features), labels)

    @torch.no_grad()
    def enqueue(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Push the batch's features into their classes' circular queues (one vectorised write per class)."""
        features = F.normalize(features.detach().float(), dim=-1)
        capacity = self.queue.shape[1]
        for label in labels.unique().tolist():
            rows = features[labels == label]
            start = self.queue_position[label] + max(len(rows) - capacity, 0)  # only the newest `capacity` fit
            rows = rows[-capacity:]
            slots = (start + torch.arange(len(rows), device=rows.device)) % capacity
            self.queue[label, slots] = rows
            self.queue_position[label] = (start + len(rows)) % capacity
            self.queue_length[label] = torch.clamp(self.queue_length[label] + len(rows), max=capacity)

    @torch.no_grad()
    def update_prototypes(self) -> None:
        """Initialise classes whose queue has filled enough, then one Sinkhorn + EMA step for every initialised class."""
        with full_precision(self.prototypes):
            self._sinkhorn_ema_step()

    def _sinkhorn_ema_step(self) -> None:
        n_prototypes = self.prototypes.shape[1]
        for label in range(self.prototypes.shape[0]):
            length = int(self.queue_length[label])
            queued = self.queue[label, :length]
            if not self.prototypes_initialised[label]:
                if length < n_prototypes:
                    continue
                chosen = torch.randperm(length, device=queued.device)[:n_prototypes]
                self.prototypes[label] = queued[chosen]
                self.prototypes_initialised[label] = True
                continue
            assignment = sinkhorn(queued @ self.prototypes[label].T, self.sinkhorn_iterations)
            hard = F.one_hot(assignment.argmax(dim=1), n_prototypes).to(queued.dtype)  # (N, P)
            counts = hard.sum(dim=0)
            means = F.normalize(hard.T @ queued, dim=-1)
            moved = F.normalize(self.momentum * self.prototypes[label] + (1 - self.momentum) * means, dim=-1)
            self.prototypes[label] = torch.where((counts > 0).unsqueeze(-1), moved, self.prototypes[label])
