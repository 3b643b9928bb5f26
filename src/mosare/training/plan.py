"""How a cohort's training splits into jobs, without torch (planning reads it): one job per fold of each repeat,
one for the final models, one for the evaluation; and which train settings each depends on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FoldKey = tuple[int, int]  # (repeat, fold)

# Settings only the evaluation job reads: changing them reruns it alone, never a training job.
EVALUATION_ONLY_SETTINGS = frozenset({"bootstrap_resamples"})


def fold_keys(train_config: Mapping[str, Any]) -> list[FoldKey]:
    """(repeat, fold) of every fold job of a cohort's training, in run order."""
    return [(repeat, fold) for repeat in range(train_config.get("repeats", 1)) for fold in range(train_config["folds"])]


def without_evaluation_settings(train_config: Mapping[str, Any]) -> dict[str, Any]:
    """The train settings that change what a fold or final-model job computes: all but the evaluation's own."""
    return {key: value for key, value in train_config.items() if key not in EVALUATION_ONLY_SETTINGS}
