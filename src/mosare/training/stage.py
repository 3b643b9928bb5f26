"""The training stage of one cohort: load its stores, cross-validate every model in every scenario
(``mosare.training.cross_validation``), write the result tables (``mosare.evaluation.results``) and train and save
the final models (``mosare.training.final_models``).

The workflow runs it as jobs a cluster can spread: :func:`train_folds` (one job per fold of a repeat),
:func:`train_final_models` (one job) and :func:`evaluate` (one job, reading what the others wrote).
:func:`train_and_evaluate` runs the same in one process, one pool of workers; both give the same bits.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mosare.cohort.data import CohortInputs
from mosare.core.atomic_files import atomic_file
from mosare.core.devices import resolve_device
from mosare.core.resources import usable_cores
from mosare.evaluation.results import ResultTables, evaluation_tables, write_results
from mosare.training.cross_validation import (
    CrossValidation,
    CrossValidationPlan,
    FoldResults,
    cohort_workers,
    collect_cross_validation,
    model_dims,
    plan_cross_validation,
    run_units,
    runnable_plan,
    submit,
)
from mosare.training.plan import FoldKey

log = logging.getLogger(__name__)


def train_and_evaluate(
    cohort: str,
    classes: list[str],
    train_config: dict[str, Any],
    inputs: CohortInputs,
    outputs: dict[str, str | Path],
    threads: int,
    rna_top_genes: int | None = None,
    left_out_slides: Mapping[str, str] | None = None,
) -> ResultTables:
    """The whole training stage of one cohort: load the stores, cross-validate every model in every scenario,
    write the tables (figures are drawn from them by ``mosare.reporting``). ``outputs``: splits, metrics, summary,
    comparisons, predictions, train_dir and, to train and save the final models on the whole cohort
    (:mod:`mosare.training.final_models`), models.
    ``rna_top_genes``: the config's ``rna.top_genes``, chosen inside each fold's training part. ``left_out_slides``:
    slide id -> why, of the slides the cohort table left out (``mosare.cohort.slide_qc_table.slides_left_out``;
    None for a slide-less cohort), listed in metrics.md. With several CPU cores, the cross-validation units and the final models share one pool of
    single-threaded worker processes."""
    from mosare.model.factory import build_model
    from mosare.training.final_models import train_final_model

    data, train_config, device, dims = _training_setup(cohort, classes, train_config, inputs, rna_top_genes)
    cores = usable_cores(threads)
    cv = plan_cross_validation(data, train_config, cohort, outputs["train_dir"], device, dims=dims)
    log.info(
        "%s: %d patients (%d with WSI, %d RNA, %d report), %d models x %d scenarios x %d folds x %d repeats on %s, "
        "%d worker(s)",
        cohort, data.n_patients, *data.available.sum(axis=0), len(cv.plan.models), len(cv.plan.scenarios),
        train_config["folds"], train_config.get("repeats", 1), device, cores,
    )  # fmt: skip
    torch.set_num_threads(cores)
    final_config = {**train_config, "models": cv.plan.models}
    with cohort_workers(data, cores, device) as pool:
        # In the same pool as the units (first in its queue), not one after another in this process afterwards.
        final_models = (
            {
                name: submit(pool, data, train_final_model, name, final_config, build_model, dims, device)
                for name in cv.plan.models
            }
            if "models" in outputs
            else {}
        )
        run = collect_cross_validation(data, cv, run_units(data, cv, cv.units(), pool=pool))
        trained = {name: future.result() for name, future in final_models.items()} if final_models else None
        return _write_stage_outputs(cohort, classes, train_config, inputs, data, cv, run, trained, dims, outputs,
                                    left_out_slides)  # fmt: skip


def write_fold_results(results: FoldResults, path: str | Path) -> None:
    """One fold's unit results (metric rows and predictions per scenario), exactly as the evaluation reads them."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL))


def read_fold_results(path: str | Path) -> FoldResults:
    """What :func:`write_fold_results` wrote (this workflow's own file, written by a fold job of the same code)."""
    return pickle.loads(Path(path).read_bytes())


def _training_setup(
    cohort: str, classes: list[str], train_config: dict[str, Any], inputs: CohortInputs, rna_top_genes: int | None
) -> tuple[Any, dict[str, Any], torch.device, Any]:
    """(cohort data, train config with rna_top_genes, device, model dims), as every training job starts."""
    data = inputs.load(classes)
    train_config = {**train_config, "rna_top_genes": rna_top_genes}
    return data, train_config, resolve_device(), model_dims(data, train_config)


def train_folds(
    cohort: str,
    classes: list[str],
    train_config: dict[str, Any],
    inputs: CohortInputs,
    folds: Mapping[FoldKey, str | Path],
    train_dir: str | Path,
    threads: int,
    rna_top_genes: int | None = None,
) -> None:
    """Train and test every model and scenario of the given (repeat, fold)s, in ``threads`` worker processes; write
    each fold's results to its path in ``folds`` and its per-unit outputs under ``train_dir``."""
    data, train_config, device, dims = _training_setup(cohort, classes, train_config, inputs, rna_top_genes)
    cores = usable_cores(threads)
    torch.set_num_threads(1)  # units run single-threaded wherever they run: their bits do not depend on the cores
    cv = plan_cross_validation(data, train_config, cohort, train_dir, device, dims=dims)
    units = [unit for repeat, fold in folds for unit in cv.units(repeat, fold)]
    log.info(
        "%s: (repeat, fold) %s, %d training units on %s, %d worker(s)", cohort, list(folds), len(units), device, cores
    )
    results = run_units(data, cv, units, workers=cores)
    for key, path in folds.items():
        write_fold_results(results[key], path)


def train_final_models(
    cohort: str,
    classes: list[str],
    train_config: dict[str, Any],
    inputs: CohortInputs,
    output: str | Path,
    threads: int,
    rna_top_genes: int | None = None,
) -> None:
    """Train every model the cohort can run on all its patients (``threads`` worker processes); write the trained
    weights and statistics to ``output`` for :func:`evaluate`, which saves them with their model cards."""
    from mosare.model.factory import build_model
    from mosare.training.final_models import train_final_model

    data, train_config, device, dims = _training_setup(cohort, classes, train_config, inputs, rna_top_genes)
    cores = usable_cores(threads)
    torch.set_num_threads(1)  # as in train_folds: single-threaded in the workers and here alike
    plan = runnable_plan(data, train_config, cohort)
    final_config = {**train_config, "models": plan.models}
    with cohort_workers(data, min(cores, len(plan.models)), device) as pool:
        futures = {
            name: submit(pool, data, train_final_model, name, final_config, build_model, dims, device)
            for name in plan.models
        }
        trained = {name: future.result() for name, future in futures.items()}
    with atomic_file(output) as tmp:
        torch.save(trained, tmp)


def evaluate(
    cohort: str,
    classes: list[str],
    train_config: dict[str, Any],
    inputs: CohortInputs,
    folds: Mapping[FoldKey, str | Path],
    final_models: str | Path | None,
    outputs: dict[str, str | Path],
    rna_top_genes: int | None = None,
    left_out_slides: Mapping[str, str] | None = None,
) -> ResultTables:
    """The tables of the cross-validation whose folds :func:`train_folds` wrote (``folds``), and the final models
    :func:`train_final_models` trained (``final_models``) saved under ``outputs["models"]`` with their model cards;
    ``outputs`` as for :func:`train_and_evaluate`."""
    data, train_config, device, dims = _training_setup(cohort, classes, train_config, inputs, rna_top_genes)
    cv = plan_cross_validation(data, train_config, cohort, outputs["train_dir"], device, dims=dims)
    run = collect_cross_validation(data, cv, {key: read_fold_results(path) for key, path in folds.items()})
    trained = None if final_models is None else torch.load(final_models, map_location="cpu", weights_only=False)
    return _write_stage_outputs(
        cohort, classes, train_config, inputs, data, cv, run, trained, dims, outputs, left_out_slides
    )


def _write_stage_outputs(
    cohort: str,
    classes: list[str],
    train_config: dict[str, Any],
    inputs: CohortInputs,
    data: Any,
    cv: CrossValidationPlan,
    run: CrossValidation,
    trained: Mapping[str, Any] | None,
    dims: Any,
    outputs: Mapping[str, str | Path],
    left_out_slides: Mapping[str, str] | None,
) -> ResultTables:
    """The tables of a finished cross-validation and, given ``trained`` and ``outputs["models"]``, the final models
    saved with their model cards: what :func:`train_and_evaluate` and :func:`evaluate` both end with."""
    from mosare.training.final_models import InputFacts, write_final_models

    if data.is_survival:
        tables = _write_survival_tables(train_config, inputs, data, cv, run, outputs, left_out_slides)
    else:
        tables = evaluation_tables(run.fold_metrics, run.predictions, train_config, classes, run.realised_rates)
        write_results(
            run.splits, tables, run.predictions, train_config, outputs,
            excluded=data.excluded, skipped=cv.plan.skipped, report_notes=report_encoding_note(inputs.text),
            left_out_slides=left_out_slides,
        )  # fmt: skip
    if trained is not None and "models" in outputs:
        final_config = {**train_config, "models": cv.plan.models}
        log.info("%s: saving the final models, trained on all %d patients", cohort, data.n_patients)
        write_final_models(
            data, final_config, cohort, outputs["models"],
            InputFacts.read(data, inputs.features_dir, inputs.text, inputs.rna), tables.metrics, tables.comparisons,
            rna_gene_ids(inputs.rna), dims, trained,
        )  # fmt: skip
    return tables


def _write_survival_tables(
    train_config: dict[str, Any],
    inputs: CohortInputs,
    data: Any,
    cv: CrossValidationPlan,
    run: CrossValidation,
    outputs: Mapping[str, str | Path],
    left_out_slides: Mapping[str, str] | None,
) -> ResultTables:
    """A survival cohort's tables (``mosare.evaluation.survival_results``)."""
    from mosare.evaluation.survival_results import survival_evaluation_tables, write_survival_results

    tables = survival_evaluation_tables(run.fold_metrics, run.predictions, run.splits, train_config, run.realised_rates)
    write_survival_results(
        run.splits, tables, run.predictions, train_config, outputs,
        excluded=data.excluded, skipped=cv.plan.skipped, report_notes=report_encoding_note(inputs.text),
        left_out_slides=left_out_slides, time_unit=str(train_config.get("time_unit", "months")),
    )  # fmt: skip
    return tables


def rna_gene_ids(rna_store: str | Path) -> list[str]:
    """The gene ids of an RNA store, in column order."""
    from mosare.features.rna_store import RNAStore

    return RNAStore.read_gene_ids(rna_store)


def report_encoding_note(text_store: str | Path) -> str:
    """One line for metrics.md saying which parts of the reports were encoded (from the text store's attributes)."""
    from mosare.features.text_store import TextStore

    encoding = TextStore.read_encoding(text_store)
    if not encoding.dim or not TextStore.read_presence(text_store)[1].any():
        return "Reports: none in this cohort."
    dropped = encoding.drop_sections or []
    sections = f"every section except {', '.join(dropped)}" if dropped else "every section"
    return (
        f"Reports encoded: {sections}; every diagnostic phrase matching one of the {len(encoding.leak_patterns or [])} "
        f"subtype patterns replaced by {encoding.subtype_token or '[subtype]'} (`text.drop_sections`, "
        "`report_leak_patterns`)."
    )
