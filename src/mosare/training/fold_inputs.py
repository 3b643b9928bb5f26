"""One fold's model inputs: normalisation fitted on the fold's training part, tensors, and batches."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from mosare.cohort.data import CohortData
from mosare.evaluation.splits import derived_seed

STD_FLOOR = 1e-6


@dataclasses.dataclass
class Normalisation:
    """Per-feature mean and std of every input, fitted on the training part of one fold."""

    patches: tuple[np.ndarray, np.ndarray]
    wsi_local: tuple[np.ndarray, np.ndarray]
    rna_genes: np.ndarray  # columns of the cohort's RNA values this fold uses (its most variable genes)
    rna: tuple[np.ndarray, np.ndarray]  # over rna_genes
    text_global: tuple[np.ndarray, np.ndarray]
    text_local: tuple[np.ndarray, np.ndarray]


def _moments(values: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    if values.size == 0:  # no patient with the modality, or a modality of zero features (no RNA matrix)
        return np.zeros(dim, np.float32), np.ones(dim, np.float32)
    values = values.reshape(-1, dim)
    mean = np.zeros(dim, np.float64)
    square = np.zeros(dim, np.float64)
    for start in range(0, len(values), 65536):  # float64 sums in chunks: float16 stores, large cohorts
        chunk = values[start : start + 65536].astype(np.float64)
        mean += chunk.sum(0)
        square += (chunk**2).sum(0)
    mean /= len(values)
    std = np.sqrt(np.maximum(square / len(values) - mean**2, 0.0))
    std[std < STD_FLOOR] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def top_variance_genes(values: np.ndarray, top_genes: int | None) -> np.ndarray:
    """Column indices of the ``top_genes`` most variable columns of ``values`` (patients x genes), in column order
    (ties to the earlier column); every column when ``top_genes`` is None or not smaller than their number."""
    n_genes = values.shape[1]
    if top_genes is None or top_genes >= n_genes:
        return np.arange(n_genes)
    variance = values.astype(np.float64).var(axis=0) if len(values) else np.zeros(n_genes)
    return np.sort(np.argsort(-variance, kind="stable")[:top_genes])


def fit_normalisation(data: CohortData, fit_index: np.ndarray, rna_top_genes: int | None = None) -> Normalisation:
    """z-score statistics from the patients in ``fit_index`` that really have each modality; the RNA genes are the
    ``rna_top_genes`` most variable among those patients (every stored gene when None), so gene selection never
    sees a test patient either."""
    fit_index = np.asarray(fit_index)
    wsi, rna, text = (fit_index[data.available[fit_index, m]] for m in range(3))
    genes = top_variance_genes(data.rna[rna], rna_top_genes)
    patch_rows = np.concatenate(
        [np.arange(data.patch_offsets[i], data.patch_offsets[i + 1]) for i in wsi] or [np.zeros(0, np.int64)]
    )
    dw, dt = data.patches.shape[1], data.text_global.shape[1]
    return Normalisation(
        patches=_moments(data.patches[patch_rows], dw),
        wsi_local=_moments(data.wsi_local[wsi], dw),
        rna_genes=genes,
        rna=_moments(data.rna[np.ix_(rna, genes)], len(genes)),
        text_global=_moments(data.text_global[text], dt),
        text_local=_moments(data.text_local[text], dt),
    )


@dataclasses.dataclass
class FoldTensors:
    """Normalised inputs of one fold as tensors (missing modalities zero), plus what batches are drawn from."""

    patches: torch.Tensor  # (total, Dw) float16, raw; normalised per batch (cheap, no copy of the pool)
    patch_mean: torch.Tensor
    patch_std: torch.Tensor
    patch_offsets: torch.Tensor  # (N,) int64
    patch_counts: torch.Tensor  # (N,) int64
    eval_patches: torch.Tensor  # (N, E) int64 rows into patches, -1 = padding
    wsi_local: torch.Tensor
    rna: torch.Tensor
    text_global: torch.Tensor
    text_local: torch.Tensor
    labels: torch.Tensor
    available: torch.Tensor
    times: torch.Tensor | None = None  # (N,) float64, a survival cohort's only
    events: torch.Tensor | None = None  # (N,) bool


def eval_patch_rows(data: CohortData, max_patches: int, seed: int) -> np.ndarray:
    """Fixed evaluation patches (N, E): all of a patient's patches, or a seeded subset of ``max_patches``; -1 pads."""
    counts = data.patch_counts
    width = int(min(max(counts.max(initial=0), 1), max_patches))
    rows = np.full((data.n_patients, width), -1, dtype=np.int64)
    rng = np.random.default_rng(derived_seed(seed, 7919))
    for i, n in enumerate(counts):
        chosen = np.sort(rng.choice(n, size=width, replace=False)) if n > width else np.arange(n)
        rows[i, : len(chosen)] = data.patch_offsets[i] + chosen
    return rows


def fold_tensors(data: CohortData, stats: Normalisation, eval_rows: np.ndarray) -> FoldTensors:
    """Apply one fold's normalisation to the dense inputs; zero every modality a patient really lacks."""

    def normalised(values: np.ndarray, moments: tuple[np.ndarray, np.ndarray], modality: int) -> torch.Tensor:
        z = (values - moments[0]) / moments[1]
        z[~data.available[:, modality]] = 0.0
        return torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))

    return FoldTensors(
        patches=torch.from_numpy(data.patches),
        patch_mean=torch.from_numpy(stats.patches[0]),
        patch_std=torch.from_numpy(stats.patches[1]),
        patch_offsets=torch.from_numpy(data.patch_offsets[:-1].copy()),
        patch_counts=torch.from_numpy(data.patch_counts.copy()),
        eval_patches=torch.from_numpy(eval_rows),
        wsi_local=normalised(data.wsi_local, stats.wsi_local, 0),
        rna=normalised(data.rna[:, stats.rna_genes], stats.rna, 1),
        text_global=normalised(data.text_global, stats.text_global, 2),
        text_local=normalised(data.text_local, stats.text_local, 2),
        labels=torch.from_numpy(data.labels),
        available=torch.from_numpy(data.available),
        times=None if data.times is None else torch.from_numpy(np.array(data.times, dtype=np.float64)),
        events=None if data.events is None else torch.from_numpy(np.array(data.events, dtype=bool)),
    )


def make_batch(
    tensors: FoldTensors,
    index: torch.Tensor,
    shown: torch.Tensor,
    patches_per_step: int | None,
    generator: torch.Generator | None,
) -> dict[str, torch.Tensor]:
    """The model's batch for patients ``index`` showing modalities ``shown`` (N, 3).

    With ``patches_per_step`` set, patches are sampled with replacement (training); otherwise the fixed evaluation
    patches are used. Hidden modalities hold zeros and ``present`` False.
    """
    present = shown[index]
    if patches_per_step is not None:
        counts = tensors.patch_counts[index]
        draws = torch.rand(len(index), patches_per_step, generator=generator)
        has_patches = (counts > 0)[:, None]
        # A patient without patches points at row 0, masked: its own offset may be one past the last row.
        rows = torch.where(has_patches, tensors.patch_offsets[index, None] + (draws * counts[:, None]).long(), 0)
        patch_mask = has_patches.expand_as(rows).clone()
    else:
        rows = tensors.eval_patches[index]
        patch_mask = rows >= 0
    patch_mask &= present[:, :1]
    if len(tensors.patches) == 0:  # a cohort without slides: nothing to index, the models read no patch
        patches = torch.zeros(*rows.shape, tensors.patches.shape[1])
    else:
        patches = tensors.patches[rows.clamp(min=0)].float()
    patches = (patches - tensors.patch_mean) / tensors.patch_std
    patches = patches * patch_mask[..., None]
    wsi, rna, text = (present[:, m : m + 1].float() for m in range(3))
    batch = {
        "wsi_patches": patches,
        "wsi_patch_mask": patch_mask,
        "wsi_local": tensors.wsi_local[index] * wsi[..., None],
        "rna": tensors.rna[index] * rna,
        "text_global": tensors.text_global[index] * text,
        "text_local": tensors.text_local[index] * text[..., None],
        "present": present,
        "label": tensors.labels[index],
    }
    if tensors.times is not None and tensors.events is not None:  # a survival cohort: its outcome too
        batch["time"] = tensors.times[index]
        batch["event"] = tensors.events[index]
    return batch
