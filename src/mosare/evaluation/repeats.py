"""What the bootstrap CIs leave out: how much the AUC moves when the models are retrained.

The 95% CI of a pooled AUC resamples patients with the trained models held fixed. With ``train.repeats`` > 1 every
repeat has its own folds, validation splits, masks and trained models, so the spread of each repeat's own pooled
out-of-fold AUC shows that part of the uncertainty. metrics.md gives it beside the CIs; metrics.tsv is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mosare.evaluation.metrics import KEY_COLUMNS, auc_score, scenario_label

SPREAD_COLUMNS: tuple[str, ...] = ("repeats", "auc_sd", "auc_min", "auc_max")


def repeat_auc_spread(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per model x scenario: the pooled out-of-fold AUC of each repeat on its own (``auc_repeat{r}``), and over the
    repeats whose AUC is defined their count, sample SD (ddof=1, NaN for one), minimum and maximum.

    ``predictions`` is predictions.tsv's table: the key columns, ``repeat``, ``patient_id``, ``label`` (class names)
    and ``prob_<class>`` per class, in the classes' order. A patient's rows within one repeat (one per test fold it
    was in, that is one) are averaged, as the pooled metrics average them over repeats. Rows in the order the runs
    came, each repeat's AUC as ``auc_score`` (the ``pooled`` column's AUC) computes it."""
    columns = [c for c in predictions.columns if c.startswith("prob_")]
    classes = {name.removeprefix("prob_"): k for k, name in enumerate(columns)}
    repeats = sorted(predictions["repeat"].unique()) if "repeat" in predictions.columns else [0]
    frame = predictions if "repeat" in predictions.columns else predictions.assign(repeat=0)
    keys = [*KEY_COLUMNS, "repeat", "patient_id", "label"]
    per_patient = frame.groupby(keys, sort=False)[columns].mean().reset_index()
    rows = []
    for key, group in per_patient.groupby(list(KEY_COLUMNS), sort=False):
        by_repeat = dict(iter(group.groupby("repeat", sort=True)))
        aucs = {
            f"auc_repeat{int(r)}": (
                auc_score(
                    by_repeat[r]["label"].map(classes).to_numpy(dtype=np.int64),
                    by_repeat[r][columns].to_numpy(dtype=np.float64),
                )
                if r in by_repeat
                else np.nan
            )
            for r in repeats
        }
        values = np.array([v for v in aucs.values() if np.isfinite(v)])
        rows.append(
            {
                **dict(zip(KEY_COLUMNS, key)),
                "repeats": len(values),
                "auc_sd": float(np.std(values, ddof=1)) if len(values) > 1 else np.nan,
                "auc_min": float(values.min()) if len(values) else np.nan,
                "auc_max": float(values.max()) if len(values) else np.nan,
                **aucs,
            }
        )
    return pd.DataFrame(rows, columns=[*KEY_COLUMNS, *SPREAD_COLUMNS, *(f"auc_repeat{int(r)}" for r in repeats)])


def spread_cell(sd: float, low: float, high: float) -> str:
    """``SD 0.012, 0.780-0.812``: the SD and range of the per-repeat AUCs (``n/a`` without two defined ones)."""
    if not np.isfinite(sd):
        return "n/a"
    return f"SD {sd:.3f}, {low:.3f}-{high:.3f}"


def repeat_spread_markdown(predictions: pd.DataFrame, repeats: int, models: Sequence[str] | None = None) -> str:
    """metrics.md's note that the CIs hold the trained models fixed and, with ``repeats`` > 1, one table per cohort
    of the spread of the per-repeat pooled AUC (models as rows, scenarios as columns, as the AUC table)."""
    note = (
        "\nThe 95% CIs resample patients with the trained models held fixed: they leave out how much the AUC moves "
        "when the models are retrained (other folds, validation splits, masks and initial weights)."
    )
    if repeats < 2:
        return note + " Set `train.repeats` above 1 to see that spread here.\n"
    sections = [note + " The spread across the repeats, below, shows that part.\n"]
    spread = repeat_auc_spread(predictions)
    for cohort, rows in spread.groupby("cohort", sort=False):
        rows = rows.assign(
            column=[
                scenario_label(s, tr, te)
                for s, tr, te in zip(rows["scenario"], rows["train_missing_rate"], rows["test_missing_rate"])
            ],
            cell=[spread_cell(sd, lo, hi) for sd, lo, hi in zip(rows["auc_sd"], rows["auc_min"], rows["auc_max"])],
        )
        grid = rows.pivot_table(index="model", columns="column", values="cell", aggfunc="first", sort=False)
        grid = grid.loc[[m for m in (models or grid.index) if m in grid.index]]
        lines = ["| model | " + " | ".join(grid.columns) + " |", "|---" * (len(grid.columns) + 1) + "|"]
        lines += ["| " + model + " | " + " | ".join(grid.loc[model].fillna("n/a")) + " |" for model in grid.index]
        sections.append(
            f"\n## {cohort}: AUC spread across the {repeats} repeats\n\n"
            "Each repeat's own pooled out-of-fold AUC (its own folds, validation splits, masks and trained models): "
            "sample SD and range over the repeats. The pooled AUC above averages each patient's probabilities over "
            "the repeats first.\n\n" + "\n".join(lines) + "\n"
        )
    return "".join(sections)
