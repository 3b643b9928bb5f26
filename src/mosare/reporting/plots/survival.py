"""Survival figures: Kaplan-Meier curves of out-of-fold risk groups (CI bands, log-rank p, numbers at risk) and a
calibration plot at a horizon. The statistics are :mod:`mosare.evaluation.survival_metrics`'."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from mosare.evaluation.evidence import CI_LEVEL
from mosare.evaluation.survival_columns import RISK_CUTOFF
from mosare.evaluation.survival_metrics import (
    kaplan_meier,
    log_rank_test,
    numbers_at_risk,
    risk_group_names,
    risk_groups,
)
from mosare.reporting.plots import save_png

AT_RISK_TICKS = 6


def _format_p(p_value: float) -> str:
    if not np.isfinite(p_value):
        return "n/a"
    return "< 0.0001" if p_value < 1e-4 else f"= {p_value:.4f}" if p_value < 0.01 else f"= {p_value:.3f}"


def plot_risk_group_kaplan_meier(
    time: Sequence[float] | np.ndarray,
    event: Sequence[object] | np.ndarray,
    test_risk: Sequence[float] | np.ndarray,
    fold: Sequence[Hashable] | np.ndarray,
    cutoffs: Mapping[Hashable, Sequence[float] | np.ndarray],
    path: str | Path,
    *,
    time_unit: str = "days",
    title: str = "",
    level: float = CI_LEVEL,
    groups: str = "out-of-fold risk groups",
    cutoff_source: str = "each fold's training risks",
) -> None:
    """Kaplan-Meier curves of out-of-fold risk groups, with pointwise log-log CI bands, the log-rank p in the title
    and the numbers at risk in a table under the axis.

    Each patient's group comes from its test risk and its fold's cut-offs, which come from that fold's *training*
    risks (:func:`mosare.evaluation.survival_metrics.risk_groups`), never from the test patients.
    """
    time_values = np.asarray(time, dtype=np.float64)
    event_values = np.asarray(event).astype(bool)
    group_of = risk_groups(test_risk, fold, cutoffs)
    n_groups = len(np.atleast_1d(next(iter(cutoffs.values())))) + 1
    names = risk_group_names(n_groups)
    present = [g for g in range(n_groups) if (group_of == g).any()]
    _, p_value = log_rank_test(time_values, event_values, group_of)

    figure, (axis, table) = plt.subplots(
        2, 1, figsize=(6.4, 4.2 + 0.22 * n_groups), sharex=True,
        gridspec_kw={"height_ratios": [4.0, 0.45 + 0.22 * n_groups], "hspace": 0.2},
    )  # fmt: skip
    colours = {g: f"C{g}" if n_groups > 2 else ("C0", "C3")[g] for g in range(n_groups)}
    for g in present:
        members = group_of == g
        curve = kaplan_meier(time_values[members], event_values[members], level)
        steps = np.r_[0.0, curve.time]
        axis.step(steps, np.r_[1.0, curve.survival], where="post", color=colours[g], lw=1.5,
                  label=f"{names[g]} (n = {int(members.sum())}, {int(event_values[members].sum())} events)")  # fmt: skip
        axis.fill_between(steps, np.r_[1.0, curve.ci_low], np.r_[1.0, curve.ci_high], step="post",
                          color=colours[g], alpha=0.18, lw=0)  # fmt: skip
        censored = members & ~event_values
        if censored.any():
            at_censoring = curve.at(time_values[censored])[0]
            axis.scatter(time_values[censored], at_censoring, marker="|", s=18, color=colours[g], lw=0.8)
    axis.set(ylim=(-0.02, 1.02), ylabel="survival probability",
             title=f"{title + ': ' if title else ''}{groups}, log-rank p {_format_p(p_value)}")  # fmt: skip
    axis.legend(fontsize=7, loc="lower left")
    axis.text(0.99, 0.98, f"shaded: pointwise {level:.0%} CI (log-log)\ncut-off: {cutoff_source}",
              transform=axis.transAxes, ha="right", va="top", fontsize=6.5, color="0.35")  # fmt: skip

    end = float(time_values.max())
    candidates = np.asarray(MaxNLocator(nbins=AT_RISK_TICKS).tick_values(0.0, end), dtype=np.float64)
    ticks = candidates[(candidates >= 0) & (candidates <= end)]
    at_risk = numbers_at_risk(time_values, group_of, ticks)
    for row, g in enumerate(present[::-1]):
        counts = at_risk.loc[g].to_numpy() if g in at_risk.index else np.zeros(len(ticks), int)
        for tick, count in zip(ticks, counts):
            table.text(tick, row, str(int(count)), ha="center", va="center", fontsize=7, color=colours[g])
    table.set_yticks(range(len(present)), [names[g] for g in present[::-1]], fontsize=7)
    table.set_ylim(-0.6, len(present) - 0.4)
    table.set_xlim(-0.03 * end, 1.03 * end)
    table.set_xticks(ticks, [f"{t:g}" for t in ticks])
    table.set_xlabel(f"time ({time_unit})")
    table.set_title("number at risk", fontsize=7, loc="left")
    table.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        table.spines[side].set_visible(False)
    save_png(figure, path, dpi=110, tight=True)


def plot_survival_calibration(
    calibration: pd.DataFrame,
    horizon: float,
    path: str | Path,
    *,
    time_unit: str = "days",
    title: str = "",
    level: float = CI_LEVEL,
) -> None:
    """Observed (Kaplan-Meier, with its CI) against mean predicted survival at ``horizon``, one point per group of
    predicted survival (:func:`mosare.evaluation.survival_metrics.survival_calibration`); marker area: patients."""
    figure, axis = plt.subplots(figsize=(4.8, 4.8))
    axis.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--", label="perfect calibration")
    shown = calibration.dropna(subset=["observed"])
    if not shown.empty:
        observed = shown["observed"].to_numpy()
        errors = np.abs(np.stack([observed - shown["observed_low"], shown["observed_high"] - observed]))
        axis.errorbar(shown["mean_predicted"], observed, yerr=np.nan_to_num(errors), fmt="none", ecolor="0.4", lw=1,
                      label=f"Kaplan-Meier {level:.0%} CI")  # fmt: skip
        area = 150 * shown["patients"].to_numpy() / calibration["patients"].max()
        axis.scatter(shown["mean_predicted"], observed, s=area, color="C0", alpha=0.7, zorder=3,
                     label="group of predicted survival")  # fmt: skip
    missing = len(calibration) - len(shown)
    note = f"\n{missing} group(s) followed up less than the horizon" if missing else ""
    axis.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"mean predicted survival at {horizon:g} {time_unit}",
             ylabel=f"observed survival at {horizon:g} {time_unit}",
             title=f"{title + ': ' if title else ''}calibration at {horizon:g} {time_unit}{note}")  # fmt: skip
    axis.legend(fontsize=7, loc="upper left", markerscale=0.5)
    save_png(figure, path, dpi=110, tight=True)


def plot_deployed_kaplan_meier(
    predictions: pd.DataFrame, path: str | Path, *, time_unit: str = "months", title: str = ""
) -> None:
    """Kaplan-Meier curves of a deploy target's risk groups (``mosare.deploy.apply.deploy_survival_model``): MoSARe's,
    or the first model's, patients split at the median risk of the source's training patients."""
    models = list(dict.fromkeys(predictions["model"]))
    model = "mosare" if "mosare" in models else models[0]
    rows = predictions[predictions["model"] == model]
    plot_risk_group_kaplan_meier(
        rows["time"].to_numpy(), rows["event"].to_numpy(), rows["risk"].to_numpy(), np.zeros(len(rows), dtype=int),
        {0: [float(rows[RISK_CUTOFF].iloc[0])]}, path, time_unit=time_unit, title=f"{title}: {model}" if title else model,
        groups="risk groups", cutoff_source="the source's training risks (median)",
    )  # fmt: skip
