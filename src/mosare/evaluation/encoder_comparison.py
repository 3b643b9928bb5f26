"""Patch encoders compared on one cohort (``results/{cohort}/encoder_comparison.tsv``): the same WSI-reading models
trained on each encoder's features, on the same folds, masks and seeds, then compared on the same patients.

One row per encoder x model x scenario: the pooled out-of-fold AUC with its class-stratified bootstrap CI, and, for
every encoder but the reference (``encoder``, the one behind ``metrics.tsv``), its paired difference to the
reference: a paired-bootstrap CI (the same resampled patients for both), DeLong's p and Holm's adjustment over every
such difference of the cohort. Each row also carries its encoder's embedding cost, from the embedding jobs'
Snakemake benchmark files: wall seconds and peak resident memory per job, per 1,000 patches embedded.
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

COLUMNS = (
    "encoder",
    *KEY_COLUMNS,
    "n_patients",
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "reference_encoder",
    "auc_difference",
    "ci_low",
    "ci_high",
    "p_delong",
    "p_holm",
    "embedding_s_per_1000_patches",
    "embedding_peak_rss_mb",
    "patches_embedded",
)


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
            cost = costs.get(encoder)
            if cost is not None:
                row.update(embedding_s_per_1000_patches=cost.seconds_per_1000_patches,
                           embedding_peak_rss_mb=cost.peak_rss_mb, patches_embedded=cost.patches)  # fmt: skip
            rows.append(row)
    table = pd.DataFrame(rows).reindex(columns=list(COLUMNS))
    if len(table):
        table["p_holm"] = holm_adjust(table["p_delong"].to_numpy(dtype=np.float64))
    return table


def _keys(pooled: pd.DataFrame) -> list[tuple]:
    return [key for key, _ in _groups(pooled)]


def _groups(pooled: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    return [(tuple(key), group) for key, group in pooled.groupby(list(KEY_COLUMNS), sort=False)]


def encoder_comparison_markdown(table: pd.DataFrame) -> str:
    """Which encoder gives each model its best AUC with complete data, and every difference that survives Holm."""
    if table.empty:
        return "No model reads slides in every compared encoder's run: nothing to compare.\n"
    reference = str(table["reference_encoder"].iloc[0])
    lines = [
        f"# Encoder comparison ({', '.join(dict.fromkeys(table['encoder']))}; reference: {reference})\n",
        f"Pooled out-of-fold AUC with its {CI_LEVEL:.0%} bootstrap CI; differences against {reference} on the same "
        "patients with a paired-bootstrap CI and DeLong's p, Holm-adjusted over every difference (p_holm).\n",
    ]
    complete = table[table["scenario"] == "complete"]
    for model, rows in complete.groupby("model", sort=False):
        top = rows[rows["auc"] == rows["auc"].max()]["encoder"].tolist()
        cells = ", ".join(
            f"{row.encoder} {row.auc:.3f} [{row.auc_ci_low:.3f}, {row.auc_ci_high:.3f}]" for row in rows.itertuples()
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
                f"- {label}, {row['model']}: {row['encoder']} - {reference} {row['auc_difference']:+.3f} "
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
