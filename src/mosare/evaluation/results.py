"""From cross-validation outputs to the tables users publish: metrics.tsv (per-fold values, pooled out-of-fold
values with bootstrap CIs, realised missing rates), comparisons.tsv (MoSARe against every other model, paired),
predictions.tsv (every out-of-fold prediction) and metrics.md. The figures drawn from them (ROC, training curves,
comparison forest plot, reliability diagram) are cohort figures in ``mosare.reporting.figure_plugins``.

Pooled predictions: every patient's out-of-fold class probabilities, averaged over the repeats of repeated
cross-validation (one row per patient, model and scenario). Every interval and test is computed on them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mosare.core.atomic_files import atomic_file, write_tsv
from mosare.core.config_schema import schema_defaults
from mosare.evaluation.evidence import CI_LEVEL, auc_with_interval, holm_adjust, paired_auc_comparison
from mosare.evaluation.metrics import (
    KEY_COLUMNS,
    METRICS,
    classification_metrics,
    metrics_markdown,
    scenario_label,
    summarise_folds,
)
from mosare.evaluation.repeats import repeat_spread_markdown
from mosare.evaluation.splits import derived_seed, split_setting

REFERENCE_MODEL = "mosare"
SCENARIO_KEYS: tuple[str, ...] = ("scenario", "train_missing_rate", "test_missing_rate")
BASELINES_FOR_CALIBRATION: tuple[str, ...] = ("abmil", "rna_mlp", "report_mlp", "late_fusion")


@dataclasses.dataclass
class ResultTables:
    """What the training stage writes, as tables."""

    metrics: pd.DataFrame  # long: keys, metric, pooled, ci_low, ci_high, mean, std, realised rates, per-fold columns
    comparisons: pd.DataFrame  # one row per scenario x compared model: paired AUC difference, CI, DeLong, Holm
    pooled: pd.DataFrame  # out-of-fold probabilities per model x scenario x patient, averaged over repeats


def probability_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("prob_")]


def pooled_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    """Each patient's out-of-fold probabilities per model and scenario, averaged over repeats."""
    keys = [*KEY_COLUMNS, "patient_id", "label"]
    return predictions.groupby(keys, sort=False)[probability_columns(predictions)].mean().reset_index()


def label_index(frame: pd.DataFrame, classes: Sequence[str]) -> np.ndarray:
    return frame["label"].map({name: i for i, name in enumerate(classes)}).to_numpy(dtype=np.int64)


def pooled_metric_rows(pooled: pd.DataFrame, classes: Sequence[str], n_resamples: int, seed: int) -> pd.DataFrame:
    """Per model x scenario x metric: the metric of the pooled predictions, with a class-stratified bootstrap CI
    for the AUC (the other metrics have no interval)."""
    rows = []
    for key, group in pooled.groupby(list(KEY_COLUMNS), sort=False):
        labels = label_index(group, classes)
        probabilities = group[probability_columns(group)].to_numpy(dtype=np.float64)
        values = classification_metrics(labels, probabilities)
        auc, low, high = auc_with_interval(labels, probabilities, n_resamples, seed)
        for metric in METRICS:
            interval = (low, high) if metric == "auc" else (np.nan, np.nan)
            rows.append({**dict(zip(KEY_COLUMNS, key)), "metric": metric, "pooled": values[metric],
                         "ci_low": interval[0], "ci_high": interval[1]})  # fmt: skip
    return pd.DataFrame(rows)


def comparison_table(
    pooled: pd.DataFrame, classes: Sequence[str], n_resamples: int, seed: int, reference: str = REFERENCE_MODEL
) -> pd.DataFrame:
    """``reference`` against every other model in every scenario, on the patients both predicted: AUC difference,
    its paired-bootstrap CI (the same resampled patients for both), DeLong's two-sided p (two classes) and the
    Holm-adjusted p over every comparison of the cohort. Empty when ``reference`` was not run."""
    rows = []
    if reference not in set(pooled["model"]):
        return pd.DataFrame()
    for scenario_key, group in pooled.groupby(["cohort", *SCENARIO_KEYS], sort=False):
        by_model = {model: rows_.set_index("patient_id") for model, rows_ in group.groupby("model", sort=False)}
        if reference not in by_model:
            continue
        ours = by_model[reference]
        for model, theirs in by_model.items():
            if model == reference:
                continue
            patients = ours.index.intersection(theirs.index)
            labels = label_index(ours.loc[patients].reset_index(), classes)
            columns = probability_columns(ours)
            p_ours = ours.loc[patients, columns].to_numpy(np.float64)
            p_theirs = theirs.loc[patients, columns].to_numpy(np.float64)
            rows.append(
                {
                    **dict(zip(["cohort", *SCENARIO_KEYS], scenario_key)),
                    "model": reference,
                    "compared_to": model,
                    "n_patients": len(patients),
                    **paired_auc_comparison(labels, p_ours, p_theirs, n_resamples, seed),
                }
            )
    table = pd.DataFrame(rows)
    if len(table):
        table["p_holm"] = holm_adjust(table["p_delong"].to_numpy())
    return table


def evaluation_resamples(train_config: Mapping[str, Any]) -> tuple[int, int]:
    """The bootstrap's resamples (``train.bootstrap_resamples``) and seed (from ``train.seed``), shared by every table
    of the evaluation."""
    n_resamples = int(train_config.get("bootstrap_resamples", schema_defaults("train")["bootstrap_resamples"]))
    return n_resamples, derived_seed(train_config["seed"], 17)


def evaluation_tables(
    fold_metrics: pd.DataFrame,
    predictions: pd.DataFrame,
    train_config: Mapping[str, Any],
    classes: Sequence[str],
    realised_rates: pd.DataFrame | None = None,
) -> ResultTables:
    """metrics.tsv and comparisons.tsv as tables (``train.bootstrap_resamples`` resamples, seeded by ``train.seed``)."""
    n_resamples, seed = evaluation_resamples(train_config)
    table = summarise_folds(fold_metrics, train_config["folds"], train_config.get("repeats", 1))
    pooled = pooled_predictions(predictions)
    table = table.merge(pooled_metric_rows(pooled, classes, n_resamples, seed), on=[*KEY_COLUMNS, "metric"], how="left")
    if realised_rates is not None and len(realised_rates):
        table = table.merge(realised_rates, on=list(SCENARIO_KEYS), how="left")
    fold_columns = [c for c in table.columns if c.startswith(("fold", "repeat"))]
    leading = [*KEY_COLUMNS, "metric", "pooled", "ci_low", "ci_high", "mean", "std"]
    middle = [c for c in table.columns if c not in leading and c not in fold_columns]
    return ResultTables(
        metrics=table[leading + middle + fold_columns],
        comparisons=comparison_table(pooled, classes, n_resamples, seed),
        pooled=pooled,
    )


def realised_rates_markdown(table: pd.DataFrame) -> str:
    """Nominal against realised missing rates per scenario (share of the existing modality that was hidden)."""
    columns = [c for c in table.columns if c.startswith("realised_")]
    if not columns:
        return ""
    rows = table.drop_duplicates(list(SCENARIO_KEYS))
    rows = rows[rows["scenario"] != "complete"]
    if rows.empty:
        return ""
    header = "| scenario | " + " | ".join(c.removeprefix("realised_").replace("_missing_", " ") for c in columns) + " |"
    lines = [header, "|---" * (len(columns) + 1) + "|"]
    for _, row in rows.iterrows():
        label = scenario_label(row["scenario"], row["train_missing_rate"], row["test_missing_rate"])
        lines.append(
            f"| {label} | " + " | ".join("n/a" if pd.isna(row[c]) else f"{row[c]:.2f}" for c in columns) + " |"
        )
    return (
        "\n## Realised missing rates\n\nShare of the patients having a modality from whom it was hidden, on the "
        "training side (fit + validation) and the test side, over all folds, repeats and mask draws. The paper's "
        "rule (keep at least one modality, never drop WSI and RNA together) brings them below the nominal rate.\n\n"
        + "\n".join(lines) + "\n"
    )  # fmt: skip


def calibration_markdown(table: pd.DataFrame, models: Sequence[str]) -> str:
    rows = table[(table["scenario"] == "complete") & table["metric"].isin(["brier", "ece"])]
    if rows.empty:
        return ""
    grid = rows.pivot_table(index="model", columns="metric", values="pooled", aggfunc="first", sort=False)
    lines = ["| model | Brier | ECE (15 bins) |", "|---|---|---|"]
    lines += [f"| {m} | {grid.loc[m, 'brier']:.3f} | {grid.loc[m, 'ece']:.3f} |" for m in models if m in grid.index]
    return "\n## Calibration (complete data, pooled out-of-fold)\n\n" + "\n".join(lines) + "\n"


def comparisons_markdown(comparisons: pd.DataFrame) -> str:
    return paired_comparisons_markdown(
        comparisons,
        f"AUC difference with a paired-bootstrap {CI_LEVEL:.0%} CI, DeLong's two-sided p",
        "auc_difference",
    )


def paired_comparisons_markdown(comparisons: pd.DataFrame, method: str, difference: str) -> str:
    """metrics.md's paired comparisons of the reference model with every other (comparisons.tsv): how they were made
    (``method``) and each difference (column ``difference``) that survives Holm."""
    if comparisons.empty:
        return ""
    significant = comparisons[comparisons["p_holm"] < 0.05]
    lines = [
        f"\n## Paired comparisons ({REFERENCE_MODEL} against every other model, comparisons.tsv)\n",
        f"{len(comparisons)} comparisons on the same patients: {method}, Holm-adjusted over all of them.",
    ]
    if significant.empty:
        lines.append("No difference is significant after Holm's adjustment (p_holm < 0.05).")
    else:
        lines.append("Significant after Holm (p_holm < 0.05):\n")
        for _, row in significant.iterrows():
            label = scenario_label(row["scenario"], row["train_missing_rate"], row["test_missing_rate"])
            lines.append(
                f"- {label}: {row['model']} vs {row['compared_to']} {row[difference]:+.3f} "
                f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}], p_holm {row['p_holm']:.3g}"
            )
    return "\n".join(lines) + "\n"


def excluded_slides_markdown(left_out_slides: Mapping[str, str] | None) -> str:
    """metrics.md's list of the slides left out of training (slide id -> why; None for a slide-less cohort): those
    that could not be used (``slides.on_error: exclude``) and, with ``qc.exclude_flagged``, those slide QC flagged."""
    if left_out_slides is None:
        return ""
    markdown = f"\nSlides left out of training (`slides.on_error`, `qc.exclude_flagged`): {len(left_out_slides)}.\n"
    return markdown + "".join(f"- {slide}: {why}\n" for slide, why in left_out_slides.items())


SITE_MAJORITY = 0.5  # metrics.md warns when one site holds more than this share of one class's patients


def split_markdown(splits: pd.DataFrame, train_config: Mapping[str, Any]) -> str:
    """metrics.md's statement of the split (``train.split``) and, when the sites are known (``splits`` has a
    ``site`` column), a warning for every site holding more than half of one class's patients: there, site and
    class go together, so a model can score by recognising the site."""
    split, folds = split_setting(train_config), train_config["folds"]
    if split == "site":
        statement = (
            f"Split: by site (`train.split: site`): {folds} test folds stratified by class, every site's patients in "
            f"one test fold ({splits['site'].nunique()} sites)."
        )
    else:
        statement = (
            f"Split: by patient (`train.split: patient`): {folds} test folds stratified by class, every patient's "
            "slides in one test fold."
        )
    statement += " The validation split inside each training fold is patient-level, stratified by class."
    if "site" not in splits.columns:
        return (
            f"\n{statement} Sites: unknown (the sample sheet gives none), so site-class confounding is not checked.\n"
        )
    counts = pd.crosstab(splits["site"].astype(str), splits["label"])
    if len(counts) < 2:
        return f"\n{statement} Sites: one, so site and class cannot go together.\n"
    share, overall = counts / counts.sum(axis=0), counts.sum(axis=1)
    advice = (
        "the fold testing that site trains on few patients of that class"
        if split == "site"
        else "a model may score by recognising the site; compare with `train.split: site`"
    )
    warnings = [
        f"- **Warning**: site {site} holds {counts.loc[site, label]} of {counts[label].sum()} {label} patients "
        f"({share.loc[site, label]:.0%}; {overall[site]} of {overall.sum()} patients overall): {advice}."
        for label in counts.columns
        for site in counts.index[share[label] > SITE_MAJORITY]
    ]
    if not warnings:
        return f"\n{statement} Sites: {len(counts)}; none holds more than half of a class's patients.\n"
    return f"\n{statement} Sites: {len(counts)}.\n\n" + "\n".join(warnings) + "\n"


def write_results(
    splits: pd.DataFrame,
    tables: ResultTables,
    predictions: pd.DataFrame,
    train_config: dict[str, Any],
    outputs: Mapping[str, str | Path],
    excluded: Sequence[str] = (),
    skipped: Mapping[str, str] | None = None,
    report_notes: str = "",
    left_out_slides: Mapping[str, str] | None = None,
) -> None:
    """Write splits.tsv, metrics.tsv, comparisons.tsv, predictions.tsv and metrics.md (the ``outputs`` given).

    ``excluded``: patients no model could classify (no modality at all), named in metrics.md. ``skipped``: models
    and scenarios not run, named with their reason in metrics.md. ``report_notes``: which parts of the reports were
    encoded. ``left_out_slides``: slide id -> why, of the slides training left out (None for a slide-less cohort),
    listed in metrics.md."""
    table, models = tables.metrics, train_config["models"]
    write_result_tables(splits, tables, predictions, outputs)
    markdown = metrics_markdown(table, "auc", models)
    markdown += repeat_spread_markdown(predictions, int(train_config.get("repeats", 1)), models)
    markdown += split_markdown(splits, train_config)
    markdown += realised_rates_markdown(table) + calibration_markdown(table, models)
    markdown += comparisons_markdown(tables.comparisons)
    write_summary(markdown, outputs, excluded, skipped, report_notes, left_out_slides)


def write_result_tables(
    splits: pd.DataFrame, tables: ResultTables, predictions: pd.DataFrame, outputs: Mapping[str, str | Path]
) -> None:
    """splits.tsv, metrics.tsv and (the ``outputs`` given) comparisons.tsv and predictions.tsv, of either task."""
    write_tsv(splits, Path(outputs["splits"]))
    write_tsv(tables.metrics, Path(outputs["metrics"]))
    if "comparisons" in outputs:
        write_tsv(tables.comparisons, Path(outputs["comparisons"]))
    if "predictions" in outputs:
        write_tsv(predictions, Path(outputs["predictions"]))


def write_summary(
    markdown: str,
    outputs: Mapping[str, str | Path],
    excluded: Sequence[str] = (),
    skipped: Mapping[str, str] | None = None,
    report_notes: str = "",
    left_out_slides: Mapping[str, str] | None = None,
) -> None:
    """metrics.md: a task's own ``markdown``, then what every cohort's ends with (:func:`write_results`' arguments)."""
    if report_notes:
        markdown += f"\n{report_notes}\n"
    if skipped:
        markdown += "\nNot run on this cohort:\n\n" + "".join(f"- {name}: {why}\n" for name, why in skipped.items())
    if excluded:
        markdown += f"\nLeft out of every model (no modality at all): {', '.join(excluded)}.\n"
    markdown += excluded_slides_markdown(left_out_slides)
    with atomic_file(outputs["summary"]) as tmp:
        tmp.write_text(markdown, encoding="utf-8")


def calibration_pair(table: pd.DataFrame, models: Sequence[str]) -> list[str]:
    """MoSARe (or the first model) and the baseline with the best pooled AUC on complete data."""
    first = REFERENCE_MODEL if REFERENCE_MODEL in models else models[0]
    rows = table[
        (table["scenario"] == "complete") & (table["metric"] == "auc") & table["model"].isin(BASELINES_FOR_CALIBRATION)
    ]
    rows = rows[rows["model"] != first].dropna(subset=["pooled"])
    return [first] + ([str(rows.sort_values("pooled", ascending=False)["model"].iloc[0])] if len(rows) else [])
