"""Apply a cohort's saved final models to another cohort: predictions for new patients, and external validation
when the target cohort has labels (a classification cohort's) or times and events (a survival cohort's).

The target's inputs must be made as the model's were (:func:`mosare.training.final_models.load_final_model` refuses
otherwise). Its RNA columns are matched to the model's genes by id: genes the target lacks are an error listing them,
unless ``deploy.missing_genes: zero``, which sets them to the training mean (z-score 0) and counts them in the output.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mosare.cohort.data import CohortData, CohortInputs
from mosare.core.atomic_files import write_tsv
from mosare.core.modalities import MODALITIES
from mosare.evaluation.evidence import auc_with_interval
from mosare.evaluation.metrics import METRICS, classification_metrics
from mosare.evaluation.splits import derived_seed
from mosare.evaluation.survival_columns import (
    RISK_CUTOFF,
    RISK_GROUP,
    RISK_GROUPS,
    horizon_columns,
    horizon_name,
    survival_columns,
)
from mosare.evaluation.survival_metrics import survival_array
from mosare.features.rna_store import RNAStore
from mosare.model.specs import single_modality_models
from mosare.training.final_models import InputFacts, LoadedModel, load_final_model
from mosare.training.fold_inputs import eval_patch_rows, fold_tensors
from mosare.training.loop import predict_probabilities

log = logging.getLogger(__name__)


class MissingGenesError(ValueError):
    """The target's RNA matrix lacks genes the model reads; the message lists them and the option."""


def align_rna(
    data: CohortData, target_genes: Sequence[str], model_genes: Sequence[str], missing_genes: str, model_dir: Path
) -> tuple[CohortData, int]:
    """``data`` with its RNA columns in the model's gene order; returns it and how many genes were zero-filled.

    A zero-filled gene takes the value whose z-score is 0 once normalised (the model's training mean), set later by
    :func:`deploy_model` through the normalisation; here its column holds NaN as a marker."""
    if not model_genes:
        return data, 0
    column_of = {gene: i for i, gene in enumerate(target_genes)}
    absent = [gene for gene in model_genes if gene not in column_of]
    if absent and missing_genes != "zero" and data.available[:, 1].any():
        raise MissingGenesError(
            f"the target's RNA matrix lacks {len(absent)} of the {len(model_genes)} genes model {model_dir} reads: "
            f"{', '.join(absent[:20])}{' ...' if len(absent) > 20 else ''}; supply them, or set "
            "deploy.missing_genes: zero to use the training mean for them (counted in predictions.tsv)"
        )
    aligned = np.full((data.n_patients, len(model_genes)), np.nan, dtype=np.float32)
    for j, gene in enumerate(model_genes):
        if gene in column_of:
            aligned[:, j] = data.rna[:, column_of[gene]]
    return dataclasses.replace(data, rna=aligned), len(absent)


def _model_inputs(loaded: LoadedModel, data: CohortData) -> tuple[Any, torch.Tensor, int | None]:
    """(tensors normalised by the model's statistics, what each patient shows, the modality a single-modality model
    needs) of RNA-aligned ``data``; a zero-filled gene takes the model's training mean."""
    stats = dataclasses.replace(loaded.normalisation, rna_genes=np.arange(data.rna.shape[1]))
    rna = np.where(np.isnan(data.rna), stats.rna[0][None, :], data.rna) if data.rna.size else data.rna
    data = dataclasses.replace(data, rna=rna.astype(np.float32))
    tensors = fold_tensors(
        data, stats, eval_patch_rows(data, int(loaded.facts.hparams["patches_per_step"]), derived_seed(0, 7))
    )
    return tensors, torch.from_numpy(data.available), single_modality_models().get(loaded.facts.model)


def _modalities_used(available: np.ndarray, required: int | None) -> list[str]:
    used = available if required is None else available & (np.arange(3) == required)
    return ["+".join(m for m, on in zip(MODALITIES, row) if on) or "none" for row in used]


def deploy_model(loaded: LoadedModel, data: CohortData, batch_size: int = 32) -> pd.DataFrame:
    """Per patient: class probabilities, predicted class, modalities used and, for MoSARe models, each modality's
    share of the predicted class's logit."""
    facts = loaded.facts
    tensors, shown, required = _model_inputs(loaded, data)
    index = np.arange(data.n_patients)
    probabilities = predict_probabilities(
        loaded.model, tensors, index, shown, batch_size, torch.device("cpu"), np.asarray(facts.class_prior), required
    )
    frame = pd.DataFrame({"model": facts.model, "patient_id": data.patient_ids})
    frame["label"] = [facts.classes[k] if k >= 0 else "" for k in data.labels]
    for k, name in enumerate(facts.classes):
        frame[f"prob_{name}"] = probabilities[:, k]
    frame["predicted"] = np.asarray(facts.classes)[probabilities.argmax(axis=1)]
    frame["modalities_used"] = _modalities_used(data.available, required)
    contributions = modality_contributions(
        loaded.model, tensors, index, shown, probabilities.argmax(axis=1), batch_size
    )
    for m, name in enumerate(MODALITIES):
        frame[f"logit_share_{name}"] = contributions[:, m]
    return frame


def deploy_survival_model(loaded: LoadedModel, data: CohortData, batch_size: int = 32) -> pd.DataFrame:
    """Per patient of a survival model: its time and event (when the target has them), risk (higher = earlier
    event), risk group by the training patients' median risk, survival at the source cohort's horizons and the
    modalities used."""
    from mosare.training.survival import SurvivalPredictor

    survival = loaded.facts.survival
    assert survival is not None
    tensors, shown, required = _model_inputs(loaded, data)
    predictor = SurvivalPredictor(
        loaded.model, tensors, batch_size, torch.device("cpu"), required, np.asarray(survival.blind_outputs),
        survival.baseline,
    )  # fmt: skip
    outputs = predictor.outputs(np.arange(data.n_patients), shown)
    risk = predictor.risk(outputs)
    frame = pd.DataFrame({"model": loaded.facts.model, "patient_id": data.patient_ids})
    if data.times is not None and data.events is not None:
        frame["time"], frame["event"] = data.times, data.events.astype(np.int64)
    frame["risk"] = risk
    frame[RISK_CUTOFF] = survival.risk_cutoff
    frame[RISK_GROUP] = np.where(risk > survival.risk_cutoff, RISK_GROUPS[1], RISK_GROUPS[0])
    horizons = np.asarray(survival.horizons)
    for column, values in zip(survival_columns(horizons), predictor.survival(outputs, horizons).T, strict=True):
        frame[column] = values
    frame["modalities_used"] = _modalities_used(data.available, required)
    return frame


def modality_contributions(
    model: torch.nn.Module, tensors, index: np.ndarray, shown: torch.Tensor, predicted: np.ndarray, batch_size: int
) -> np.ndarray:
    """(N, 3) each modality's part of the predicted class's logit (MoSARe's ``modality_logits``); NaN for models
    that do not decompose so."""
    from mosare.training.fold_inputs import make_batch

    out = np.full((len(index), 3), np.nan)
    with torch.no_grad():
        for start in range(0, len(index), batch_size):
            chunk = torch.from_numpy(index[start : start + batch_size])
            outputs = model(make_batch(tensors, chunk, shown, None, None))
            if "modality_logits" not in outputs:
                return out
            logits = outputs["modality_logits"].float().numpy()  # (B, 3, K)
            rows = np.arange(len(chunk))
            out[start : start + len(chunk)] = logits[rows, :, predicted[start : start + len(chunk)]]
    return out


def external_validation(predictions: pd.DataFrame, classes: Sequence[str], n_resamples: int, seed: int) -> pd.DataFrame:
    """Per model, on the labelled patients: every metric, and the AUC's 95% bootstrap CI."""
    rows = []
    for model, group in predictions[predictions["label"] != ""].groupby("model", sort=False):
        labels = group["label"].map({name: i for i, name in enumerate(classes)}).to_numpy()
        probabilities = group[[f"prob_{c}" for c in classes]].to_numpy(np.float64)
        values = classification_metrics(labels, probabilities)
        _, low, high = auc_with_interval(labels, probabilities, n_resamples, seed)
        for metric in METRICS:
            rows.append({"model": model, "metric": metric, "value": values[metric], "n_patients": len(group),
                         "ci_low": low if metric == "auc" else np.nan, "ci_high": high if metric == "auc" else np.nan})  # fmt: skip
    return pd.DataFrame(rows, columns=["model", "metric", "value", "n_patients", "ci_low", "ci_high"])


def external_survival_validation(predictions: pd.DataFrame, n_resamples: int, seed: int) -> pd.DataFrame:
    """Per survival model, on the target's patients: Harrell's and Uno's C with patient-level bootstrap 95% CIs and
    the time-dependent AUC at each horizon. The censoring weights (Uno's C, AUC(t)) come from the target's own
    follow-up: the source's is a different population's."""
    from mosare.evaluation.survival_metrics import harrell_c_index, time_dependent_auc, uno_c_index

    rows = []
    by_column = horizon_columns(predictions.columns)
    for model, group in predictions.groupby("model", sort=False):
        time, event = group["time"].to_numpy(np.float64), group["event"].to_numpy().astype(bool)
        risk = group["risk"].to_numpy(np.float64)
        for metric in ("harrell_c", "uno_c"):
            try:
                estimate = (
                    harrell_c_index(time, event, risk, n_resamples=n_resamples, seed=seed)
                    if metric == "harrell_c"
                    else uno_c_index(time, event, risk, survival_array(time, event), n_resamples=n_resamples, seed=seed)
                )
                value, low, high = estimate.c_index, estimate.ci_low, estimate.ci_high
            except ValueError as error:  # no comparable pair: said in the log, NaN in the table
                log.warning("%s: %s undefined on this target (%s)", model, metric, error)
                value = low = high = np.nan
            rows.append({"model": model, "metric": metric, "value": value, "n_patients": len(group),
                         "ci_low": low, "ci_high": high})  # fmt: skip
        horizons = np.asarray(list(by_column.values()))
        try:
            auc = time_dependent_auc(time, event, risk, time, event, horizons)
            values = list(auc.at(horizons))  # a horizon beyond the target's follow-up is read inside it
        except ValueError as error:
            log.warning("%s: AUC(t) undefined on this target (%s)", model, error)
            values = [np.nan] * len(horizons)
        for horizon, value in zip(by_column.values(), values, strict=True):
            rows.append({"model": model, "metric": f"td_auc@{horizon_name(horizon)}", "value": float(value),
                         "n_patients": len(group), "ci_low": np.nan, "ci_high": np.nan})  # fmt: skip
    return pd.DataFrame(rows, columns=["model", "metric", "value", "n_patients", "ci_low", "ci_high"])


def deploy_cohort(
    models_dir: str | Path,
    target: CohortInputs,
    classes: Sequence[str],
    outputs: Mapping[str, str | Path],
    missing_genes: str = "error",
    n_resamples: int = 2000,
) -> pd.DataFrame:
    """Apply every saved model under ``models_dir`` to the ``target`` cohort; write ``outputs["predictions"]`` and
    ``outputs["metrics"]`` (external validation on the labelled target patients, empty when none has a label).
    Returns the predictions (``mosare.reporting.plots.training.plot_external_roc`` draws their ROC; for survival
    models, ``mosare.reporting.plots.survival.plot_risk_group_kaplan_meier`` their risk groups' Kaplan-Meier curves).
    A survival cohort's models (``classes`` empty) need a survival target, whose outcome external validation uses."""
    data = target.load(classes, allow_unlabelled=True)
    given = InputFacts.read(data, target.features_dir, target.text, target.rna)
    target_genes = RNAStore.read_gene_ids(target.rna)
    frames = []
    for model_dir in sorted(p for p in Path(models_dir).iterdir() if (p / "model.json").exists()):
        loaded = load_final_model(model_dir, given)
        if (loaded.facts.survival is not None) != data.is_survival:
            kind = "survival" if loaded.facts.survival is not None else "classification"
            raise ValueError(
                f"model {model_dir} is a {kind} model but the target cohort is "
                f"{'a survival' if data.is_survival else 'a classification'} cohort; deploy to a cohort of its task"
            )
        if tuple(loaded.facts.classes) != tuple(classes):
            raise ValueError(
                f"model {model_dir} predicts {list(loaded.facts.classes)} but the target cohort's classes are "
                f"{list(classes)}; give the target the same classes in the same order"
            )
        aligned, zero_filled = align_rna(data, target_genes, loaded.facts.rna_genes, missing_genes, model_dir)
        frame = (deploy_survival_model if data.is_survival else deploy_model)(loaded, aligned)
        frame["genes_zero_filled"] = zero_filled
        frames.append(frame)
        log.info("%s: %d patients predicted (%d RNA genes zero-filled)", model_dir.name, data.n_patients, zero_filled)
    predictions = pd.concat(frames, ignore_index=True)
    write_tsv(predictions, outputs["predictions"])
    if "metrics" in outputs:
        if data.is_survival:
            table = external_survival_validation(predictions, n_resamples, seed=derived_seed(0, 17))
        else:
            table = external_validation(predictions, classes, n_resamples, seed=derived_seed(0, 17))
        write_tsv(table, outputs["metrics"])
    return predictions
