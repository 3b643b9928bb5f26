"""The survival columns of predictions.tsv (cross-validation and deploy), named once. Light (no torch, no
scikit-survival): the cohort-figure plugins that read them are imported while the workflow is planned."""

from __future__ import annotations

from collections.abc import Iterable

REFERENCE_COX = "coxnet_rna"  # the classical reference row: ridge-penalised Cox on the RNA (never reads slides)
RISK_CUTOFF = "risk_cutoff"  # the median risk of the (fold) model's own training patients: the risk groups' cut-off
SURVIVAL_PREFIX = "survival@"  # survival@{h}: the predicted survival at horizon h
RISK_GROUP = "risk_group"  # deploy: a patient's group by the source's cut-off
RISK_GROUPS = ("low risk", "high risk")  # at or below, and above, the cut-off


def horizon_name(horizon: float) -> str:
    return f"{horizon:g}"


def survival_columns(horizons: Iterable[float]) -> list[str]:
    """predictions.tsv's survival-probability columns, one per horizon."""
    return [f"{SURVIVAL_PREFIX}{horizon_name(h)}" for h in horizons]


def horizon_columns(columns: Iterable[str]) -> dict[str, float]:
    """{column: horizon} of the ``survival@{h}`` columns among ``columns``, in their order."""
    return {
        column: float(column.removeprefix(SURVIVAL_PREFIX)) for column in columns if column.startswith(SURVIVAL_PREFIX)
    }
