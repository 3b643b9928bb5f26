"""Honest cross-validation of MoSARe and its baselines under missing-modality scenarios (the training stage's entry
point, which also writes the tables and final models, is ``mosare.training.stage``).

Protocol (see docs/evaluation.md):

- Stratified k-fold (``StratifiedGroupKFold``, groups = patients, or sites under ``train.split: site``), repeated
  ``train.repeats`` times with new fold seeds (repeat 0 uses ``train.seed`` itself); the same folds for every model
  and scenario. Inside each training fold a patient-level stratified validation split picks the epoch (best validation AUC, ties to the lower
  validation cross-entropy; early stopping with ``patience``). The test fold is predicted once, by that checkpoint.
- Every statistic fitted on data (z-scores of every input, the RNA genes kept) comes from the training part of the
  fold only (the training fold minus its validation split).
- Scenarios and masks: :mod:`mosare.evaluation.scenarios`. In a masked scenario, ``train.mask_repeats`` mask draws each train
  a model; their test probabilities are averaged. Scenarios whose training side sees the same masks (masked train /
  complete test and masked train / masked test at one rate) share that model: it is trained once and tested in each.
- Patients really lacking a modality (``cohort.tsv`` flags) have it masked in every scenario, "complete" included.
- A single-modality baseline (ABMIL, RNA MLP, report MLP) cannot see a patient whose modality is absent: it is trained
  on the patients that have it and predicts the training fold's class prior for the others, so every model is
  evaluated on exactly the same patients.
- A modality no patient of the cohort has is absent everywhere: the baseline that reads only it is not run, the
  fusion models have no encoder for it (``ModelDims`` size 0). When no patient has two modalities the masked
  scenarios are not run.
- A single-modality baseline whose training part of a fold shows its modality for no patient is not trained there:
  that fold's metrics are NaN, left out of mean and std, and no per-fold outputs are written.
- Patches: training samples ``patches_per_step`` patches with replacement per patient and step; evaluation uses a
  fixed seeded subset of at most ``patches_per_step`` patches per patient.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from mosare.cohort.data import CohortData
from mosare.core.atomic_files import atomic_file, write_tsv
from mosare.core.devices import resolve_device
from mosare.core.modalities import MODALITIES
from mosare.evaluation.metrics import METRICS, classification_metrics
from mosare.evaluation.scenarios import (
    MODALITY_TITLES,
    EvaluationPlan,
    MNARSetting,
    Scenario,
    plan_evaluation,
    scenario_presence,
    training_groups,
)
from mosare.evaluation.splits import check_cohort_splits, derived_seed, fold_validation_split, repeat_seed
from mosare.model.specs import single_modality_models
from mosare.training.fold_inputs import eval_patch_rows, fit_normalisation, fold_tensors
from mosare.training.loop import predict_probabilities, train_model

log = logging.getLogger(__name__)

ModelFactory = Callable[[str, Any, int, dict[str, Any]], torch.nn.Module]


def make_deterministic(device: torch.device) -> None:
    """Deterministic CUDA kernels where torch has them (warns, never fails, where it has none).

    The CPU kernels used here are deterministic already, and the switch costs seconds of imports, so CPU skips it.
    """
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def model_dims(data: CohortData, train_config: dict[str, Any]) -> Any:
    """The model package's ``ModelDims`` for this cohort's inputs; size 0 for a modality no patient has. The RNA
    width is the number of genes each fold keeps (``rna_top_genes``, at most the genes stored)."""
    from mosare.core.config_schema import schema_defaults
    from mosare.model.factory import ModelDims

    hidden = train_config.get("hidden", schema_defaults("train")["hidden"])
    in_cohort = [bool(column.any()) for column in np.asarray(data.available).T]
    top_genes = train_config.get("rna_top_genes")
    stored_genes = data.rna.shape[1]
    return ModelDims(
        wsi_dim=data.patches.shape[1],
        rna_genes=(min(top_genes, stored_genes) if top_genes else stored_genes) if in_cohort[1] else 0,
        text_dim=data.text_global.shape[1] if in_cohort[2] else 0,
        local_tokens=data.wsi_local.shape[1],
        hidden=hidden,
    )


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What every (repeat, fold, scenario) unit shares besides the cohort data (picklable for worker processes)."""

    folds: np.ndarray  # (repeats, N) test fold of every patient in each repeat
    train_config: dict[str, Any]
    cohort: str
    train_dir: Path
    device: str
    build: ModelFactory
    dims: Any

    def repeat_config(self, repeat: int) -> dict[str, Any]:
        """The train section as repeat ``repeat`` sees it: its own seed, from which folds, splits and masks derive."""
        return {**self.train_config, "seed": repeat_seed(self.train_config["seed"], repeat)}

    def unit_dir(self, model_name: str, scenario: Scenario, repeat: int, fold: int) -> Path:
        """``train/{model}/{scenario}/fold{k}``, with ``repeat{r}/`` before ``fold{k}`` for repeats after the first."""
        base = self.train_dir / model_name / scenario.slug
        return base / f"fold{fold}" if repeat == 0 else base / f"repeat{repeat}" / f"fold{fold}"


def fold_parts(
    data: CohortData, context: RunContext, repeat: int, fold: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fit, validation, test) patient indices of a fold of a repeat."""
    folds = context.folds[repeat]
    if data.is_survival:
        from mosare.training.survival import survival_fold_parts

        return survival_fold_parts(data, folds, fold, context.repeat_config(repeat))
    fit_index, val_index = fold_validation_split(folds, fold, data.labels, context.repeat_config(repeat))
    return fit_index, val_index, np.flatnonzero(folds == fold)


def _draw_file(name: str, draw: int) -> str:
    """``history.tsv`` for the first mask draw, ``history-draw{d}.tsv`` for the others."""
    stem, suffix = name.rsplit(".", 1)
    return name if draw == 0 else f"{stem}-draw{draw}.{suffix}"


@dataclasses.dataclass(frozen=True)
class UnitInputs:
    """What every model of one unit shares (a fold of a repeat, and a group of scenarios with one training side):
    the fold's parts, its normalised tensors, every scenario's mask draws and the metric rows' key columns."""

    config: dict[str, Any]
    device: torch.device
    fit_index: np.ndarray
    val_index: np.ndarray
    test_index: np.ndarray
    training_rows: np.ndarray  # (N,) bool: the fold's training part (fit + validation)
    tensors: Any
    presence: dict[Scenario, list[np.ndarray]]
    draws: list[np.ndarray]  # what the training side sees, the same in every scenario of the group
    scenario_keys: dict[Scenario, dict[str, Any]]
    slugs: str

    def row_keys(self, model_name: str, repeat: int, fold: int) -> dict[Scenario, dict[str, Any]]:
        return {
            scenario: {**keys, "model": model_name, "repeat": repeat, "fold": fold}
            for scenario, keys in self.scenario_keys.items()
        }


def unit_inputs(data: CohortData, context: RunContext, repeat: int, fold: int, group: Sequence[Scenario]) -> UnitInputs:
    """The shared inputs of a unit (:class:`UnitInputs`); an error when the group's scenarios hide different training
    modalities (they could not share a model)."""
    config = context.repeat_config(repeat)
    seed = config["seed"]
    folds = context.folds[repeat]
    fit_index, val_index, test_index = fold_parts(data, context, repeat, fold)
    tensors = fold_tensors(
        data,
        fit_normalisation(data, fit_index, config.get("rna_top_genes")),
        eval_patch_rows(data, config["patches_per_step"], seed),
    )
    training_rows = folds != fold
    presence = scenario_presence(data.available, data.labels, folds, fold, group, seed, config.get("mask_repeats", 1))
    draws = presence[group[0]]
    for scenario in group[1:]:
        if not all(
            np.array_equal(a[training_rows], b[training_rows]) for a, b in zip(draws, presence[scenario], strict=True)
        ):
            raise ValueError(
                f"{scenario.slug} and {group[0].slug} hide different training modalities; they cannot share a model"
            )
    scenario_keys = {
        scenario: {
            "cohort": context.cohort,
            "scenario": scenario.name,
            "train_missing_rate": scenario.train_rate,
            "test_missing_rate": scenario.test_rate,
        }
        for scenario in group
    }
    return UnitInputs(
        config, torch.device(context.device), fit_index, val_index, test_index, training_rows, tensors, presence,
        draws, scenario_keys, "+".join(scenario.slug for scenario in group),
    )  # fmt: skip


def trainable(
    context: RunContext, unit: UnitInputs, model_name: str, required: int | None, repeat: int, fold: int
) -> bool:
    """Whether some training patient shows the modality a single-modality model needs, in every mask draw; if not,
    the model is not trained and the fold is left out of its metrics (logged)."""
    if required is None or any(shown[unit.fit_index, required].any() for shown in unit.draws):
        return True
    log.warning(
        "%s: %s, repeat %d, fold %d, %s: no training patient shows %s; not trained, fold left out of its metrics",
        context.cohort, model_name, repeat, fold, unit.slugs, MODALITY_TITLES[required],
    )  # fmt: skip
    return False


def train_draws(
    context: RunContext,
    unit: UnitInputs,
    model_name: str,
    repeat: int,
    fold: int,
    n_classes: int,
    prior: np.ndarray,
    required: int | None,
    build_options: dict[str, Any] | None = None,
    validation: Callable[[torch.Tensor], Callable[[torch.nn.Module], tuple[float, float]]] | None = None,
) -> Iterator[tuple[int, torch.Tensor, torch.nn.Module]]:
    """Train ``model_name`` once per mask draw of the unit; yield (draw, what the training side showed, the trained
    model), after writing its history and checkpoint to every scenario's unit folder. ``validation(shown)``: a
    survival model's epoch selection (``train_model``'s ``validation``)."""
    config, seed = unit.config, unit.config["seed"]
    for draw, shown_array in enumerate(unit.draws):
        # A model starts from the same weights in every scenario and mask draw of a fold.
        torch.manual_seed(derived_seed(seed, fold, 2))
        model = context.build(model_name, context.dims, n_classes, config, **(build_options or {}))
        train_seed = derived_seed(seed, fold, 3) if draw == 0 else derived_seed(seed, fold, 3, draw)
        shown = torch.from_numpy(shown_array)
        result = train_model(
            model, unit.tensors, unit.fit_index, unit.val_index, shown, config, unit.device, train_seed, prior,
            required, validation=None if validation is None else validation(shown),
        )  # fmt: skip
        for scenario in unit.scenario_keys:
            unit_dir = context.unit_dir(model_name, scenario, repeat, fold)
            write_tsv(result.history, unit_dir / _draw_file("history.tsv", draw))
            with atomic_file(unit_dir / _draw_file("checkpoint.pt", draw)) as tmp:
                torch.save(result.state_dict, tmp)
        yield draw, shown, model


def run_unit(
    data: CohortData,
    context: RunContext,
    repeat: int,
    fold: int,
    group: Sequence[Scenario],
    progress: bool = True,
) -> dict[Scenario, tuple[list[dict[str, Any]], list[pd.DataFrame]]]:
    """Train every model once per mask draw for a group of scenarios that share their training side
    (:func:`~mosare.evaluation.scenarios.training_groups`) in one fold of one repeat, test it in each scenario of the group, and
    write the per-fold outputs of each.

    Returns, per scenario, the metric rows and the test predictions (with key columns). Everything random is seeded
    from (repeat seed, fold[, draw]), so a unit gives the same result in any process and in any order, and the same as
    training each scenario of the group on its own.

    A survival cohort's units are :func:`mosare.training.survival.run_survival_unit`'s.
    """
    if data.is_survival:
        from mosare.training.survival import run_survival_unit

        return run_survival_unit(data, context, repeat, fold, group, progress)
    unit = unit_inputs(data, context, repeat, fold, group)
    config, test_index = unit.config, unit.test_index
    training_labels = data.labels[unit.training_rows]
    prior = np.bincount(training_labels, minlength=len(data.classes)) / len(training_labels)
    results: dict[Scenario, tuple[list[dict[str, Any]], list[pd.DataFrame]]] = {
        scenario: ([], []) for scenario in group
    }
    for model_name in tqdm(config["models"], desc=f"repeat {repeat}, fold {fold}, {unit.slugs}", disable=not progress):
        required = single_modality_models().get(model_name)
        row_keys = unit.row_keys(model_name, repeat, fold)
        if not trainable(context, unit, model_name, required, repeat, fold):
            for scenario in group:
                results[scenario][0].append({**row_keys[scenario], **dict.fromkeys(METRICS, float("nan"))})
            continue
        per_draw: dict[Scenario, list[np.ndarray]] = {scenario: [] for scenario in group}
        for draw, _, model in train_draws(context, unit, model_name, repeat, fold, len(data.classes), prior, required):
            for scenario in group:
                shown = torch.from_numpy(unit.presence[scenario][draw])
                per_draw[scenario].append(
                    predict_probabilities(
                        model, unit.tensors, test_index, shown, config["batch_size"], unit.device, prior, required
                    )
                )
        for scenario in group:
            probabilities = np.mean(per_draw[scenario], axis=0)
            results[scenario][0].append(
                {**row_keys[scenario], **classification_metrics(data.labels[test_index], probabilities)}
            )
            frame = pd.DataFrame(
                {"patient_id": data.patient_ids[test_index], "label": np.array(data.classes)[data.labels[test_index]]}
            )
            for k, name in enumerate(data.classes):
                frame[f"prob_{name}"] = probabilities[:, k]
            write_tsv(frame, context.unit_dir(model_name, scenario, repeat, fold) / "predictions.tsv")
            results[scenario][1].append(frame.assign(**row_keys[scenario]))
    return results


def realised_rates_table(data: CohortData, context: RunContext, scenario_list: list[Scenario]) -> pd.DataFrame:
    """Per scenario, the share of (patient, modality) pairs that really exist and were hidden, on the training side
    (fit + validation) and the test side, pooled over repeats, folds and mask draws."""
    rows = []
    for scenario in scenario_list:
        hidden = {side: np.zeros(3) for side in ("train", "test")}
        having = {side: np.zeros(3) for side in ("train", "test")}
        for repeat, folds in enumerate(context.folds):
            config = context.repeat_config(repeat)
            for fold in range(config["folds"]):
                draws = scenario_presence(
                    data.available, data.labels, folds, fold, [scenario], config["seed"], config.get("mask_repeats", 1)
                )[scenario]
                for shown in draws:
                    for side, rows_of_side in (("train", folds != fold), ("test", folds == fold)):
                        available = data.available[rows_of_side]
                        having[side] += available.sum(axis=0)
                        hidden[side] += (available & ~shown[rows_of_side]).sum(axis=0)
        row = {
            "scenario": scenario.name,
            "train_missing_rate": scenario.train_rate,
            "test_missing_rate": scenario.test_rate,
        }
        for side in ("train", "test"):
            with np.errstate(invalid="ignore", divide="ignore"):
                rates = np.where(having[side] > 0, hidden[side] / np.maximum(having[side], 1), np.nan)
            for modality, rate in zip(MODALITIES, rates):
                row[f"realised_{side}_missing_{modality}"] = float(rate)
        rows.append(row)
    return pd.DataFrame(rows)


class CrossValidation(NamedTuple):
    splits: pd.DataFrame  # patient_id, label, fold[, fold_repeat{r}]
    fold_metrics: pd.DataFrame  # keys, repeat, fold, one column per metric
    predictions: pd.DataFrame  # keys, repeat, fold, patient_id, label, prob_<class>...
    realised_rates: pd.DataFrame  # per scenario: realised_{train,test}_missing_{wsi,rna,text}


_WORKER: dict[str, Any] = {}


def _start_worker(data: CohortData) -> None:
    torch.set_num_threads(1)  # one process per core beats intra-op threads on these small models
    _WORKER["data"] = data


def _call_in_worker(task: Callable[..., Any], *args: Any) -> Any:
    return task(_WORKER["data"], *args)


@contextlib.contextmanager
def cohort_workers(data: CohortData, workers: int, device: torch.device) -> Iterator[Executor | None]:
    """``workers`` single-threaded processes that hold ``data`` (sent once, at their start), or None where tasks run
    in this process: on a GPU or with one worker. Pass the result to :func:`submit`."""
    if workers > 1 and device.type == "cpu":
        with concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(data,),
        ) as pool:
            yield pool
    else:
        yield None


def submit(pool: Executor | None, data: CohortData, task: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
    """``task(data, *args)`` in ``pool`` (``task`` and ``args`` picklable), or here and now without one; a future
    either way. Tasks are seeded by their arguments, so the result does not depend on where or in which order it runs."""
    if pool is not None:
        return pool.submit(_call_in_worker, task, *args)
    done: concurrent.futures.Future = concurrent.futures.Future()
    done.set_result(task(data, *args))
    return done


def splits_table(data: CohortData, folds: np.ndarray) -> pd.DataFrame:
    """patient_id, label, site (when the sites are known), fold (repeat 0), then ``fold_repeat{r}`` for the later
    repeats."""
    if data.times is not None and data.events is not None:  # a survival cohort: its outcome instead of a label
        table = pd.DataFrame(
            {"patient_id": data.patient_ids, "time": data.times, "event": data.events.astype(np.int64)}
        )
    else:
        table = pd.DataFrame({"patient_id": data.patient_ids, "label": np.array(data.classes)[data.labels]})
    if data.sites is not None:
        table["site"] = data.sites
    table["fold"] = folds[0]
    for repeat in range(1, len(folds)):
        table[f"fold_repeat{repeat}"] = folds[repeat]
    return table


@dataclasses.dataclass(frozen=True)
class CrossValidationPlan:
    """What a cross-validation will run: the models and scenarios the cohort allows, every repeat's folds, and the
    context its units share. Deterministic, so a fold job and the evaluation job plan the same one."""

    plan: EvaluationPlan
    folds: np.ndarray  # (repeats, N)
    context: RunContext

    def units(self, repeat: int | None = None, fold: int | None = None) -> list[tuple[int, int, tuple[Scenario, ...]]]:
        """(repeat, fold, training group) of every unit, or of one repeat's fold, in run order."""
        return [
            (r, k, group)
            for r in range(len(self.folds))
            for k in range(self.context.train_config["folds"])
            for group in training_groups(self.plan.scenarios)
            if (repeat is None or r == repeat) and (fold is None or k == fold)
        ]

    def fold_keys(self) -> list[tuple[int, int]]:
        """(repeat, fold) of every fold, in run order."""
        return list(dict.fromkeys((r, k) for r, k, _ in self.units()))


FoldResults = dict[Scenario, tuple[list[dict[str, Any]], list[pd.DataFrame]]]


def runnable_plan(data: CohortData, train_config: dict[str, Any], cohort: str) -> EvaluationPlan:
    """The models and scenarios this cohort can run (:func:`plan_evaluation`), the others logged as skipped; a
    ValueError when no configured model can run."""
    plan = plan_evaluation(
        data.available,
        train_config["models"],
        train_config["missing_rates"],
        MNARSetting.from_config(train_config.get("mnar")),
    )
    for name, reason in plan.skipped.items():
        log.warning("%s: %s skipped: %s", cohort, name, reason)
    if not plan.models:
        raise ValueError(
            f"{cohort}: none of train.models {list(train_config['models'])} can run on this cohort "
            f"({'; '.join(f'{m} {r}' for m, r in plan.skipped.items())}); add abmil or a fusion model to train.models"
        )
    return plan


def _survival_folds(data: CohortData, train_config: dict[str, Any], cohort: str, repeat: int) -> np.ndarray:
    """A survival cohort's test folds of one repeat (stratified by event and time bin, grouped by patient or site),
    once every fold is known to be trainable (``check_survival_splits``)."""
    from mosare.evaluation.splits import check_survival_splits

    assert data.times is not None and data.events is not None
    survival = train_config.get("survival") or {}
    return check_survival_splits(
        cohort, data.patient_ids, data.times, data.events,
        {**train_config, "seed": repeat_seed(train_config["seed"], repeat)}, sites=data.sites,
        time_bins=int(survival.get("bins", 4)) if survival.get("head", "hazard") == "hazard" else 1,
    )  # fmt: skip


def plan_cross_validation(
    data: CohortData,
    train_config: dict[str, Any],
    cohort: str,
    train_dir: str | Path,
    device: torch.device | None = None,
    build: ModelFactory | None = None,
    dims: Any = None,
) -> CrossValidationPlan:
    """The cross-validation of ``data`` under ``train_config``; see :func:`cross_validate`."""
    if build is None:
        from mosare.model.factory import build_model

        build = build_model
    device = device or resolve_device()
    plan = runnable_plan(data, train_config, cohort)
    repeats = train_config.get("repeats", 1)
    folds = np.stack(
        [
            _survival_folds(data, train_config, cohort, r)
            if data.is_survival
            else check_cohort_splits(
                cohort,
                data.patient_ids,
                data.labels,
                {**train_config, "seed": repeat_seed(train_config["seed"], r)},
                sites=data.sites,
                classes=data.classes,
            )
            for r in range(repeats)
        ]
    )
    context = RunContext(
        folds=folds,
        train_config={**train_config, "models": plan.models},  # the models this cohort can run
        cohort=cohort,
        train_dir=Path(train_dir),
        device=str(device),
        build=build,
        dims=dims if dims is not None else model_dims(data, train_config),
    )
    return CrossValidationPlan(plan, folds, context)


def run_units(
    data: CohortData,
    cv: CrossValidationPlan,
    units: Sequence[tuple[int, int, tuple[Scenario, ...]]],
    *,
    workers: int = 1,
    pool: Executor | None = None,
) -> dict[tuple[int, int], FoldResults]:
    """Train and test ``units``; their results by (repeat, fold). Runs in ``pool``, else in ``workers`` processes
    on the CPU, else here; every unit is seeded by its arguments, so the results do not depend on where it ran."""
    device = torch.device(cv.context.device)
    make_deterministic(device)
    with contextlib.ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(cohort_workers(data, min(workers, len(units)), device))
        unit_task = functools.partial(run_unit, progress=pool is None)
        futures = [submit(pool, data, unit_task, cv.context, *unit) for unit in units]
        for _ in tqdm(
            concurrent.futures.as_completed(futures),
            total=len(futures),
            desc="repeat x fold x training group",
            disable=pool is None,
        ):
            pass
        by_unit: dict[tuple[int, int], FoldResults] = {(repeat, fold): {} for repeat, fold, _ in units}
        for (repeat, fold, _), future in zip(units, futures, strict=True):
            by_unit[repeat, fold].update(future.result())
    return by_unit


def collect_cross_validation(
    data: CohortData, cv: CrossValidationPlan, by_unit: dict[tuple[int, int], FoldResults]
) -> CrossValidation:
    """The tables of a finished cross-validation from its folds' results (every fold of :meth:`fold_keys`)."""
    missing = [key for key in cv.fold_keys() if key not in by_unit]
    if missing:
        raise ValueError(f"{cv.context.cohort}: no results for (repeat, fold) {missing}")
    # Rows in (repeat, fold, scenario, model) order, as the scenarios are listed.
    results = [by_unit[key][scenario] for key in cv.fold_keys() for scenario in cv.plan.scenarios]
    metric_rows = [row for rows, _ in results for row in rows]
    predictions = [frame for _, frames in results for frame in frames]
    return CrossValidation(
        splits_table(data, cv.folds),
        pd.DataFrame(metric_rows),
        pd.concat(predictions, ignore_index=True),
        realised_rates_table(data, cv.context, cv.plan.scenarios),
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
    pool: Executor | None = None,
) -> CrossValidation:
    """Every model x scenario x repeat x fold: splits, per-fold metrics, test predictions, realised missing rates.

    Per-fold outputs go to ``train_dir/{model}/{scenario}/fold{k}/`` (``repeat{r}/fold{k}`` for later repeats):
    ``predictions.tsv`` (averaged over mask draws), and per mask draw ``history.tsv`` and ``checkpoint.pt`` (draws
    after the first: ``history-draw{d}.tsv``, ``checkpoint-draw{d}.pt``). ``build`` and ``dims`` default to
    ``mosare.model.build_model`` and the cohort's ``ModelDims``. With ``workers`` > 1 on the CPU, units run in that
    many single-threaded processes (``build`` must then be picklable), or in ``pool`` (:func:`cohort_workers` of the
    same ``data``) where one is given; results do not depend on the number of workers. Models and scenarios the
    cohort cannot run (:func:`plan_evaluation`) are skipped with a log line. The workflow runs the same in one job per
    fold (:func:`plan_cross_validation`, :func:`run_units` for the fold's units, then :func:`collect_cross_validation`).
    """
    cv = plan_cross_validation(data, train_config, cohort, train_dir, device, build, dims)
    return collect_cross_validation(data, cv, run_units(data, cv, cv.units(), workers=workers, pool=pool))
