"""Training curves (loss terms, validation AUC per epoch) and ROC curves of the cross-validated models."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from mosare.evaluation.scenarios import MNARSetting, scenarios
from mosare.reporting.plots import save_png

HISTORY_COLUMNS = {"epoch", "lr", "loss", "val_auc", "val_loss", "selected"}
ROC_MODELS = ("mosare", "late_fusion", "abmil", "rna_mlp", "report_mlp")


def _draw_history(axes: Sequence[plt.Axes], per_fold: Mapping[int, pd.DataFrame], title: str) -> None:
    """Three panels: total training loss per fold; each loss term (mean over folds); validation AUC per fold."""
    total, terms, auc = axes
    for fold, history in sorted(per_fold.items()):
        total.plot(history["epoch"], history["loss"], lw=1, label=f"fold {fold}")
        line = auc.plot(history["epoch"], history["val_auc"], lw=1)[0]
        chosen = history[history["selected"]]
        auc.scatter(chosen["epoch"], chosen["val_auc"], color=line.get_color(), marker="o", s=18, zorder=3)
    stacked = pd.concat(per_fold.values())
    mean_terms = stacked.groupby("epoch")[[c for c in stacked.columns if c not in HISTORY_COLUMNS]].mean()
    for name in mean_terms.columns:
        terms.plot(mean_terms.index, mean_terms[name], lw=1.2, label=name)
    total.set(title=f"{title}: training loss", xlabel="epoch", ylabel="loss")
    terms.set(title="loss terms (mean over folds)", xlabel="epoch")
    auc.set(title="validation AUC (dot: selected epoch)", xlabel="epoch", ylabel="AUC", ylim=(-0.02, 1.02))
    total.legend(fontsize=6)
    if len(mean_terms.columns):
        terms.legend(fontsize=6)


def read_histories(scenario_dir: Path) -> dict[int, pd.DataFrame]:
    """The first repeat's, first mask draw's training history of every fold under one model's scenario folder."""
    return {
        int(path.parent.name.removeprefix("fold")): pd.read_csv(path, sep="\t")
        for path in sorted(scenario_dir.glob("fold*/history.tsv"))
    }


def draw_model_curves(train_dir: str | Path, train_config: Mapping[str, Any]) -> None:
    """``train/{model}/curves.png`` for every model trained: its training curves in every scenario it ran."""
    slugs = [
        s.slug for s in scenarios(train_config["missing_rates"], MNARSetting.from_config(train_config.get("mnar")))
    ]
    for model_name in train_config["models"]:
        per_scenario = {slug: read_histories(Path(train_dir) / model_name / slug) for slug in slugs}
        per_scenario = {slug: histories for slug, histories in per_scenario.items() if histories}
        if per_scenario:
            plot_model_curves(per_scenario, model_name, Path(train_dir) / model_name / "curves.png")


def plot_model_curves(per_scenario: Mapping[str, Mapping[int, pd.DataFrame]], title: str, path: str | Path) -> None:
    """One model in every scenario: training loss and validation AUC per epoch, each averaged over folds.

    (Two panels per model keep the 8-model x 5-scenario demo's figures to seconds; the per-fold numbers are in
    each fold's ``history.tsv``.)
    """
    figure, (loss, auc) = plt.subplots(1, 2, figsize=(9, 3.2))
    score, name = "val_auc", "AUC"
    for slug, per_fold in per_scenario.items():
        histories = pd.concat(per_fold.values())
        if "val_auc" not in histories.columns:  # a survival cohort's models: validation Harrell's C
            score, name = "val_c_index", "C-index"
        mean = histories.groupby("epoch")[["loss", score]].mean()
        loss.plot(mean.index, mean["loss"], lw=1.2, label=slug)
        auc.plot(mean.index, mean[score], lw=1.2, label=slug)
    loss.set(title=f"{title}: training loss (mean over folds)", xlabel="epoch", ylabel="loss")
    auc.set(title=f"validation {name} (mean over folds)", xlabel="epoch", ylabel=name, ylim=(-0.02, 1.02))
    auc.legend(fontsize=6)
    figure.tight_layout()
    save_png(figure, path, dpi=90)


def plot_history_grid(panels: Mapping[str, Mapping[int, pd.DataFrame]], path: str | Path) -> None:
    """One row per (model, scenario) label: training loss per fold, loss terms (mean over folds), validation AUC
    per fold with the selected epoch marked."""
    rows = max(len(panels), 1)
    figure, axes = plt.subplots(rows, 3, figsize=(12, 3.2 * rows), squeeze=False)
    for row, (title, per_fold) in zip(axes, panels.items()):
        _draw_history(row, per_fold, title)
    figure.tight_layout()
    save_png(figure, path, dpi=90)


def plot_roc(
    predictions: pd.DataFrame, probability_columns: Sequence[str], path: str | Path, title: str | None = None
) -> None:
    """ROC of each model's test predictions pooled over folds (two classes: the second class is positive;
    more classes: micro-average one-vs-rest). ``predictions`` has ``model``, ``label`` and the probability columns."""
    classes = [c.removeprefix("prob_") for c in probability_columns]
    figure, axis = plt.subplots(figsize=(4.6, 4.4))
    models = [m for m in ROC_MODELS if m in set(predictions["model"])] or sorted(set(predictions["model"]))
    for model_name in models:
        rows = predictions[predictions["model"] == model_name]
        onehot = (rows["label"].to_numpy()[:, None] == np.array(classes)[None, :]).astype(int)
        probabilities = rows[list(probability_columns)].to_numpy(dtype=float)
        if len(classes) == 2:
            truth, score = onehot[:, 1], probabilities[:, 1]
        else:
            truth, score = onehot.ravel(), probabilities.ravel()
        if truth.min() == truth.max():
            continue
        fpr, tpr, _ = roc_curve(truth, score)
        axis.plot(
            fpr,
            tpr,
            lw=2 if model_name == "mosare" else 1.2,
            label=f"{model_name} (AUC {roc_auc_score(truth, score):.3f})",
        )
    axis.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    positive = classes[1] if len(classes) == 2 else "micro-average"
    title = title or f"complete data, test folds pooled ({positive})"
    axis.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    save_png(figure, path, dpi=90)


def plot_external_roc(predictions: pd.DataFrame, classes: Sequence[str], path: Path) -> None:
    """ROC curves of every deployed model on the target patients that have a label (external validation)."""
    labelled = predictions[predictions["label"] != ""].assign(scenario="complete")
    plot_roc(labelled, [f"prob_{c}" for c in classes], path, title="external validation")
