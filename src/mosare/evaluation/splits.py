"""Patient-level folds and validation splits, without torch: training draws them, and the workflow checks them from
the sample sheet when it is planned (``check_cohort_splits``), so planning stays quick to import."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split


def derived_seed(*keys: int) -> int:
    """A seed for one (seed, fold, purpose) combination: independent streams from one configured seed."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def make_folds(patient_ids: np.ndarray, labels: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Test-fold index (0..n_folds-1) of every patient: patient-level, stratified by label, shuffled with ``seed``."""
    patient_ids, labels = np.asarray(patient_ids), np.asarray(labels)
    if len(np.unique(patient_ids)) != len(patient_ids):
        raise ValueError("make_folds expects one row per patient; patient ids repeat")
    if np.unique(labels).size < 2 or np.bincount(labels).min() < n_folds:
        raise ValueError(
            f"{n_folds}-fold cross-validation needs at least {n_folds} patients of every class; class counts are "
            f"{np.bincount(labels).tolist()}; lower train.folds or add patients"
        )
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = np.full(len(labels), -1, dtype=np.int64)
    for fold, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups=patient_ids)):
        folds[test] = fold
    return folds


def validation_split(
    train_index: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (fit, validation) split of a training fold's patient indices."""
    train_index = np.asarray(train_index)
    train_labels = labels[train_index]
    n_classes = np.unique(train_labels).size
    n_val = math.ceil(fraction * len(train_index))
    if n_val < n_classes or np.bincount(train_labels).min() < 2:
        raise ValueError(
            f"a validation split of {fraction:.0%} of {len(train_index)} training patients cannot hold every class "
            f"(class counts {np.bincount(train_labels).tolist()}); raise train.val_fraction or add patients"
        )
    fit, val = train_test_split(train_index, test_size=n_val, stratify=train_labels, random_state=seed)
    return np.sort(fit), np.sort(val)


def fold_validation_split(
    folds: np.ndarray, fold: int, labels: np.ndarray, train_config: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """The (fit, validation) split of test fold ``fold``'s training part, as training draws it."""
    return validation_split(
        np.flatnonzero(folds != fold), labels, train_config["val_fraction"], derived_seed(train_config["seed"], fold, 1)
    )


def check_cohort_splits(
    cohort: str, patient_ids: np.ndarray, labels: np.ndarray, train_config: Mapping[str, Any]
) -> np.ndarray:
    """The test fold of every patient, once every fold's training part is known to split into fit and validation
    patients holding every class; otherwise a ValueError naming the cohort, the fold and the setting to change.

    Draws the real folds and splits (seeded, cheap), so the workflow runs it on the sample sheet's labels when it
    is planned, hours before the training job would fail on the same cohort.
    """
    labels = np.asarray(labels)
    setting = (
        f"train.folds {train_config['folds']}, train.val_fraction {train_config['val_fraction']}, "
        f"{len(labels)} patients, class counts {np.bincount(labels).tolist()}"
    )
    try:
        folds = make_folds(patient_ids, labels, train_config["folds"], train_config["seed"])
    except ValueError as error:
        raise ValueError(f"cohort {cohort!r} ({setting}): {error}") from error
    for fold in range(train_config["folds"]):
        try:
            fold_validation_split(folds, fold, labels, train_config)
        except ValueError as error:  # also sklearn's, when the fit part would be left without a class
            raise ValueError(f"cohort {cohort!r}, test fold {fold} ({setting}): {error}") from error
    return folds


def repeat_seed(seed: int, repeat: int) -> int:
    """The seed repeat ``repeat`` of repeated cross-validation draws its folds, splits and masks from: ``seed`` itself
    for the first repeat (so one repeat is plain cross-validation), an independent stream for the others."""
    return int(seed) if repeat == 0 else derived_seed(seed, 104729, repeat)
