"""Cross-validation units of a survival cohort (``cohorts.<name>.task: survival``): the counterpart of
``mosare.training.cross_validation.run_unit``, which hands a survival cohort's units here.

What differs from a classification unit:

- Every model gets a ``SurvivalHead`` in place of its classifier (``mosare.model.survival.SurvivalSetup``): a
  discrete-time hazard head (NLL survival loss) or a Cox head (partial likelihood), by ``train.survival.head``. The
  time bins are cut at the event times of the fold's **fit part** only (the training fold less its validation
  split), so neither the validation nor the test patients move them; MoSARe's MCL takes the bins as pseudo-classes.
- The epoch is chosen on the validation patients' Harrell's C (ties: lower validation survival loss).
- A test patient's prediction is a risk (higher = worse: MCAT's ``-sum_k S(k)`` for the hazard head, the log-risk
  for Cox) and its survival at the horizons: the hazard head's own step curve, or for Cox the Breslow baseline
  (scikit-survival's ``BreslowEstimator``) fitted on the fit part's risks. Mask draws are averaged.
- A single-modality baseline predicts, for a patient without its modality, the mean head output of the fit patients
  that have it (the survival counterpart of the class prior): one constant per fold, so such patients tie.
- Per-fold metrics: Harrell's and Uno's C, the time-dependent AUC at each horizon and the integrated Brier score
  over a grid of the cohort's times, against the fold's training part (fit + validation) for the censoring weights.

A classical reference row, ``coxnet_rna`` (:data:`REFERENCE_COX`), runs beside the configured models whenever the
cohort has RNA: scikit-survival's ``CoxnetSurvivalAnalysis`` with a nearly pure ridge penalty (``l1_ratio`` 0.01)
on the fold's normalised RNA genes, fitted on the fit patients showing RNA, its penalty chosen on the validation
patients' Harrell's C along the fitted path, on the same folds, scenarios and mask draws as the deep models. A test
patient without RNA gets the fit patients' mean risk, as a single-modality baseline's blind patients do.

The horizons (``train.horizons``, default the 1/3 and 2/3 quantiles of the cohort's event times) and the Brier
grid are evaluation times shared by every fold, so predictions.tsv has one set of columns; no model is fitted to
them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from mosare.cohort.data import CohortData
from mosare.core.atomic_files import write_tsv
from mosare.evaluation.scenarios import Scenario
from mosare.evaluation.splits import survival_fold_validation_split
from mosare.evaluation.survival_columns import REFERENCE_COX, RISK_CUTOFF, horizon_name, survival_columns
from mosare.evaluation.survival_metrics import (
    SurvivalFold,
    default_horizons,
    integrated_brier,
    per_fold_c_index,
    survival_at,
    time_dependent_auc,
    training_cutoffs,
)
from mosare.model.specs import single_modality_models
from mosare.model.survival import SurvivalHead, SurvivalSetup
from mosare.training.fold_inputs import make_batch
from mosare.training.loop import _to_device

log = logging.getLogger(__name__)

REFERENCE_L1_RATIO = 0.01  # CoxnetSurvivalAnalysis needs some l1; this little is ridge in all but name
GRID_QUANTILES = np.linspace(0.1, 0.9, 9)  # the integrated Brier score's times: quantiles of the cohort's times


def survival_horizons(data: CohortData, train_config: dict[str, Any]) -> np.ndarray:
    """``train.horizons``, or the 1/3 and 2/3 quantiles of the cohort's event times (rounded to 0.1 of the unit)."""
    configured = train_config.get("horizons")
    if configured:
        return np.asarray(sorted(set(float(h) for h in configured)), dtype=np.float64)
    assert data.times is not None and data.events is not None
    return np.unique(np.round(default_horizons(data.times, data.events), 1))


def brier_grid(data: CohortData) -> np.ndarray:
    assert data.times is not None
    return np.unique(np.quantile(data.times, GRID_QUANTILES))


def survival_head(model: torch.nn.Module) -> SurvivalHead:
    """A survival model's head (its ``classifier``)."""
    head = model.classifier
    if not isinstance(head, SurvivalHead):
        raise TypeError(f"{type(model).__name__} was not built with a SurvivalHead (build_model(..., survival=...))")
    return head


def survival_metric_names(horizons: Iterable[float]) -> list[str]:
    """The per-fold metrics of a survival cohort, in metrics.tsv order."""
    return ["harrell_c", "uno_c", *(f"td_auc@{horizon_name(h)}" for h in horizons), "ibs"]


def survival_fold_parts(
    data: CohortData, folds: np.ndarray, fold: int, config: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fit, validation, test) patient indices of a survival cohort's fold (validation stratified by event)."""
    assert data.events is not None
    fit_index, val_index = survival_fold_validation_split(folds, fold, data.events, config)
    return fit_index, val_index, np.flatnonzero(folds == fold)


def predict_head_outputs(
    model: torch.nn.Module,
    tensors: Any,
    index: np.ndarray,
    shown: torch.Tensor,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """The survival head's raw outputs (len(index), K or 1), float64: hazard logits or the Cox log-risk."""
    model.eval()
    out = []
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for chunk in np.array_split(np.asarray(index), max(1, math.ceil(len(index) / batch_size))):
            if len(chunk) == 0:
                continue
            batch = _to_device(make_batch(tensors, torch.from_numpy(chunk), shown, None, None), device)
            out.append(model(batch)["logits"].float().cpu().numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 1))


def _blind(shown: torch.Tensor, index: np.ndarray, required: int | None) -> np.ndarray:
    """Which of ``index`` a single-modality model cannot see (none for a fusion model)."""
    if required is None:
        return np.zeros(len(index), dtype=bool)
    return ~shown[torch.from_numpy(np.asarray(index)), required].numpy()


def harrell_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """scikit-survival's Harrell's C, NaN without a comparable pair."""
    from sksurv.metrics import concordance_index_censored

    try:
        return float(concordance_index_censored(event.astype(bool), time, risk)[0])
    except (ValueError, ZeroDivisionError):
        return float("nan")


def survival_validation(
    tensors: Any,
    val_index: np.ndarray,
    shown: torch.Tensor,
    required: int | None,
    batch_size: int,
    device: torch.device,
) -> Callable[[torch.nn.Module], tuple[float, float]]:
    """``train_model``'s validation of a survival model: ``model -> (Harrell's C, survival loss)`` on the validation
    patients it can see (NaN and inf when it sees none)."""
    index = val_index[~_blind(shown, val_index, required)]
    times, events = tensors.times[torch.from_numpy(index)], tensors.events[torch.from_numpy(index)]

    def validate(trained: torch.nn.Module) -> tuple[float, float]:
        if len(index) == 0:
            return float("nan"), float("inf")
        outputs = torch.from_numpy(predict_head_outputs(trained, tensors, index, shown, batch_size, device))
        head = survival_head(trained)
        c_index = harrell_c(times.numpy(), events.numpy(), head.risk(outputs).numpy())
        return c_index, float(head.loss(outputs, times.to(outputs.dtype), events))

    return validate


class SurvivalPredictor:
    """Turns a trained model's head outputs into risks and survival probabilities. What it needs beyond the model is
    fitted on the fit part (:meth:`fitted`) and saved with a final model (:meth:`saved`): the head outputs a blind
    patient gets (``stand_in``) and, for the Cox head, Breslow's baseline survival (``baseline``: times, S0)."""

    def __init__(
        self,
        model: torch.nn.Module,
        tensors: Any,
        batch_size: int,
        device: torch.device,
        required: int | None,
        stand_in: np.ndarray,
        baseline: tuple[np.ndarray, np.ndarray] | None,
    ) -> None:
        self.model, self.tensors, self.batch_size, self.device, self.required = (
            model, tensors, batch_size, device, required,
        )  # fmt: skip
        self.head = survival_head(model)
        self.stand_in = np.asarray(stand_in, dtype=np.float64)
        self.baseline = baseline
        if self.head.kind == "cox" and baseline is None:
            raise ValueError("a Cox head's survival needs a baseline survival (Breslow's, fitted on the fit part)")

    @classmethod
    def fitted(
        cls,
        model: torch.nn.Module,
        tensors: Any,
        fit_index: np.ndarray,
        shown: torch.Tensor,
        batch_size: int,
        device: torch.device,
        required: int | None,
    ) -> SurvivalPredictor:
        """The stand-in (the mean head output of the fit patients the model can see) and, for Cox, the Breslow
        baseline (scikit-survival's ``BreslowEstimator``), both from the fit part only."""
        fit_outputs = predict_head_outputs(model, tensors, fit_index, shown, batch_size, device)
        seen = ~_blind(shown, fit_index, required)
        stand_in = fit_outputs[seen].mean(axis=0) if seen.any() else np.zeros(fit_outputs.shape[1])
        fit_outputs[~seen] = stand_in
        baseline = None
        if survival_head(model).kind == "cox":
            from sksurv.linear_model.coxph import BreslowEstimator

            fit_time = tensors.times[torch.from_numpy(fit_index)].numpy()
            fit_event = tensors.events[torch.from_numpy(fit_index)].numpy()
            breslow = BreslowEstimator().fit(fit_outputs[:, 0], fit_event.astype(int), fit_time)
            baseline = (np.asarray(breslow.baseline_survival_.x), np.asarray(breslow.baseline_survival_.y))
        return cls(model, tensors, batch_size, device, required, stand_in, baseline)

    def outputs(self, index: np.ndarray, shown: torch.Tensor) -> np.ndarray:
        outputs = predict_head_outputs(self.model, self.tensors, index, shown, self.batch_size, self.device)
        outputs[_blind(shown, index, self.required)] = self.stand_in
        return outputs

    def risk(self, outputs: np.ndarray) -> np.ndarray:
        return self.head.risk(torch.from_numpy(outputs)).numpy().astype(np.float64)

    def survival(self, outputs: np.ndarray, times: np.ndarray) -> np.ndarray:
        """(patients, len(times)) predicted S(t): the hazard head's own curve, or S0(t) ** exp(risk) for Cox (what
        ``BreslowEstimator.get_survival_function`` computes)."""
        if self.baseline is None:
            return self.head.survival_at(torch.from_numpy(outputs), times).numpy().astype(np.float64)
        baseline_times, baseline_survival = self.baseline
        curves = np.power(baseline_survival[None, :], np.exp(outputs[:, 0])[:, None])
        return survival_at(baseline_times, curves, times)


class CoxnetReference:
    """The ridge-penalised Cox reference on the RNA of one fold and mask draw (module docstring)."""

    def __init__(
        self,
        tensors: Any,
        fit_index: np.ndarray,
        val_index: np.ndarray,
        shown: torch.Tensor,
    ) -> None:
        from sksurv.linear_model import CoxnetSurvivalAnalysis

        rna = tensors.rna.numpy().astype(np.float64)
        times, events = tensors.times.numpy(), tensors.events.numpy().astype(bool)
        has = shown[:, 1].numpy()
        fit = fit_index[has[fit_index]]
        val = val_index[has[val_index]]
        self.rna = rna
        self.model = CoxnetSurvivalAnalysis(
            l1_ratio=REFERENCE_L1_RATIO, alpha_min_ratio=0.01, n_alphas=30, fit_baseline_model=True, max_iter=20000
        )
        self.model.fit(rna[fit], survival_y(times[fit], events[fit]))
        alphas = list(self.model.alphas_)
        scores = [
            harrell_c(times[val], events[val], self.model.predict(rna[val], alpha=alpha)) if len(val) else np.nan
            for alpha in alphas
        ]
        finite = [i for i, score in enumerate(scores) if np.isfinite(score)]
        # the best validation C; ties (and no usable validation) to the stronger penalty, the path's first
        self.alpha = alphas[max(finite, key=lambda i: (scores[i], -i)) if finite else len(alphas) // 2]
        self.stand_in = float(np.mean(self.model.predict(rna[fit], alpha=self.alpha)))

    def predict(self, index: np.ndarray, shown: torch.Tensor, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(risk, survival at ``times``) of patients ``index``; those not showing RNA get the fit part's mean risk."""
        has = shown[torch.from_numpy(np.asarray(index)), 1].numpy()
        risk = np.full(len(index), self.stand_in)
        if has.any():
            risk[has] = self.model.predict(self.rna[index[has]], alpha=self.alpha)
        functions = self.model.predict_survival_function(self.rna[index[:1]], alpha=self.alpha)
        grid = functions[0].x
        # S(t | x) = S0(t) ** exp(risk - risk0): read S0 off one patient's curve, then apply every patient's risk
        risk0 = float(self.model.predict(self.rna[index[:1]], alpha=self.alpha)[0])
        base = np.clip(functions[0].y, 1e-300, 1.0) ** np.exp(-risk0)
        curves = base[None, :] ** np.exp(risk)[:, None]
        return risk, survival_at(grid, curves, times)


def survival_y(times: np.ndarray, events: np.ndarray) -> np.ndarray:
    from mosare.evaluation.survival_metrics import survival_array

    return survival_array(times, events)


def _fold_metrics(
    data: CohortData,
    test_index: np.ndarray,
    training_rows: np.ndarray,
    risk: np.ndarray,
    grid_survival: np.ndarray,
    horizons: np.ndarray,
    grid: np.ndarray,
    fold: int,
) -> dict[str, float]:
    """Harrell's and Uno's C, AUC(t) at the horizons and the IBS of one fold's test predictions."""
    assert data.times is not None and data.events is not None
    time, event = data.times[test_index], data.events[test_index]
    train_time, train_event = data.times[training_rows], data.events[training_rows]
    c = per_fold_c_index([SurvivalFold(fold, time, event, risk, train_time, train_event)]).iloc[0]
    row = {"harrell_c": float(c["harrell_c"]), "uno_c": float(c["uno_c"])}
    names = [f"td_auc@{horizon_name(h)}" for h in horizons]
    try:
        auc = time_dependent_auc(time, event, risk, train_time, train_event, horizons)
        row.update({name: float(value) for name, value in zip(names, auc.at(horizons), strict=True)})
    except ValueError:
        row.update(dict.fromkeys(names, float("nan")))
    try:
        row["ibs"] = integrated_brier(time, event, grid_survival, grid, train_time, train_event).ibs
    except ValueError:
        row["ibs"] = float("nan")
    return row


def run_survival_unit(
    data: CohortData,
    context: Any,
    repeat: int,
    fold: int,
    group: Sequence[Scenario],
    progress: bool = True,
) -> dict[Scenario, tuple[list[dict[str, Any]], list[pd.DataFrame]]]:
    """``run_unit`` of a survival cohort (module docstring): every model once per mask draw for a group of scenarios
    sharing their training side, tested in each; per-fold outputs as for classification, predictions.tsv with
    ``time, event, risk, survival@{h}``."""
    from mosare.training.cross_validation import train_draws, trainable, unit_inputs

    assert data.times is not None and data.events is not None
    unit = unit_inputs(data, context, repeat, fold, group)
    config, device, fit_index, test_index = unit.config, unit.device, unit.fit_index, unit.test_index
    setup = SurvivalSetup.from_config(config["survival"], data.times[fit_index], data.events[fit_index])
    horizons, grid = survival_horizons(data, config), brier_grid(data)
    training_index = np.flatnonzero(unit.training_rows)
    results: dict[Scenario, tuple[list[dict[str, Any]], list[pd.DataFrame]]] = {s: ([], []) for s in group}
    metric_names = survival_metric_names(horizons)

    def validation_of(required: int | None) -> Any:
        return lambda shown: survival_validation(
            unit.tensors, unit.val_index, shown, required, config["batch_size"], device
        )

    for model_name in tqdm(config["models"], desc=f"repeat {repeat}, fold {fold}, {unit.slugs}", disable=not progress):
        required = single_modality_models().get(model_name)
        row_keys = unit.row_keys(model_name, repeat, fold)
        if not trainable(context, unit, model_name, required, repeat, fold):
            for scenario in group:
                results[scenario][0].append({**row_keys[scenario], **dict.fromkeys(metric_names, float("nan"))})
            continue
        per_draw: dict[Scenario, list[tuple[np.ndarray, ...]]] = {s: [] for s in group}
        trained = train_draws(
            context, unit, model_name, repeat, fold, 0, np.zeros(1), required, {"survival": setup},
            validation_of(required),
        )  # fmt: skip
        for draw, shown_training, model in trained:
            predictor = SurvivalPredictor.fitted(
                model, unit.tensors, fit_index, shown_training, config["batch_size"], device, required
            )
            training_risk = predictor.risk(predictor.outputs(training_index, shown_training))
            for scenario in group:
                outputs = predictor.outputs(test_index, torch.from_numpy(unit.presence[scenario][draw]))
                per_draw[scenario].append(
                    (
                        predictor.risk(outputs),
                        predictor.survival(outputs, horizons),
                        predictor.survival(outputs, grid),
                        training_risk,
                    )
                )
        _collect_scenarios(
            data, model_name, group, per_draw, row_keys, results, context, repeat, fold, test_index,
            unit.training_rows, horizons, grid,
        )  # fmt: skip
    if context.dims.rna_genes:
        _run_reference(data, context, repeat, fold, group, unit, horizons, grid, results)
    return results


def _run_reference(
    data: CohortData,
    context: Any,
    repeat: int,
    fold: int,
    group: Sequence[Scenario],
    unit: Any,
    horizons: np.ndarray,
    grid: np.ndarray,
    results: dict[Scenario, tuple[list[dict[str, Any]], list[pd.DataFrame]]],
) -> None:
    """The ``coxnet_rna`` reference row of one unit: one fit per mask draw, tested in each scenario."""
    row_keys = unit.row_keys(REFERENCE_COX, repeat, fold)
    fit_index, test_index, training_rows = unit.fit_index, unit.test_index, unit.training_rows
    assert data.events is not None
    # Cox needs at least two fit patients showing RNA, one of them with an event, in every mask draw; else the fold
    # is left out of the reference's metrics (NaN, no predictions), as a baseline without its modality is.
    fittable = all(
        shown[fit_index, 1].sum() >= 2 and data.events[fit_index[shown[fit_index, 1]]].any() for shown in unit.draws
    )
    if not fittable:
        log.warning(
            "%s: %s, repeat %d, fold %d: too few fit patients show RNA (or none with an event) in some mask draw; "
            "not fitted, fold left out of its metrics", context.cohort, REFERENCE_COX, repeat, fold,
        )  # fmt: skip
        for scenario in group:
            results[scenario][0].append(
                {**row_keys[scenario], **dict.fromkeys(survival_metric_names(horizons), np.nan)}
            )
        return
    per_draw: dict[Scenario, list[tuple[np.ndarray, ...]]] = {s: [] for s in group}
    for draw, shown_array in enumerate(unit.draws):
        shown_training = torch.from_numpy(shown_array)
        reference = CoxnetReference(unit.tensors, fit_index, unit.val_index, shown_training)
        training_risk = reference.predict(np.flatnonzero(training_rows), shown_training, horizons)[0]
        for scenario in group:
            shown = torch.from_numpy(unit.presence[scenario][draw])
            risk, survival = reference.predict(test_index, shown, np.concatenate([horizons, grid]))
            per_draw[scenario].append((risk, survival[:, : len(horizons)], survival[:, len(horizons) :], training_risk))
    _collect_scenarios(
        data, REFERENCE_COX, group, per_draw, row_keys, results, context, repeat, fold, test_index, training_rows,
        horizons, grid,
    )  # fmt: skip


def _collect_scenarios(
    data: CohortData,
    model_name: str,
    group: Sequence[Scenario],
    per_draw: dict[Scenario, list[tuple[np.ndarray, ...]]],
    row_keys: dict[Scenario, dict[str, Any]],
    results: dict[Scenario, tuple[list[dict[str, Any]], list[pd.DataFrame]]],
    context: Any,
    repeat: int,
    fold: int,
    test_index: np.ndarray,
    training_rows: np.ndarray,
    horizons: np.ndarray,
    grid: np.ndarray,
) -> None:
    """Average the mask draws of one model, score them and record the metric row and predictions per scenario."""
    assert data.times is not None and data.events is not None
    for scenario in group:
        risk = np.mean([d[0] for d in per_draw[scenario]], axis=0)
        survival = np.mean([d[1] for d in per_draw[scenario]], axis=0)
        grid_survival = np.mean([d[2] for d in per_draw[scenario]], axis=0)
        training_risk = np.mean([d[3] for d in per_draw[scenario]], axis=0)
        metrics = _fold_metrics(data, test_index, training_rows, risk, grid_survival, horizons, grid, fold)
        results[scenario][0].append({**row_keys[scenario], **metrics})
        frame = pd.DataFrame(
            {
                "patient_id": data.patient_ids[test_index],
                "time": data.times[test_index],
                "event": data.events[test_index].astype(np.int64),
                "risk": risk,
                # the median of this fold model's risks on its training patients: the KM risk groups' cut-off
                RISK_CUTOFF: float(training_cutoffs(training_risk)[0]),
            }
        )
        for column, values in zip(survival_columns(horizons), survival.T, strict=True):
            frame[column] = values
        write_tsv(frame, context.unit_dir(model_name, scenario, repeat, fold) / "predictions.tsv")
        results[scenario][1].append(frame.assign(**row_keys[scenario]))
