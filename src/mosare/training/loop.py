"""Training one model on one fold: AdamW with warm-up + cosine, epoch chosen on the validation split."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import torch

from mosare.evaluation.metrics import auc_score
from mosare.training.fold_inputs import FoldTensors, make_batch


@runtime_checkable
class LossComputing(Protocol):
    """What training needs of a model beyond ``nn.Module``: its own loss (every model of ``mosare.model`` has one)."""

    def compute_loss(
        self, batch: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor], epoch: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The total training loss and its terms (floats, for the history)."""
        ...


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
    validation: Callable[[torch.nn.Module], tuple[float, float]] | None = None,
) -> TrainResult:
    """AdamW with warm-up + cosine, selecting the epoch with the best validation AUC (ties: lower val loss).

    ``validation`` (a survival cohort): ``model -> (score, loss)`` on the validation patients, higher score better
    (the C-index), in place of the AUC and cross-entropy; the history then has ``val_c_index`` for ``val_auc``."""
    if not isinstance(model, LossComputing):
        raise TypeError(f"{type(model).__name__} has no compute_loss(batch, outputs, epoch): it cannot be trained here")
    generator = torch.Generator().manual_seed(seed)
    if required_modality is not None:  # a patient without the model's only input teaches it nothing
        fit_index = fit_index[shown[torch.from_numpy(fit_index), required_modality].numpy()]
    model.to(device)
    # foreach: one fused update over all parameters; torch picks it only on CUDA, and the per-tensor loop was a fifth
    # of a demo training on the CPU (hundreds of small tensors).
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=train_config["lr"], weight_decay=train_config["weight_decay"], foreach=True
    )
    epochs, batch_size = train_config["epochs"], train_config["batch_size"]
    steps_per_epoch = max(1, math.ceil(len(fit_index) / batch_size))
    warmup_steps = train_config["warmup_epochs"] * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: lr_factor(step, warmup_steps, epochs * steps_per_epoch)
    )
    patience = train_config.get("patience")
    val_labels = tensors.labels[torch.from_numpy(val_index)].numpy()
    best_key: tuple[float, float] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch, rows = 0, []
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
        if validation is None:
            probabilities = predict_probabilities(
                model, tensors, val_index, shown, batch_size, device, prior, required_modality
            )
            val_auc = auc_score(val_labels, probabilities)
            val_loss = float(
                -np.mean(np.log(np.clip(probabilities[np.arange(len(val_labels)), val_labels], 1e-12, None)))
            )
            rows.append({"epoch": epoch, "lr": lr, **terms, "val_auc": val_auc, "val_loss": val_loss})
        else:
            val_auc, val_loss = validation(model)
            rows.append({"epoch": epoch, "lr": lr, **terms, "val_c_index": val_auc, "val_loss": val_loss})
        key = _selection_key(val_auc, val_loss)
        if best_key is None or key > best_key:
            best_key, best_epoch = key, epoch
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        elif patience is not None and epoch - best_epoch >= patience:
            break
    if best_state is None:
        raise ValueError(f"train.epochs must be at least 1, got {epochs}")
    model.load_state_dict(best_state)
    history = pd.DataFrame(rows)
    history["selected"] = history["epoch"] == best_epoch
    return TrainResult(state_dict=best_state, history=history, best_epoch=best_epoch)
