"""Test folds and validation splits, without torch: training draws them, and the workflow checks them from the sample
sheet when it is planned (``check_cohort_splits``), so planning stays quick to import.

``train.split`` says what a test fold keeps together: ``patient`` (each patient's slides on one side) or ``site``
(each tissue source site's patients on one side). The validation split inside a training fold is patient-level and
stratified either way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from mosare.core.config_schema import schema_defaults


def derived_seed(*keys: int) -> int:
    """A seed for one (seed, fold, purpose) combination: independent streams from one configured seed."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def make_folds(
    patient_ids: np.ndarray, labels: np.ndarray, n_folds: int, seed: int, sites: np.ndarray | None = None
) -> np.ndarray:
    """Test-fold index (0..n_folds-1) of every patient: stratified by label, shuffled with ``seed``, and grouped by
    patient, or by site when ``sites`` (one per patient) is given, so that every site's patients share a test fold."""
    patient_ids, labels = np.asarray(patient_ids), np.asarray(labels)
    if len(np.unique(patient_ids)) != len(patient_ids):
        raise ValueError("make_folds expects one row per patient; patient ids repeat")
    if np.unique(labels).size < 2 or np.bincount(labels).min() < n_folds:
        raise ValueError(
            f"{n_folds}-fold cross-validation needs at least {n_folds} patients of every class; class counts are "
            f"{np.bincount(labels).tolist()}; lower train.folds or add patients"
        )
    groups = patient_ids if sites is None else np.asarray(sites)
    if len(groups) != len(labels):
        raise ValueError(f"make_folds expects one site per patient; got {len(groups)} sites for {len(labels)} patients")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = np.full(len(labels), -1, dtype=np.int64)
    for fold, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups=groups)):
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


def split_setting(train_config: Mapping[str, Any]) -> str:
    """``train.split`` (``patient`` or ``site``), the schema's default when a partial train section lacks it."""
    return str(train_config.get("split", schema_defaults("train")["split"]))


def site_class_counts(sites: np.ndarray, labels: np.ndarray, classes: Sequence[str] | None = None) -> pd.DataFrame:
    """Patients per site (rows, sorted) and class (columns: ``classes``, or the label indices)."""
    labels = np.asarray(labels)
    names = list(classes) if classes is not None else [str(k) for k in range(int(labels.max(initial=0)) + 1)]
    frame = pd.crosstab(
        pd.Categorical(np.asarray(sites, dtype=str)), pd.Categorical(labels, categories=range(len(names))), dropna=False
    )
    frame.index.name, frame.columns = "site", names
    return frame


def site_counts_text(counts: pd.DataFrame) -> str:
    """``site: class n, class n; ...`` for error messages (every site, so the user sees what to merge or add)."""
    return "; ".join(
        f"{site}: " + ", ".join(f"{name} {int(n)}" for name, n in row.items()) for site, row in counts.iterrows()
    )


def _check_site_folds(
    cohort: str, sites: np.ndarray | None, labels: np.ndarray, n_folds: int, classes: Sequence[str] | None
) -> None:
    """What ``train.split: site`` needs before any fold is drawn: a site for every patient, at least ``n_folds``
    sites, and every class in at least two sites (a class in one site leaves the fold testing it without any
    training patient of that class). A ValueError naming the patients per site and class and the fix otherwise."""
    if sites is None:
        raise ValueError(
            f"cohort {cohort!r}: train.split is site, but its patients have no site: add a 'site' column to its "
            "sample sheet (one site per patient, e.g. the hospital or the TCGA tissue source site), use TCGA "
            "barcodes (TCGA-XX-XXXX) as patient ids, or set train.split: patient"
        )
    counts = site_class_counts(sites, labels, classes)
    listed = f"patients per site and class: {site_counts_text(counts)}"
    if len(counts) < n_folds:
        lower = f"lower train.folds to {len(counts)}, " if len(counts) >= 2 else ""
        raise ValueError(
            f"cohort {cohort!r}: train.split site with train.folds {n_folds} needs at least {n_folds} sites, one or "
            f"more per test fold; it has {len(counts)} ({listed}); {lower}add patients from other sites, or set "
            "train.split: patient"
        )
    in_sites = (counts > 0).sum(axis=0)
    scarce = in_sites[in_sites < 2]
    if len(scarce):
        named = ", ".join(f"{name} in {int(n)} site(s)" for name, n in scarce.items())
        raise ValueError(
            f"cohort {cohort!r}: train.split site needs every class in at least two sites, so that the fold testing "
            f"one site still trains on that class; {named} ({listed}); add patients of that class from other sites, "
            "or set train.split: patient"
        )


def _check_site_fold(
    cohort: str,
    fold: int,
    setting: str,
    folds: np.ndarray,
    sites: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str] | None,
) -> None:
    """A site-level test fold holds at least one site, and its training part every class of the cohort."""
    tested = sorted(set(sites[folds == fold]))
    lacking = sorted(set(labels.tolist()) - set(labels[folds != fold].tolist()))
    if tested and not lacking:
        return
    names = [classes[k] if classes is not None else str(k) for k in lacking]
    problem = (
        f"testing site(s) {', '.join(tested)} leaves no {' or '.join(names)} patient to train on"
        if tested
        else "no site is left to test"
    )
    raise ValueError(
        f"cohort {cohort!r}, test fold {fold} ({setting}): {problem}; patients per site and class: "
        f"{site_counts_text(site_class_counts(sites, labels, classes))}; lower train.folds, add patients of that "
        "class from other sites, or set train.split: patient"
    )


def check_cohort_splits(
    cohort: str,
    patient_ids: np.ndarray,
    labels: np.ndarray,
    train_config: Mapping[str, Any],
    *,
    sites: Sequence[str] | np.ndarray | None = None,
    classes: Sequence[str] | None = None,
) -> np.ndarray:
    """The test fold of every patient, once every fold's training part is known to split into fit and validation
    patients holding every class; otherwise a ValueError naming the cohort, the fold and the setting to change.

    ``sites``: each patient's site (None when unknown); the folds group by it under ``train.split: site`` and ignore
    it under ``patient``. ``classes`` names the labels in the messages. Draws the real folds and splits (seeded,
    cheap), so the workflow runs it on the sample sheet's labels when it is planned, hours before the training job
    would fail on the same cohort.
    """
    labels = np.asarray(labels)
    sites = None if sites is None else np.asarray(sites, dtype=str)
    split = split_setting(train_config)
    by_site = split == "site"
    setting = ("train.split site, " if by_site else "") + (
        f"train.folds {train_config['folds']}, train.val_fraction {train_config['val_fraction']}, "
        f"{len(labels)} patients, class counts {np.bincount(labels).tolist()}"
    )
    if by_site:
        _check_site_folds(cohort, sites, labels, train_config["folds"], classes)
    try:
        folds = make_folds(
            patient_ids, labels, train_config["folds"], train_config["seed"], sites=sites if by_site else None
        )
    except ValueError as error:
        raise ValueError(f"cohort {cohort!r} ({setting}): {error}") from error
    for fold in range(train_config["folds"]):
        if sites is not None and by_site:
            _check_site_fold(cohort, fold, setting, folds, sites, labels, classes)
        try:
            fold_validation_split(folds, fold, labels, train_config)
        except ValueError as error:  # also sklearn's, when the fit part would be left without a class
            raise ValueError(f"cohort {cohort!r}, test fold {fold} ({setting}): {error}") from error
    return folds


def repeat_seed(seed: int, repeat: int) -> int:
    """The seed repeat ``repeat`` of repeated cross-validation draws its folds, splits and masks from: ``seed`` itself
    for the first repeat (so one repeat is plain cross-validation), an independent stream for the others."""
    return int(seed) if repeat == 0 else derived_seed(seed, 104729, repeat)
