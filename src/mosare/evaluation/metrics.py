"""Classification metrics from predicted probabilities, and their fold summaries (long and markdown tables).

Every metric comes from probabilities, never from hard labels: AUC on the positive-class probability (one-vs-rest
macro average with more than two classes; ``roc_auc_score``, or its exact rank form for two classes); F1 (macro),
accuracy and balanced accuracy from scikit-learn on the arg-max class; Brier score and ECE (calibration, from
:mod:`mosare.evaluation.evidence`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

from mosare.evaluation.evidence import brier_score, expected_calibration_error

METRICS: tuple[str, ...] = ("auc", "f1_macro", "accuracy", "balanced_accuracy", "brier", "ece")
KEY_COLUMNS: tuple[str, ...] = ("cohort", "model", "scenario", "train_missing_rate", "test_missing_rate")


def auc_score(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """ROC AUC of class probabilities (N, K); NaN when ``labels`` hold a single class (AUC is undefined).

    Two classes: the Mann-Whitney rank statistic (ties count one half), which equals ``roc_auc_score`` exactly but
    skips its input validation (it runs once per epoch in training). More classes: ``roc_auc_score`` one-vs-rest macro.
    """
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    n_classes = probabilities.shape[1]
    if np.unique(labels).size < 2:
        return float("nan")
    if n_classes == 2:
        ranks = rankdata(probabilities[:, 1])
        positive = labels == 1
        n_positive, n_negative = positive.sum(), (~positive).sum()
        return float((ranks[positive].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))
    # sklearn's multi-class AUC needs rows summing to one and every class present in labels.
    if np.unique(labels).size < n_classes:
        return float("nan")
    return float(roc_auc_score(labels, probabilities, multi_class="ovr", average="macro", labels=np.arange(n_classes)))


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """AUC, macro F1, accuracy, balanced accuracy, Brier score and ECE of probabilities (N, K) against integer
    labels (N,)."""
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] != labels.shape[0]:
        raise ValueError(
            f"probabilities must be (N, K) with N = {labels.shape[0]} labels; got shape {probabilities.shape}"
        )
    predicted = probabilities.argmax(axis=1)
    class_ids = np.arange(probabilities.shape[1])
    return {
        "auc": auc_score(labels, probabilities),
        "f1_macro": float(f1_score(labels, predicted, average="macro", labels=class_ids, zero_division=0)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "brier": brier_score(labels, probabilities),
        "ece": expected_calibration_error(labels, probabilities),
    }


def fold_column(repeat: int, fold: int) -> str:
    """Per-fold column of metrics.tsv: ``fold{k}`` in the first repeat, ``repeat{r}_fold{k}`` in later ones."""
    return f"fold{fold}" if repeat == 0 else f"repeat{repeat}_fold{fold}"


def summarise_folds(
    fold_metrics: pd.DataFrame, n_folds: int, repeats: int = 1, metrics: Sequence[str] = METRICS
) -> pd.DataFrame:
    """Long metrics table: one row per cohort x model x scenario x rates x metric, with mean, std and one column per
    (repeat, fold) (:func:`fold_column`).

    ``fold_metrics`` has the key columns, ``fold`` (and ``repeat``, 0 when absent) and one column per metric.
    ``std`` is the sample standard deviation over every repeat's folds (ddof=1); a fold whose metric is undefined
    (NaN) is left out of mean and std.
    """
    fold_columns = [fold_column(r, k) for r in range(repeats) for k in range(n_folds)]
    frame = fold_metrics.assign(
        column=[
            fold_column(r, k)
            for r, k in zip(fold_metrics.get("repeat", 0 * fold_metrics["fold"]), fold_metrics["fold"])
        ]
    )
    long = frame.melt(id_vars=[*KEY_COLUMNS, "column"], value_vars=list(metrics), var_name="metric", value_name="value")
    wide = long.set_index([*KEY_COLUMNS, "metric", "column"])["value"].unstack("column").reindex(columns=fold_columns)
    wide.columns.name = None
    values = wide.to_numpy(dtype=np.float64)
    counts = np.sum(~np.isnan(values), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, np.nansum(values, axis=1) / np.maximum(counts, 1), np.nan)
        squared = np.nansum((values - mean[:, None]) ** 2, axis=1)
        std = np.where(counts > 1, np.sqrt(squared / np.maximum(counts - 1, 1)), np.nan)
    wide.insert(0, "std", std)
    wide.insert(0, "mean", mean)
    table = wide.reset_index()
    # Rows in the order the runs came (models as configured, scenarios as run), metrics in METRICS order.
    run_order = {key: i for i, key in enumerate(dict.fromkeys(map(tuple, fold_metrics[list(KEY_COLUMNS)].to_numpy())))}
    table["_run"] = [run_order[tuple(key)] for key in table[list(KEY_COLUMNS)].to_numpy()]
    table["_metric"] = table["metric"].map({name: i for i, name in enumerate(metrics)})
    return table.sort_values(["_run", "_metric"]).drop(columns=["_run", "_metric"]).reset_index(drop=True)


def scenario_label(scenario: str, train_rate: float, test_rate: float) -> str:
    """Column title of a scenario in the summary table, e.g. ``train 0.3 / test 0 missing``, ``MNAR text 0.3``."""
    if scenario == "complete":
        return "complete"
    if scenario.startswith("mnar_"):
        return f"MNAR {scenario.removeprefix('mnar_')} {train_rate:g}"
    return f"train {train_rate:g} / test {test_rate:g} missing"


def summary_cell(mean: float, std: float, counted: int, n_folds: int) -> str:
    """``mean ± std``, with ``(counted/n folds)`` when some folds' metric is undefined; ``n/a`` when none has it."""
    if counted == 0:
        return "n/a"
    cell = f"{mean:.3f} ± {std:.3f}" if np.isfinite(std) else f"{mean:.3f}"
    return cell if counted == n_folds else f"{cell} ({counted}/{n_folds} folds)"


def interval_cell(pooled: float, low: float, high: float) -> str:
    """``0.812 [0.660, 0.940]``: a pooled value and its 95% CI (the value alone when there is no interval)."""
    if not np.isfinite(pooled):
        return "n/a"
    return f"{pooled:.3f} [{low:.3f}, {high:.3f}]" if np.isfinite(low) else f"{pooled:.3f}"


def metrics_markdown(table: pd.DataFrame, metric: str = "auc", models: Sequence[str] | None = None) -> str:
    """Markdown summary: one table per cohort, models as rows, scenarios as columns. A cell is the pooled
    out-of-fold value with its 95% bootstrap CI, then ``mean ± std`` over test folds (naming how many folds it
    averages when some fold's metric is undefined); tables without pooled columns show ``mean ± std`` alone."""
    fold_columns = [c for c in table.columns if c.startswith(("fold", "repeat"))]
    pooled = "pooled" in table.columns
    sections = []
    for cohort, rows in table[table["metric"] == metric].groupby("cohort", sort=False):
        counted = rows[fold_columns].notna().sum(axis=1)
        spread = [summary_cell(m, s, int(k), len(fold_columns)) for m, s, k in zip(rows["mean"], rows["std"], counted)]
        if pooled:
            intervals = [interval_cell(p, lo, hi) for p, lo, hi in zip(rows["pooled"], rows["ci_low"], rows["ci_high"])]
            cells = [f"{i} ({s})" if s != "n/a" else i for i, s in zip(intervals, spread)]
        else:
            cells = spread
        rows = rows.assign(
            column=[
                scenario_label(s, tr, te)
                for s, tr, te in zip(rows["scenario"], rows["train_missing_rate"], rows["test_missing_rate"])
            ],
            cell=cells,
        )
        grid = rows.pivot_table(index="model", columns="column", values="cell", aggfunc="first", sort=False)
        order = [m for m in (models or grid.index) if m in grid.index]
        grid = grid.loc[order]
        header = "| model | " + " | ".join(grid.columns) + " |"
        rule = "|---" * (len(grid.columns) + 1) + "|"
        body = ["| " + model + " | " + " | ".join(grid.loc[model].fillna("n/a")) + " |" for model in grid.index]
        title = (
            f"pooled out-of-fold [95% CI] (mean ± std over {len(fold_columns)} test folds)"
            if pooled
            else f"mean ± std over {len(fold_columns)} test folds"
        )
        sections.append(f"## {cohort}: {metric.upper()}, {title}\n\n" + "\n".join([header, rule, *body]))
    return "\n\n".join(sections) + "\n"
