"""A survival cohort's result tables: metrics.tsv, comparisons.tsv, predictions.tsv and metrics.md, the counterpart
of ``mosare.evaluation.results`` for ``task: survival``.

- **metrics.tsv**: one row per model x scenario x metric (``harrell_c``, ``uno_c``, ``td_auc@{h}``, ``ibs``), with
  ``mean``, ``std`` and one column per (repeat, fold), as for classification. ``pooled`` (with a patient-level
  bootstrap 95% CI) is given for Harrell's and Uno's C only, and counts **within-fold pairs only**: two patients of
  different test folds were ranked by different models, whose risks are not on one scale, so no such pair is
  compared (``mosare.evaluation.survival_metrics``). With repeats, each (repeat, fold) is its own fold and the
  bootstrap resamples patients with all their rows. Uno's C weighs each fold's pairs by that fold's training
  censoring distribution. AUC(t) and the IBS are per-fold values only (their ``pooled`` is empty): a pooled AUC(t)
  would need one risk scale too.
- **comparisons.tsv**: MoSARe against every other model in every scenario on the same (repeat, fold, patient)
  rows: the difference of within-fold Harrell's C, its paired-bootstrap CI, a bootstrap-normal p and Holm over every
  comparison of the cohort.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mosare.evaluation.evidence import CI_LEVEL, holm_adjust
from mosare.evaluation.metrics import KEY_COLUMNS, metrics_markdown, summarise_folds
from mosare.evaluation.results import (
    REFERENCE_MODEL,
    SCENARIO_KEYS,
    ResultTables,
    evaluation_resamples,
    paired_comparisons_markdown,
    realised_rates_markdown,
    write_result_tables,
    write_summary,
)
from mosare.evaluation.survival_metrics import (
    c_index_comparisons,
    harrell_c_index,
    survival_array,
    uno_c_index,
)

FOLD_KEYS = ("repeat", "fold")
POOLED_METRICS = ("harrell_c", "uno_c")


def fold_labels(frame: pd.DataFrame) -> np.ndarray:
    """One label per (repeat, fold): the unit whose pairs are compared."""
    return (frame["repeat"].astype(int).astype(str) + "-" + frame["fold"].astype(int).astype(str)).to_numpy()


def _training_survival(splits: pd.DataFrame) -> dict[Hashable, np.ndarray]:
    """Each (repeat, fold) label's training part (every patient not in that test fold) as a survival array."""
    times, events = splits["time"].to_numpy(np.float64), splits["event"].to_numpy().astype(bool)
    out: dict[Hashable, np.ndarray] = {}
    repeat = 0
    while True:
        column = "fold" if repeat == 0 else f"fold_repeat{repeat}"
        if column not in splits.columns:
            return out
        folds = splits[column].to_numpy()
        for fold in np.unique(folds):
            training = folds != fold
            out[f"{repeat}-{int(fold)}"] = survival_array(times[training], events[training])
        repeat += 1


def pooled_survival_rows(predictions: pd.DataFrame, splits: pd.DataFrame, n_resamples: int, seed: int) -> pd.DataFrame:
    """Per model x scenario: within-fold pooled Harrell's and Uno's C with patient-bootstrap CIs."""
    train_survival = _training_survival(splits)
    rows = []
    for key, group in predictions.groupby(list(KEY_COLUMNS), sort=False):
        time, event = group["time"].to_numpy(np.float64), group["event"].to_numpy().astype(bool)
        risk, labels, patients = group["risk"].to_numpy(np.float64), fold_labels(group), group["patient_id"].to_numpy()
        estimates = {
            "harrell_c": harrell_c_index(
                time, event, risk, fold=labels, patient=patients, n_resamples=n_resamples, seed=seed
            ),
            "uno_c": uno_c_index(
                time, event, risk, train_survival, fold=labels, patient=patients, n_resamples=n_resamples, seed=seed
            ),
        }
        for metric, estimate in estimates.items():
            rows.append({**dict(zip(KEY_COLUMNS, key)), "metric": metric, "pooled": estimate.c_index,
                         "ci_low": estimate.ci_low, "ci_high": estimate.ci_high})  # fmt: skip
    return pd.DataFrame(rows, columns=[*KEY_COLUMNS, "metric", "pooled", "ci_low", "ci_high"])


def survival_comparison_table(
    predictions: pd.DataFrame, n_resamples: int, seed: int, reference: str = REFERENCE_MODEL
) -> pd.DataFrame:
    """``reference`` against every other model in every scenario on the rows both predicted: paired within-fold
    Harrell's C difference, bootstrap CI and p, then Holm over every comparison of the cohort. Empty without the
    reference model."""
    if reference not in set(predictions["model"]):
        return pd.DataFrame()
    tables = []
    for scenario_key, group in predictions.groupby(["cohort", *SCENARIO_KEYS], sort=False):
        by_model = {
            model: frame.set_index([*FOLD_KEYS, "patient_id"]) for model, frame in group.groupby("model", sort=False)
        }
        if reference not in by_model:
            continue
        ours = by_model[reference]
        keys = dict(zip(["cohort", *SCENARIO_KEYS], scenario_key))
        for model, theirs in by_model.items():
            if model == reference:
                continue
            rows = ours.index.intersection(theirs.index)  # a fold a model was not run in has no rows
            shared = ours.loc[rows].reset_index()
            table = c_index_comparisons(
                shared["time"].to_numpy(np.float64),
                shared["event"].to_numpy().astype(bool),
                shared["risk"].to_numpy(np.float64),
                {model: theirs.loc[rows, "risk"].to_numpy(np.float64)},
                fold=fold_labels(shared),
                patient=shared["patient_id"].to_numpy(),
                n_resamples=n_resamples,
                seed=seed,
            )
            table.insert(0, "n_patients", shared["patient_id"].nunique())
            table.insert(0, "model", reference)
            for name, value in reversed(keys.items()):
                table.insert(0, name, value)
            tables.append(table.drop(columns=["p_holm"]))
    if not tables:
        return pd.DataFrame()
    comparisons = pd.concat(tables, ignore_index=True)
    column = comparisons.pop("compared_to")
    comparisons.insert(list(comparisons.columns).index("n_patients"), "compared_to", column)
    comparisons["p_holm"] = holm_adjust(comparisons["p_value"].to_numpy())
    return comparisons


def survival_evaluation_tables(
    fold_metrics: pd.DataFrame,
    predictions: pd.DataFrame,
    splits: pd.DataFrame,
    train_config: Mapping[str, Any],
    realised_rates: pd.DataFrame | None = None,
) -> ResultTables:
    """metrics.tsv and comparisons.tsv of a survival cohort (module docstring)."""
    n_resamples, seed = evaluation_resamples(train_config)
    metrics = [c for c in fold_metrics.columns if c not in (*KEY_COLUMNS, *FOLD_KEYS)]
    table = summarise_folds(fold_metrics, train_config["folds"], train_config.get("repeats", 1), metrics=metrics)
    table = table.merge(
        pooled_survival_rows(predictions, splits, n_resamples, seed), on=[*KEY_COLUMNS, "metric"], how="left"
    )
    if realised_rates is not None and len(realised_rates):
        table = table.merge(realised_rates, on=list(SCENARIO_KEYS), how="left")
    fold_columns = [c for c in table.columns if c.startswith(("fold", "repeat"))]
    leading = [*KEY_COLUMNS, "metric", "pooled", "ci_low", "ci_high", "mean", "std"]
    middle = [c for c in table.columns if c not in leading and c not in fold_columns]
    return ResultTables(
        metrics=table[leading + middle + fold_columns],
        comparisons=survival_comparison_table(predictions, n_resamples, seed),
        pooled=predictions,
    )


def survival_comparisons_markdown(comparisons: pd.DataFrame) -> str:
    return paired_comparisons_markdown(
        comparisons,
        f"difference of within-fold Harrell's C with a paired-bootstrap {CI_LEVEL:.0%} CI, a two-sided p from the "
        "bootstrap standard error",
        "c_index_difference",
    )


POOLING_NOTE = (
    "\nPooled C-indices count within-fold pairs only: two patients of different test folds were ranked by different "
    "models, whose risks are not on one scale, so no such pair is compared. Each (repeat, fold) counts by its "
    "comparable pairs; the bootstrap resamples patients with the trained models held fixed. Uno's C weighs each fold's "
    "pairs by its own training part's censoring distribution. AUC(t) and the integrated Brier score are per-fold "
    "values (mean ± std over folds) and have no pooled value.\n"
)


def write_survival_results(
    splits: pd.DataFrame,
    tables: ResultTables,
    predictions: pd.DataFrame,
    train_config: dict[str, Any],
    outputs: Mapping[str, str | Path],
    excluded: Sequence[str] = (),
    skipped: Mapping[str, str] | None = None,
    report_notes: str = "",
    left_out_slides: Mapping[str, str] | None = None,
    time_unit: str = "months",
) -> None:
    """splits.tsv, metrics.tsv, comparisons.tsv, predictions.tsv and metrics.md of a survival cohort (the configured
    models, then any reference row the table holds, such as ``coxnet_rna``)."""
    table = tables.metrics
    models = [*train_config["models"], *(m for m in dict.fromkeys(table["model"]) if m not in train_config["models"])]
    write_result_tables(splits, tables, predictions, outputs)
    survival = train_config.get("survival") or {}
    markdown = (
        f"Survival ({survival.get('head', 'hazard')} head"
        + (f", {survival.get('bins')} time bins cut at each fold's fit-part event times" if survival.get("head", "hazard") == "hazard" else "")
        + f"); times in {time_unit}; {int(splits['event'].sum())} events among {len(splits)} patients.\n\n"
    )  # fmt: skip
    markdown += metrics_markdown(table, "harrell_c", models)
    markdown += "\n" + metrics_markdown(table, "uno_c", models)
    per_fold_only = table.drop(columns=["pooled", "ci_low", "ci_high"])
    for metric in dict.fromkeys(m for m in table["metric"] if m.startswith("td_auc@") or m == "ibs"):
        markdown += "\n" + metrics_markdown(per_fold_only, metric, models)
    markdown += POOLING_NOTE
    markdown += realised_rates_markdown(table)
    markdown += survival_comparisons_markdown(tables.comparisons)
    write_summary(markdown, outputs, excluded, skipped, report_notes, left_out_slides)
