"""Patch encoders compared on one cohort (``results/{cohort}/encoder_comparison.tsv``): the same WSI-reading models
trained on each encoder's features, on the same folds, masks and seeds, then compared on the same patients.

One row per encoder x model x scenario: the pooled out-of-fold AUC with its class-stratified bootstrap CI, and, for
every encoder but the reference (``encoder``, the one behind ``metrics.tsv``), its paired difference to the
reference: a paired-bootstrap CI (the same resampled patients for both), DeLong's p and Holm's adjustment over every
such difference of the cohort. Each row also carries its encoder's embedding cost, from the embedding jobs'
Snakemake benchmark files: wall seconds and peak resident memory per job, per 1,000 patches embedded.

A survival cohort's comparison (:func:`survival_encoder_comparison_table`) has the same layout by Harrell's C: the
within-fold pooled C with its patient-level bootstrap CI, and each compared encoder's paired difference on the same
(repeat, fold, patient) rows, with its paired-bootstrap CI and bootstrap-normal p (as the models' comparisons.tsv).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mosare.core.atomic_files import atomic_file, write_tsv
from mosare.evaluation.evidence import CI_LEVEL, auc_with_interval, holm_adjust, paired_auc_comparison
from mosare.evaluation.metrics import KEY_COLUMNS, scenario_label
from mosare.evaluation.results import label_index, pooled_predictions, probability_columns
from mosare.evaluation.survival_columns import REFERENCE_COX
from mosare.evaluation.survival_metrics import harrell_c_index, paired_c_index_comparison
from mosare.evaluation.survival_results import FOLD_KEYS, fold_labels


@dataclass(frozen=True)
class ComparedMetric:
    """The columns and words of the metric encoders are compared by: AUC (classification) or Harrell's C."""

    title: str
    value: str
    difference: str
    p_value: str
    test: str

    @property
    def columns(self) -> tuple[str, ...]:
        return (
            "encoder", *KEY_COLUMNS, "n_patients", self.value, f"{self.value}_ci_low", f"{self.value}_ci_high",
            "reference_encoder", self.difference, "ci_low", "ci_high", self.p_value, "p_holm",
            "embedding_s_per_1000_patches", "embedding_peak_rss_mb", "patches_embedded",
        )  # fmt: skip


AUC = ComparedMetric("AUC", "auc", "auc_difference", "p_delong", "DeLong's p")
HARRELL_C = ComparedMetric("Harrell's C", "harrell_c", "c_index_difference", "p_value", "a bootstrap-normal p")


def compared_metric(table: pd.DataFrame) -> ComparedMetric:
    """The metric a comparison table holds."""
    return HARRELL_C if HARRELL_C.value in table.columns else AUC


COLUMNS = AUC.columns  # a classification cohort's encoder_comparison.tsv


@dataclass(frozen=True)
class EmbeddingCost:
    """What embedding a cohort's slides cost one encoder: wall seconds summed over its embedding jobs, the largest
    peak resident memory of any of them (MB), and the patches they embedded."""

    seconds: float
    peak_rss_mb: float
    patches: int

    @property
    def seconds_per_1000_patches(self) -> float:
        return 1000.0 * self.seconds / self.patches if self.patches else float("nan")


def embedding_cost(benchmark_files: Sequence[str | Path], patches: int) -> EmbeddingCost:
    """The cost recorded in Snakemake benchmark files (columns ``s`` and ``max_rss`` in MB) of one encoder's
    embedding jobs; a missing file is an error naming it (the job has not run with ``benchmark:``)."""
    seconds, peak = 0.0, 0.0
    for path in benchmark_files:
        if not Path(path).is_file():
            raise FileNotFoundError(f"embedding benchmark {path} does not exist; rerun its embedding job")
        table = pd.read_csv(path, sep="\t")
        seconds += float(table["s"].sum())
        peak = max(peak, float(pd.to_numeric(table["max_rss"], errors="coerce").max()))
    return EmbeddingCost(seconds, peak, int(patches))


def encoder_comparison_table(
    predictions: Mapping[str, pd.DataFrame],
    classes: Sequence[str],
    reference: str,
    costs: Mapping[str, EmbeddingCost],
    n_resamples: int,
    seed: int,
) -> pd.DataFrame:
    """``predictions``: each encoder's predictions.tsv (per repeat; averaged over repeats here), the ``reference``
    encoder's among them. Models are those every compared encoder trained (the WSI-reading ones), scenario by
    scenario, each on the patients both encoders predicted."""
    if reference not in predictions:
        raise ValueError(f"the reference encoder {reference!r} has no predictions; given: {sorted(predictions)}")
    pooled = {encoder: pooled_predictions(frame) for encoder, frame in predictions.items()}
    compared = [encoder for encoder in predictions if encoder != reference]
    keys = set.intersection(*(set(_keys(pooled[encoder])) for encoder in compared)) if compared else set()
    rows = []
    ours_by_key = dict(_groups(pooled[reference]))
    for encoder in [reference, *compared]:
        for key, group in _groups(pooled[encoder]):
            if key not in keys:
                continue
            theirs = group.set_index("patient_id")
            labels = label_index(group, classes)
            probabilities = group[probability_columns(group)].to_numpy(np.float64)
            auc, low, high = auc_with_interval(labels, probabilities, n_resamples, seed)
            row = {"encoder": encoder, **dict(zip(KEY_COLUMNS, key)), "n_patients": len(group), "auc": auc,
                   "auc_ci_low": low, "auc_ci_high": high, "reference_encoder": reference}  # fmt: skip
            if encoder != reference:
                ours = ours_by_key[key].set_index("patient_id")
                patients = theirs.index.intersection(ours.index)
                columns = probability_columns(group)
                paired = paired_auc_comparison(
                    label_index(theirs.loc[patients].reset_index(), classes),
                    theirs.loc[patients, columns].to_numpy(np.float64),
                    ours.loc[patients, columns].to_numpy(np.float64),
                    n_resamples,
                    seed,
                )
                row.update({name: paired[name] for name in ("auc_difference", "ci_low", "ci_high", "p_delong")})
            row.update(_cost_cells(costs.get(encoder)))
            rows.append(row)
    table = pd.DataFrame(rows).reindex(columns=list(COLUMNS))
    if len(table):
        table["p_holm"] = holm_adjust(table["p_delong"].to_numpy(dtype=np.float64))
    return table


def survival_encoder_comparison_table(
    predictions: Mapping[str, pd.DataFrame],
    reference: str,
    costs: Mapping[str, EmbeddingCost],
    n_resamples: int,
    seed: int,
) -> pd.DataFrame:
    """:func:`encoder_comparison_table` of a survival cohort (module docstring): ``predictions`` are each encoder's
    predictions.tsv, every (repeat, fold) row kept, since risks are compared within folds only."""
    if reference not in predictions:
        raise ValueError(f"the reference encoder {reference!r} has no predictions; given: {sorted(predictions)}")
    # The ridge-Cox reference row reads the RNA only: the same in every encoder's run, so not compared.
    predictions = {encoder: frame[frame["model"] != REFERENCE_COX] for encoder, frame in predictions.items()}
    compared = [encoder for encoder in predictions if encoder != reference]
    keys = set.intersection(*(set(_keys(predictions[encoder])) for encoder in compared)) if compared else set()
    ours_by_key = dict(_groups(predictions[reference]))
    rows = []
    for encoder in [reference, *compared]:
        for key, group in _groups(predictions[encoder]):
            if key not in keys:
                continue
            estimate = harrell_c_index(
                *_outcome(group), group["risk"].to_numpy(np.float64), fold=fold_labels(group),
                patient=group["patient_id"].to_numpy(), n_resamples=n_resamples, seed=seed,
            )  # fmt: skip
            row = {"encoder": encoder, **dict(zip(KEY_COLUMNS, key)), "n_patients": group["patient_id"].nunique(),
                   "harrell_c": estimate.c_index, "harrell_c_ci_low": estimate.ci_low,
                   "harrell_c_ci_high": estimate.ci_high, "reference_encoder": reference}  # fmt: skip
            if encoder != reference:
                shared = group.merge(
                    ours_by_key[key][[*FOLD_KEYS, "patient_id", "risk"]], on=[*FOLD_KEYS, "patient_id"],
                    suffixes=("", "_reference"),
                )  # fmt: skip
                paired = paired_c_index_comparison(
                    *_outcome(shared), shared["risk"].to_numpy(np.float64),
                    shared["risk_reference"].to_numpy(np.float64), fold=fold_labels(shared),
                    patient=shared["patient_id"].to_numpy(), n_resamples=n_resamples, seed=seed,
                )  # fmt: skip
                row.update({name: paired[name] for name in ("c_index_difference", "ci_low", "ci_high", "p_value")})
            row.update(_cost_cells(costs.get(encoder)))
            rows.append(row)
    table = pd.DataFrame(rows).reindex(columns=list(HARRELL_C.columns))
    if len(table):
        table["p_holm"] = holm_adjust(table["p_value"].to_numpy(dtype=np.float64))
    return table


def _outcome(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return frame["time"].to_numpy(np.float64), frame["event"].to_numpy().astype(bool)


def _cost_cells(cost: EmbeddingCost | None) -> dict[str, float]:
    if cost is None:
        return {}
    return {"embedding_s_per_1000_patches": cost.seconds_per_1000_patches, "embedding_peak_rss_mb": cost.peak_rss_mb,
            "patches_embedded": cost.patches}  # fmt: skip


def _keys(pooled: pd.DataFrame) -> list[tuple]:
    return [key for key, _ in _groups(pooled)]


def _groups(pooled: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    return [(tuple(key), group) for key, group in pooled.groupby(list(KEY_COLUMNS), sort=False)]


def encoder_comparison_markdown(table: pd.DataFrame) -> str:
    """Which encoder gives each model its best AUC (or Harrell's C) with complete data, and every difference that
    survives Holm."""
    if table.empty:
        return "No model reads slides in every compared encoder's run: nothing to compare.\n"
    metric = compared_metric(table)
    value, low, high = metric.value, f"{metric.value}_ci_low", f"{metric.value}_ci_high"
    reference = str(table["reference_encoder"].iloc[0])
    pooled = "Pooled out-of-fold" if metric is AUC else "Within-fold pooled out-of-fold"
    lines = [
        f"# Encoder comparison ({', '.join(dict.fromkeys(table['encoder']))}; reference: {reference})\n",
        f"{pooled} {metric.title} with its {CI_LEVEL:.0%} bootstrap CI; differences against {reference} on the same "
        f"patients with a paired-bootstrap CI and {metric.test}, Holm-adjusted over every difference (p_holm).\n",
    ]
    complete = table[table["scenario"] == "complete"]
    for model, rows in complete.groupby("model", sort=False):
        top = rows[rows[value] == rows[value].max()]["encoder"].tolist()
        cells = ", ".join(
            f"{row['encoder']} {row[value]:.3f} [{row[low]:.3f}, {row[high]:.3f}]" for _, row in rows.iterrows()
        )
        lines.append(f"- {model}, complete data: {cells}; {'best: ' + top[0] if len(top) == 1 else 'tied'}")
    significant = table[table["p_holm"] < 0.05]
    if significant.empty:
        lines.append("\nNo difference between encoders is significant after Holm's adjustment (p_holm < 0.05).")
    else:
        lines.append("\nSignificant after Holm (p_holm < 0.05):\n")
        for _, row in significant.iterrows():
            label = scenario_label(row["scenario"], row["train_missing_rate"], row["test_missing_rate"])
            lines.append(
                f"- {label}, {row['model']}: {row['encoder']} - {reference} {row[metric.difference]:+.3f} "
                f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}], p_holm {row['p_holm']:.3g}"
            )
    costs = table.drop_duplicates("encoder")
    lines.append("\nEmbedding cost (the embedding jobs' benchmark files, wall time on the run's machine):\n")
    lines.extend(
        f"- {row.encoder}: {row.embedding_s_per_1000_patches:.1f} s per 1,000 patches "
        f"({row.patches_embedded:.0f} patches), peak {row.embedding_peak_rss_mb:.0f} MB per job"
        for row in costs.itertuples()
    )
    return "\n".join(lines) + "\n"


def write_encoder_comparison(table: pd.DataFrame, tsv: str | Path, markdown: str | Path) -> None:
    write_tsv(table, Path(tsv))
    with atomic_file(markdown) as tmp:
        tmp.write_text(encoder_comparison_markdown(table), encoding="utf-8")
