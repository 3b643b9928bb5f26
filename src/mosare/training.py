"""Honest cross-validation of MoSARe and its baselines under missing-modality scenarios.

Protocol (see docs/architecture.md, "Training"):

- Patient-level stratified k-fold (``StratifiedGroupKFold``, groups = patients); the same folds for every model and
  scenario. Inside each training fold a stratified validation split picks the epoch (best validation AUC, ties to the
  lower validation cross-entropy; early stopping with ``patience``). The test fold is predicted once, by that checkpoint.
- Every normalisation statistic (z-scores of patch features, GMM tokens, RNA, text) is fitted on the training part
  of the fold only (the training fold minus its validation split).
- Scenarios: complete; masked train / complete test; masked train / masked test, for each missing rate. Masks follow the
  paper: each modality dropped with the rate, at least one kept, never WSI and RNA together. They are drawn once per
  fold and rate from a fixed seed, so every model sees the same masks; the validation split carries the training masks.
- Patients really lacking a modality (``cohort.tsv`` flags) have it masked in every scenario, "complete" included.
- A single-modality baseline (ABMIL, RNA MLP, report MLP) cannot see a patient whose modality is absent: it is trained
  on the patients that have it and predicts the training fold's class prior for the others, so every model is
  evaluated on exactly the same patients.
- A modality no patient of the cohort has (no ``rna:`` matrix, no reports) is absent everywhere: the baseline that
  reads only it is not run (no row in metrics.tsv, named under the table in metrics.md, not in the figures); the
  fusion models train on the modalities that exist, with no encoder for the absent one and no reconstruction of it
  (``ModelDims`` size 0). Masking still drops each existing modality with the rate; since WSI and RNA are never
  dropped together, a cohort without RNA keeps every slide and its masks drop reports only. When no patient has two
  modalities, masking could drop nothing, so the masked scenarios (identical to ``complete``) are not run.
- A single-modality baseline whose training part of a fold shows its modality for no patient (a rare modality
  masked away) is not trained there: that fold's metrics are NaN, left out of mean and std (metrics.md says how
  many folds count), and no per-fold outputs are written.
- Patches: training samples ``patches_per_step`` patches with replacement per patient and step (all slides of a
  patient pooled); evaluation uses a fixed subset of at most ``patches_per_step`` patches per patient (all of them when
  the patient has fewer), drawn once from the seed.
- Local WSI tokens: the GMM components of all a patient's slides, each weighted by its mixture weight times its
  slide's share of the patient's patches, the ``C`` heaviest kept, ordered by weight (one slide: its own components,
  ordered by weight).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import multiprocessing
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from mosare.atomic_files import atomic_file
from mosare.metrics import METRICS, auc_score, classification_metrics, metrics_markdown, summarise_folds
from mosare.resources import usable_cores
from mosare.splits import check_cohort_splits, derived_seed, fold_validation_split
from mosare.stores import open_store

log = logging.getLogger(__name__)

MODALITIES: tuple[str, ...] = ("wsi", "rna", "text")
MODALITY_TITLES: tuple[str, ...] = ("WSI", "RNA", "reports")
# Baselines that read one modality; index into MODALITIES.
SINGLE_MODALITY_MODELS: dict[str, int] = {"abmil": 0, "rna_mlp": 1, "report_mlp": 2}
STD_FLOOR = 1e-6


# ----------------------------------------------------------------------------------------------------------------
# Cohort data in memory
# ----------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class CohortData:
    """Everything training reads, for all patients of a cohort, in memory (rows follow ``patient_ids``)."""

    patient_ids: np.ndarray  # (N,) str
    labels: np.ndarray  # (N,) int64, index into classes
    classes: list[str]
    available: np.ndarray  # (N, 3) bool: the patient really has [wsi, rna, text]
    patches: np.ndarray  # (total, Dw) float16: every patient's patches, concatenated in patient order
    patch_offsets: np.ndarray  # (N + 1,) int64: patient i owns patches[offsets[i]:offsets[i + 1]]
    wsi_local: np.ndarray  # (N, C, Dw) float32 GMM tokens
    rna: np.ndarray  # (N, G) float32
    text_global: np.ndarray  # (N, Dt) float32
    text_local: np.ndarray  # (N, C, Dt) float32
    excluded: list[str] = dataclasses.field(default_factory=list)  # patients with no modality at all

    def subset(self, rows: np.ndarray) -> CohortData:
        """The same cohort restricted to patients ``rows`` (in that order)."""
        counts = self.patch_counts[rows]
        patches = np.concatenate(
            [self.patches[self.patch_offsets[i] : self.patch_offsets[i + 1]] for i in rows]
        )
        return dataclasses.replace(
            self,
            patient_ids=self.patient_ids[rows],
            labels=self.labels[rows],
            available=self.available[rows],
            patches=patches,
            patch_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            wsi_local=self.wsi_local[rows],
            rna=self.rna[rows],
            text_global=self.text_global[rows],
            text_local=self.text_local[rows],
        )

    @property
    def n_patients(self) -> int:
        return len(self.patient_ids)

    @property
    def patch_counts(self) -> np.ndarray:
        return np.diff(self.patch_offsets)


def _read_cohort_table(path: Path, classes: Sequence[str]) -> pd.DataFrame:
    table = pd.read_csv(path, sep="\t", dtype={"patient_id": str, "slide_ids": str, "label": str})
    required = {"patient_id", "label", "slide_ids", "has_wsi", "has_rna", "has_text"}
    missing = required - set(table.columns)
    if missing:
        raise ValueError(f"{path} lacks columns {sorted(missing)}; rerun the cohort stage that writes it")
    unknown = sorted(set(table["label"]) - set(classes))
    if unknown:
        raise ValueError(
            f"{path}: labels {unknown} are not among the cohort's classes {list(classes)}; "
            "fix the sample sheet or the cohort's 'classes' in config.yaml"
        )
    for flag in ("has_wsi", "has_rna", "has_text"):
        table[flag] = table[flag].astype(str).str.lower().isin(["true", "1"])
    table["slide_ids"] = table["slide_ids"].fillna("")
    return table.reset_index(drop=True)


def merge_slide_components(
    weights: Sequence[np.ndarray], means: Sequence[np.ndarray], patch_counts: Sequence[int], n_components: int
) -> np.ndarray:
    """Local WSI tokens of a patient from its slides' GMMs: the ``n_components`` heaviest components, by weight.

    A component's weight is its mixture weight times its slide's share of the patient's patches.
    """
    total = max(sum(patch_counts), 1)
    all_weights = np.concatenate([w * (n / total) for w, n in zip(weights, patch_counts)])
    all_means = np.concatenate(list(means))
    order = np.argsort(-all_weights, kind="stable")[:n_components]
    tokens = np.zeros((n_components, all_means.shape[1]), dtype=np.float32)
    tokens[: len(order)] = all_means[order]
    return tokens


def _aligned_store(path: Path, patient_ids: np.ndarray, arrays: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Rows of ``arrays`` in a per-patient store, in ``patient_ids`` order; the present flag (False when absent)."""
    store = open_store(path)
    store_ids = [str(pid) for pid in store["patient_ids"][...].tolist()]  # zarr strings come as StringDType
    present_in_store = np.asarray(store["present"][...]).astype(bool)
    row_of = {pid: i for i, pid in enumerate(store_ids)}
    rows = np.array([row_of.get(pid, -1) for pid in patient_ids])
    found = rows >= 0
    present = np.zeros(len(patient_ids), dtype=bool)
    present[found] = present_in_store[rows[found]]
    out = []
    for name in arrays:
        values = np.asarray(store[name][...], dtype=np.float32)
        aligned = np.zeros((len(patient_ids), *values.shape[1:]), dtype=np.float32)
        aligned[found] = values[rows[found]]
        out.append(aligned)
    return present, out


def load_cohort_data(
    cohort_table: str | Path,
    features_dir: str | Path,
    gmm_dir: str | Path,
    text_store: str | Path,
    rna_store: str | Path,
    classes: Sequence[str],
) -> CohortData:
    """Read the cohort table and every store of its patients into memory, once.

    A modality counts as available when ``cohort.tsv`` flags it and its store has it; a disagreement is logged.
    """
    cohort_table, features_dir, gmm_dir = Path(cohort_table), Path(features_dir), Path(gmm_dir)
    table = _read_cohort_table(cohort_table, classes)
    patient_ids = table["patient_id"].to_numpy(dtype=str)
    labels = table["label"].map({name: i for i, name in enumerate(classes)}).to_numpy(dtype=np.int64, copy=True)

    text_present, (text_global, text_local) = _aligned_store(Path(text_store), patient_ids, ("global", "local"))
    rna_present, (rna,) = _aligned_store(Path(rna_store), patient_ids, ("values",))

    patch_blocks: list[np.ndarray] = []
    counts = np.zeros(len(table), dtype=np.int64)
    local_tokens: dict[int, np.ndarray] = {}
    wsi_dim = n_components = None
    for i, row in enumerate(tqdm(table.itertuples(index=False), total=len(table), desc="loading slides")):
        slides = [s for s in row.slide_ids.split(",") if s] if row.has_wsi else []
        features, weights, means = [], [], []
        for slide_id in slides:
            feature_path = features_dir / f"{slide_id}.zarr"
            gmm_path = gmm_dir / f"{slide_id}.zarr"
            slide_features = np.asarray(open_store(feature_path)["features"][...], dtype=np.float16)
            if len(slide_features) == 0:  # no tissue patch: the slide adds nothing (the patient may have others)
                log.warning("slide %s of patient %s has no patches (%s); skipped", slide_id, row.patient_id, feature_path)
                continue
            gmm = open_store(gmm_path)
            features.append(slide_features)
            weights.append(np.asarray(gmm["weights"][...], dtype=np.float64))
            means.append(np.asarray(gmm["means"][...], dtype=np.float32))
        if features:
            n_components = n_components or means[0].shape[0]
            wsi_dim = wsi_dim or features[0].shape[1]
            patch_blocks.append(np.concatenate(features))
            counts[i] = len(patch_blocks[-1])
            local_tokens[i] = merge_slide_components(weights, means, [len(f) for f in features], n_components)
    if wsi_dim is None:
        raise ValueError(f"{cohort_table}: no patient has a slide with features; the WSI modality is required")

    wsi_local = np.zeros((len(table), n_components, wsi_dim), dtype=np.float32)
    for i, tokens in local_tokens.items():
        wsi_local[i] = tokens
    available = np.stack([counts > 0, table["has_rna"].to_numpy() & rna_present, table["has_text"].to_numpy() & text_present], 1)
    for name, flag, store_flag in (("rna", "has_rna", rna_present), ("text", "has_text", text_present)):
        disagree = patient_ids[table[flag].to_numpy() != store_flag]
        if len(disagree):
            log.warning("%s: %s flag and %s store disagree for %s; treated as missing", cohort_table, flag, name, list(disagree))
    data = CohortData(
        patient_ids=patient_ids,
        labels=labels,
        classes=list(classes),
        available=available,
        patches=np.concatenate(patch_blocks),
        patch_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        wsi_local=wsi_local,
        rna=rna,
        text_global=text_global,
        text_local=text_local,
    )
    usable = available.any(axis=1)
    if not usable.all():
        log.warning(
            "%s: patients %s have no modality at all and cannot be classified; every model leaves them out",
            cohort_table, list(patient_ids[~usable]),
        )  # fmt: skip
        data = data.subset(np.flatnonzero(usable))
        data.excluded = list(patient_ids[~usable])
    return data


# ----------------------------------------------------------------------------------------------------------------
# Folds, validation split, masks
# ----------------------------------------------------------------------------------------------------------------


def draw_missing_masks(available: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Which modalities each patient shows (N, 3) when each is dropped with probability ``rate``.

    As in the paper, draws are repeated for a patient until at least one modality is left and WSI and RNA are not
    both gone (when the patient really has either). Modalities the patient really lacks stay absent.
    """
    available = np.asarray(available, dtype=bool)
    if rate == 0:
        return available.copy()
    has_wsi_or_rna = available[:, 0] | available[:, 1]
    shown = np.zeros_like(available)
    pending = np.arange(len(available))
    while len(pending):
        candidate = available[pending] & (rng.random((len(pending), 3)) >= rate)
        valid = candidate.any(axis=1) & (candidate[:, 0] | candidate[:, 1] | ~has_wsi_or_rna[pending])
        shown[pending[valid]] = candidate[valid]
        pending = pending[~valid]
    return shown


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One missing-modality scenario: ``complete``, ``masked_train`` or ``masked_train_test`` at a missing rate."""

    name: str
    train_rate: float
    test_rate: float

    @property
    def slug(self) -> str:
        """Directory name: ``complete``, ``masked_train-0.3``, ``masked_train_test-0.3``."""
        return self.name if self.name == "complete" else f"{self.name}-{self.train_rate:g}"


def scenarios(missing_rates: Sequence[float]) -> list[Scenario]:
    """Complete, then masked train / complete test and masked train / masked test for each rate."""
    out = [Scenario("complete", 0.0, 0.0)]
    for rate in missing_rates:
        out += [Scenario("masked_train", rate, 0.0), Scenario("masked_train_test", rate, rate)]
    return out


@dataclasses.dataclass(frozen=True)
class EvaluationPlan:
    """The models and scenarios a cohort can be evaluated with, and why the others are not run."""

    models: list[str]
    scenarios: list[Scenario]
    skipped: dict[str, str]  # model name or scenario slug -> reason, for the log and metrics.md


def plan_evaluation(available: np.ndarray, models: Sequence[str], missing_rates: Sequence[float]) -> EvaluationPlan:
    """Drop the models whose only input no patient has, and the masked scenarios when masking can drop nothing
    (no patient has two modalities, and at least one is always kept)."""
    available = np.asarray(available, dtype=bool)
    in_cohort = available.any(axis=0)
    skipped: dict[str, str] = {}
    run_models = []
    for name in models:
        required = SINGLE_MODALITY_MODELS.get(name)
        if required is not None and not in_cohort[required]:
            skipped[name] = f"reads only {MODALITY_TITLES[required]}, which no patient of the cohort has"
        else:
            run_models.append(name)
    run_scenarios = scenarios(missing_rates)
    if missing_rates and not (available.sum(axis=1) >= 2).any():
        for scenario in run_scenarios[1:]:
            skipped[scenario.slug] = "no patient has two modalities, so masking drops nothing: it equals complete"
        run_scenarios = run_scenarios[:1]
    return EvaluationPlan(run_models, run_scenarios, skipped)


def scenario_presence(
    available: np.ndarray, folds: np.ndarray, fold: int, missing_rates: Sequence[float], seed: int
) -> dict[Scenario, np.ndarray]:
    """Modalities shown (N, 3) to every patient in each scenario of one fold; one draw per fold, rate and side."""
    test = folds == fold
    presence = {}
    for rate_index, rate in enumerate(missing_rates):
        train_rng, test_rng = (np.random.default_rng(derived_seed(seed, fold, rate_index, side)) for side in (0, 1))
        train_shown = draw_missing_masks(available[~test], rate, train_rng)
        test_shown = draw_missing_masks(available[test], rate, test_rng)
        for scenario, test_values in (
            (Scenario("masked_train", rate, 0.0), available[test]),
            (Scenario("masked_train_test", rate, rate), test_shown),
        ):
            shown = np.empty_like(available)
            shown[~test], shown[test] = train_shown, test_values
            presence[scenario] = shown
    return {Scenario("complete", 0.0, 0.0): available.copy(), **presence}


# ----------------------------------------------------------------------------------------------------------------
# Normalisation (fitted on the training part of a fold only)
# ----------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Normalisation:
    """Per-feature mean and std of every input, fitted on the training part of one fold."""

    patches: tuple[np.ndarray, np.ndarray]
    wsi_local: tuple[np.ndarray, np.ndarray]
    rna: tuple[np.ndarray, np.ndarray]
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


def fit_normalisation(data: CohortData, fit_index: np.ndarray) -> Normalisation:
    """z-score statistics from the patients in ``fit_index`` that really have each modality."""
    fit_index = np.asarray(fit_index)
    wsi, rna, text = (fit_index[data.available[fit_index, m]] for m in range(3))
    patch_rows = np.concatenate(
        [np.arange(data.patch_offsets[i], data.patch_offsets[i + 1]) for i in wsi] or [np.zeros(0, np.int64)]
    )
    dw, dt = data.patches.shape[1], data.text_global.shape[1]
    return Normalisation(
        patches=_moments(data.patches[patch_rows], dw),
        wsi_local=_moments(data.wsi_local[wsi], dw),
        rna=_moments(data.rna[rna], data.rna.shape[1]),
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
        rna=normalised(data.rna, stats.rna, 1),
        text_global=normalised(data.text_global, stats.text_global, 2),
        text_local=normalised(data.text_local, stats.text_local, 2),
        labels=torch.from_numpy(data.labels),
        available=torch.from_numpy(data.available),
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
    patches = tensors.patches[rows.clamp(min=0)].float()
    patches = (patches - tensors.patch_mean) / tensors.patch_std
    patches = patches * patch_mask[..., None]
    wsi, rna, text = (present[:, m : m + 1].float() for m in range(3))
    return {
        "wsi_patches": patches,
        "wsi_patch_mask": patch_mask,
        "wsi_local": tensors.wsi_local[index] * wsi[..., None],
        "rna": tensors.rna[index] * rna,
        "text_global": tensors.text_global[index] * text,
        "text_local": tensors.text_local[index] * text[..., None],
        "present": present,
        "label": tensors.labels[index],
    }


# ----------------------------------------------------------------------------------------------------------------
# Training one model
# ----------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainResult:
    state_dict: dict[str, torch.Tensor]
    history: pd.DataFrame  # epoch, lr, train loss terms, val_auc, val_loss, selected
    best_epoch: int


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up to 1 over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def predict_probabilities(
    model: torch.nn.Module,
    tensors: FoldTensors,
    index: np.ndarray,
    shown: torch.Tensor,
    batch_size: int,
    device: torch.device,
    prior: np.ndarray,
    required_modality: int | None,
) -> np.ndarray:
    """Class probabilities (len(index), K); ``prior`` for patients lacking a single-modality model's input."""
    model.eval()
    out = []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for chunk in np.array_split(np.asarray(index), max(1, math.ceil(len(index) / batch_size))):
            batch = _to_device(make_batch(tensors, torch.from_numpy(chunk), shown, None, None), device)
            out.append(torch.softmax(model(batch)["logits"].float(), dim=-1).cpu().numpy())
    probabilities = np.concatenate(out).astype(np.float64)
    if required_modality is not None:
        blind = ~shown[torch.from_numpy(np.asarray(index)), required_modality].numpy()
        probabilities[blind] = prior
    return probabilities


def _selection_key(val_auc: float, val_loss: float) -> tuple[float, float]:
    return (val_auc if np.isfinite(val_auc) else -np.inf, -val_loss)


def train_model(
    model: torch.nn.Module,
    tensors: FoldTensors,
    fit_index: np.ndarray,
    val_index: np.ndarray,
    shown: torch.Tensor,
    train_config: dict[str, Any],
    device: torch.device,
    seed: int,
    prior: np.ndarray,
    required_modality: int | None = None,
) -> TrainResult:
    """AdamW with warm-up + cosine, selecting the epoch with the best validation AUC (ties: lower val loss)."""
    generator = torch.Generator().manual_seed(seed)
    if required_modality is not None:  # a patient without the model's only input teaches it nothing
        fit_index = fit_index[shown[torch.from_numpy(fit_index), required_modality].numpy()]
    model.to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=train_config["lr"], weight_decay=train_config["weight_decay"])
    epochs, batch_size = train_config["epochs"], train_config["batch_size"]
    steps_per_epoch = max(1, math.ceil(len(fit_index) / batch_size))
    warmup_steps = train_config["warmup_epochs"] * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: lr_factor(step, warmup_steps, epochs * steps_per_epoch)
    )
    patience = train_config.get("patience")
    val_labels = tensors.labels[torch.from_numpy(val_index)].numpy()
    best_key, best_state, best_epoch, rows = None, None, 0, []
    for epoch in range(epochs):
        model.train()
        order = torch.from_numpy(fit_index)[torch.randperm(len(fit_index), generator=generator)]
        terms: dict[str, float] = {}
        lr = optimiser.param_groups[0]["lr"]
        # Near-equal batches: no batch of one patient for the contrastive terms.
        for batch_index in torch.tensor_split(order, steps_per_epoch):
            batch = _to_device(
                make_batch(tensors, batch_index, shown, train_config["patches_per_step"], generator), device
            )
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                outputs = model(batch)
                total, parts = model.compute_loss(batch, outputs, epoch)
            optimiser.zero_grad(set_to_none=True)
            total.backward()
            optimiser.step()
            scheduler.step()
            # ``loss`` is the total; a model's own "total" entry would repeat it.
            named = {"loss": float(total.detach()), **{k: v for k, v in parts.items() if k != "total"}}
            for name, value in named.items():
                terms[name] = terms.get(name, 0.0) + float(value) / steps_per_epoch
        probabilities = predict_probabilities(
            model, tensors, val_index, shown, batch_size, device, prior, required_modality
        )
        val_auc = auc_score(val_labels, probabilities)
        val_loss = float(-np.mean(np.log(np.clip(probabilities[np.arange(len(val_labels)), val_labels], 1e-12, None))))
        rows.append({"epoch": epoch, "lr": lr, **terms, "val_auc": val_auc, "val_loss": val_loss})
        key = _selection_key(val_auc, val_loss)
        if best_key is None or key > best_key:
            best_key, best_epoch = key, epoch
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        elif patience is not None and epoch - best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    history = pd.DataFrame(rows)
    history["selected"] = history["epoch"] == best_epoch
    return TrainResult(state_dict=best_state, history=history, best_epoch=best_epoch)


# ----------------------------------------------------------------------------------------------------------------
# Cross-validation of every model in every scenario
# ----------------------------------------------------------------------------------------------------------------


def resolve_device() -> torch.device:
    """CUDA when present (with bf16 autocast), CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_deterministic(device: torch.device) -> None:
    """Deterministic CUDA kernels where torch has them (warns, never fails, where it has none).

    The CPU kernels used here are deterministic already, and the switch costs seconds of imports, so CPU skips it.
    """
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def model_dims(data: CohortData, train_config: dict[str, Any]) -> Any:
    """The model package's ``ModelDims`` for this cohort's inputs; size 0 for a modality no patient has."""
    from mosare.model import ModelDims

    sizes = {"hidden": train_config["hidden"]} if "hidden" in train_config else {}
    in_cohort = data.available.any(axis=0)
    return ModelDims(
        wsi_dim=data.patches.shape[1],
        rna_genes=data.rna.shape[1] if in_cohort[1] else 0,
        text_dim=data.text_global.shape[1] if in_cohort[2] else 0,
        local_tokens=data.wsi_local.shape[1],
        **sizes,
    )


ModelFactory = Callable[[str, Any, int, dict[str, Any]], torch.nn.Module]


def _write_tsv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_file(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What every (fold, scenario) unit shares besides the cohort data (picklable for worker processes)."""

    folds: np.ndarray
    train_config: dict[str, Any]
    cohort: str
    train_dir: Path
    device: str
    build: ModelFactory
    dims: Any


def fold_parts(data: CohortData, context: RunContext, fold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fit, validation, test) patient indices of a fold."""
    fit_index, val_index = fold_validation_split(context.folds, fold, data.labels, context.train_config)
    return fit_index, val_index, np.flatnonzero(context.folds == fold)


def run_unit(
    data: CohortData, context: RunContext, fold: int, scenario: Scenario, progress: bool = True
) -> tuple[list[dict[str, Any]], list[pd.DataFrame]]:
    """Train and test every model in one scenario of one fold; write the per-fold outputs.

    Returns the metric rows and the test predictions (with key columns) for the ROC figure. Everything random is
    seeded from (seed, fold[, model]), so a unit gives the same result in any process and in any order.
    """
    config, seed = context.train_config, context.train_config["seed"]
    device = torch.device(context.device)
    fit_index, val_index, test_index = fold_parts(data, context, fold)
    tensors = fold_tensors(
        data, fit_normalisation(data, fit_index), eval_patch_rows(data, config["patches_per_step"], seed)
    )
    training_labels = data.labels[context.folds != fold]
    prior = np.bincount(training_labels, minlength=len(data.classes)) / len(training_labels)
    shown = torch.from_numpy(scenario_presence(data.available, context.folds, fold, config["missing_rates"], seed)[scenario])
    keys = {
        "cohort": context.cohort,
        "scenario": scenario.name,
        "train_missing_rate": scenario.train_rate,
        "test_missing_rate": scenario.test_rate,
    }
    metric_rows, predictions = [], []
    for model_name in tqdm(config["models"], desc=f"fold {fold}, {scenario.slug}", disable=not progress):
        required = SINGLE_MODALITY_MODELS.get(model_name)
        row_keys = {**keys, "model": model_name}
        if required is not None and not shown[torch.from_numpy(fit_index), required].any():
            log.warning(
                "%s: %s, fold %d, %s: no training patient shows %s; not trained, fold left out of its metrics",
                context.cohort, model_name, fold, scenario.slug, MODALITY_TITLES[required],
            )  # fmt: skip
            metric_rows.append({**row_keys, "fold": fold, **dict.fromkeys(METRICS, float("nan"))})
            continue
        # A model starts from the same weights in every scenario of a fold.
        torch.manual_seed(derived_seed(seed, fold, 2))
        model = context.build(model_name, context.dims, len(data.classes), config)
        result = train_model(
            model, tensors, fit_index, val_index, shown, config, device, derived_seed(seed, fold, 3), prior, required
        )
        probabilities = predict_probabilities(
            model, tensors, test_index, shown, config["batch_size"], device, prior, required
        )
        metric_rows.append(
            {**row_keys, "fold": fold, **classification_metrics(data.labels[test_index], probabilities)}
        )
        frame = pd.DataFrame(
            {"patient_id": data.patient_ids[test_index], "label": np.array(data.classes)[data.labels[test_index]]}
        )
        for k, name in enumerate(data.classes):
            frame[f"prob_{name}"] = probabilities[:, k]
        fold_dir = context.train_dir / model_name / scenario.slug / f"fold{fold}"
        _write_tsv(frame, fold_dir / "predictions.tsv")
        _write_tsv(result.history, fold_dir / "history.tsv")
        with atomic_file(fold_dir / "checkpoint.pt") as tmp:
            torch.save(result.state_dict, tmp)
        predictions.append(frame.assign(**row_keys, fold=fold))
    return metric_rows, predictions


_WORKER: dict[str, Any] = {}


def _start_worker(data: CohortData, context: RunContext) -> None:
    torch.set_num_threads(1)  # one process per core beats intra-op threads on these small models
    _WORKER.update(data=data, context=context)


def _run_unit_in_worker(fold: int, scenario: Scenario) -> tuple[list[dict[str, Any]], list[pd.DataFrame]]:
    return run_unit(_WORKER["data"], _WORKER["context"], fold, scenario, progress=False)


def splits_table(data: CohortData, folds: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {"patient_id": data.patient_ids, "label": np.array(data.classes)[data.labels], "fold": folds}
    )


def cross_validate(
    data: CohortData,
    train_config: dict[str, Any],
    cohort: str,
    train_dir: str | Path,
    device: torch.device | None = None,
    build: ModelFactory | None = None,
    dims: Any = None,
    workers: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every model x scenario x fold; returns (splits, per-fold metrics, pooled test predictions).

    Per-fold outputs go to ``train_dir/{model}/{scenario}/fold{k}/``: ``predictions.tsv``, ``history.tsv``
    (loss terms, validation AUC and loss per epoch), ``checkpoint.pt`` (the selected epoch's ``state_dict``).
    ``build`` and ``dims`` default to ``mosare.model.build_model`` and the cohort's ``ModelDims``. With
    ``workers`` > 1 on the CPU, (fold, scenario) units run in that many single-threaded processes (``build``
    must then be picklable); results do not depend on the number of workers. Models and scenarios the cohort
    cannot run (:func:`plan_evaluation`) are skipped with a log line and have no rows.
    """
    if build is None:
        from mosare.model import build_model as build
    device = device or resolve_device()
    make_deterministic(device)
    plan = plan_evaluation(data.available, train_config["models"], train_config["missing_rates"])
    for name, reason in plan.skipped.items():
        log.warning("%s: %s skipped: %s", cohort, name, reason)
    if not plan.models:
        raise ValueError(
            f"{cohort}: none of train.models {list(train_config['models'])} can run on this cohort "
            f"({'; '.join(f'{m} {r}' for m, r in plan.skipped.items())}); add abmil or a fusion model to train.models"
        )
    folds = check_cohort_splits(cohort, data.patient_ids, data.labels, train_config)
    context = RunContext(
        folds=folds,
        train_config={**train_config, "models": plan.models},  # the models this cohort can run
        cohort=cohort,
        train_dir=Path(train_dir),
        device=str(device),
        build=build,
        dims=dims if dims is not None else model_dims(data, train_config),
    )
    units = [(fold, scenario) for fold in range(train_config["folds"]) for scenario in plan.scenarios]
    if workers > 1 and device.type == "cpu":
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=min(workers, len(units)),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(data, context),
        ) as pool:
            futures = [pool.submit(_run_unit_in_worker, fold, scenario) for fold, scenario in units]
            for _ in tqdm(concurrent.futures.as_completed(futures), total=len(futures), desc="fold x scenario"):
                pass
            results = [future.result() for future in futures]
    else:
        results = [run_unit(data, context, fold, scenario) for fold, scenario in units]
    metric_rows = [row for rows, _ in results for row in rows]
    predictions = [frame for _, frames in results for frame in frames]
    return splits_table(data, folds), pd.DataFrame(metric_rows), pd.concat(predictions, ignore_index=True)


def write_results(
    splits: pd.DataFrame,
    fold_metrics: pd.DataFrame,
    predictions: pd.DataFrame,
    train_config: dict[str, Any],
    train_dir: str | Path,
    outputs: dict[str, str | Path],
    excluded: Sequence[str] = (),
    skipped: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Write splits.tsv, metrics.tsv, metrics.md and the figures (ROC, training curves); return the metrics table.

    ``excluded``: patients no model could classify (no modality at all), named in metrics.md. ``skipped``: models
    and scenarios not run (:attr:`EvaluationPlan.skipped`), named with their reason in metrics.md; they have no rows
    in ``fold_metrics`` and so none in metrics.tsv or the figures."""
    from mosare.plots.training import plot_history_grid, plot_model_curves, plot_roc

    train_dir = Path(train_dir)
    table = summarise_folds(fold_metrics, train_config["folds"])
    _write_tsv(splits, Path(outputs["splits"]))
    _write_tsv(table, Path(outputs["metrics"]))
    markdown = metrics_markdown(table, "auc", train_config["models"])
    if skipped:
        markdown += "\nNot run on this cohort:\n\n" + "".join(f"- {name}: {why}\n" for name, why in skipped.items())
    if excluded:
        markdown += f"\nLeft out of every model (no modality at all): {', '.join(excluded)}.\n"
    with atomic_file(outputs["summary"]) as tmp:
        tmp.write_text(markdown, encoding="utf-8")
    histories = _read_histories(train_dir, train_config)
    for model_name in train_config["models"]:
        per_scenario = {slug: per_fold for (name, slug), per_fold in histories.items() if name == model_name}
        if per_scenario:
            plot_model_curves(per_scenario, model_name, train_dir / model_name / "curves.png")
    trained = [m for m in train_config["models"] if m in set(fold_metrics["model"])]
    panel_keys = [key for key in _overview_panels(trained, train_config["missing_rates"]) if key in histories]
    plot_history_grid({f"{m}, {s}": histories[(m, s)] for m, s in panel_keys}, Path(outputs["training_curves"]))
    complete = predictions[predictions["scenario"] == "complete"]
    plot_roc(complete, [c for c in predictions.columns if c.startswith("prob_")], Path(outputs["roc"]))
    return table


def _read_histories(train_dir: Path, train_config: dict[str, Any]) -> dict[tuple[str, str], dict[int, pd.DataFrame]]:
    out: dict[tuple[str, str], dict[int, pd.DataFrame]] = {}
    for model_name in train_config["models"]:
        for scenario in scenarios(train_config["missing_rates"]):
            per_fold = {}
            for fold in range(train_config["folds"]):
                path = train_dir / model_name / scenario.slug / f"fold{fold}" / "history.tsv"
                if path.exists():
                    per_fold[fold] = pd.read_csv(path, sep="\t")
            if per_fold:
                out[(model_name, scenario.slug)] = per_fold
    return out


def _overview_panels(models: Sequence[str], missing_rates: Sequence[float]) -> list[tuple[str, str]]:
    """MoSARe (or the first model run) in the complete scenario and in masked train/test at the highest rate."""
    model_name = "mosare" if "mosare" in models else models[0]
    panels = [(model_name, "complete")]
    if missing_rates:
        panels.append((model_name, Scenario("masked_train_test", max(missing_rates), 0).slug))
    return panels




def train_and_evaluate(
    cohort: str,
    classes: Sequence[str],
    train_config: dict[str, Any],
    inputs: dict[str, str | Path],
    outputs: dict[str, str | Path],
    threads: int,
) -> pd.DataFrame:
    """The whole training stage of one cohort: load the stores, cross-validate every model in every scenario,
    write the tables and figures. ``inputs``: cohort_table, features_dir, gmm_dir, text, rna; ``outputs``:
    splits, metrics, summary, train_dir, roc, training_curves. Returns the metrics table."""
    data = load_cohort_data(
        inputs["cohort_table"], inputs["features_dir"], inputs["gmm_dir"], inputs["text"], inputs["rna"], classes
    )
    device = resolve_device()
    cores = usable_cores(threads)
    plan = plan_evaluation(data.available, train_config["models"], train_config["missing_rates"])
    log.info(
        "%s: %d patients (%d with WSI, %d RNA, %d report), %d models x %d scenarios x %d folds on %s, %d worker(s)",
        cohort, data.n_patients, *data.available.sum(axis=0), len(plan.models),
        len(plan.scenarios), train_config["folds"], device, cores,
    )  # fmt: skip
    torch.set_num_threads(cores)
    splits, fold_metrics, predictions = cross_validate(
        data, train_config, cohort, outputs["train_dir"], device, workers=cores
    )
    return write_results(
        splits, fold_metrics, predictions, train_config, outputs["train_dir"], outputs, data.excluded, plan.skipped
    )
