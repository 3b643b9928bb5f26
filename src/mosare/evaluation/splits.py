"""Test folds and validation splits, without torch: training draws them, and the workflow checks them from the sample
sheet when it is planned (``check_cohort_splits``), so planning stays quick to import.

``train.split`` says what a test fold keeps together: ``patient`` (each patient's slides on one side) or ``site``
(each tissue source site's patients on one side). The validation split inside a training fold is patient-level and
stratified either way.

A survival cohort's folds (``make_survival_folds``, ``check_survival_splits``) go through the same
``StratifiedGroupKFold``, grouped the same way, stratified by event status and time bin (``survival_strata``); its
validation splits are stratified by event status.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
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
    return _stratified_group_folds(labels, patient_ids if sites is None else np.asarray(sites), n_folds, seed)


def _stratified_group_folds(strata: np.ndarray, groups: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """The test fold of every patient from ``StratifiedGroupKFold`` (shuffled with ``seed``): what classification
    and survival folds share. ``groups``: the patient ids, or each patient's site."""
    if len(groups) != len(strata):
        raise ValueError(f"make_folds expects one site per patient; got {len(groups)} sites for {len(strata)} patients")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = np.full(len(strata), -1, dtype=np.int64)
    for fold, (_, test) in enumerate(splitter.split(np.zeros(len(strata)), strata, groups=groups)):
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


def _no_sites_error(cohort: str) -> ValueError:
    return ValueError(
        f"cohort {cohort!r}: train.split is site, but its patients have no site: add a 'site' column to its "
        "sample sheet (one site per patient, e.g. the hospital or the TCGA tissue source site), use TCGA "
        "barcodes (TCGA-XX-XXXX) as patient ids, or set train.split: patient"
    )


def _site_counts_for_folds(
    cohort: str,
    sites: np.ndarray | None,
    groups: np.ndarray,
    names: Sequence[str] | None,
    n_folds: int,
    grouped_by: str,
) -> tuple[pd.DataFrame, str]:
    """Patients per site and ``groups`` value (class or event status), and that table as text for the errors, once
    every patient has a site and there are at least ``n_folds`` sites; otherwise a ValueError with the counts and the
    fix."""
    if sites is None:
        raise _no_sites_error(cohort)
    counts = site_class_counts(sites, groups, names)
    listed = f"patients per site and {grouped_by}: {site_counts_text(counts)}"
    if len(counts) < n_folds:
        lower = f"lower train.folds to {len(counts)}, " if len(counts) >= 2 else ""
        raise ValueError(
            f"cohort {cohort!r}: train.split site with train.folds {n_folds} needs at least {n_folds} sites, one or "
            f"more per test fold; it has {len(counts)} ({listed}); {lower}add patients from other sites, or set "
            "train.split: patient"
        )
    return counts, listed


def _check_site_folds(
    cohort: str, sites: np.ndarray | None, labels: np.ndarray, n_folds: int, classes: Sequence[str] | None
) -> None:
    """What ``train.split: site`` needs before any fold is drawn: a site for every patient, at least ``n_folds``
    sites, and every class in at least two sites (a class in one site leaves the fold testing it without any
    training patient of that class). A ValueError naming the patients per site and class and the fix otherwise."""
    counts, listed = _site_counts_for_folds(cohort, sites, labels, classes, n_folds, "class")
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


# ---------------------------------------------------------------------------------------------------- survival

# Patients are stratified by event status and by tertile of their time within that status.
SURVIVAL_TIME_BINS = 3
# Each time bin of the hazard head is cut at the fit part's event times and needs events to learn from.
MIN_EVENTS_PER_TIME_BIN = 2
EVENT_STATUS = ("censored", "event")


def survival_outcome(times: npt.ArrayLike, events: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Times (float64, finite and >= 0) and events (int64, 1 = event observed, 0 = censored; bool or 0/1 given), one
    per patient."""
    times_array, events_array = np.asarray(times, dtype=np.float64).reshape(-1), event_status(events)
    if len(times_array) != len(events_array):
        raise ValueError(f"one time and one event per patient: {len(times_array)} times, {len(events_array)} events")
    if not (np.isfinite(times_array).all() and (times_array >= 0).all()):
        raise ValueError("times must be finite and >= 0")
    return times_array, events_array


def event_status(events: npt.ArrayLike) -> np.ndarray:
    """Events as int64 0/1 (1 = event observed), from bool or 0/1 values."""
    events_raw = np.asarray(events).reshape(-1)
    if not np.isin(events_raw, (0, 1)).all():
        raise ValueError("events must be 1 (event observed) or 0 (censored)")
    return events_raw.astype(np.int64)


def survival_strata(
    times: npt.ArrayLike, events: npt.ArrayLike, n_folds: int, n_time_bins: int = SURVIVAL_TIME_BINS
) -> np.ndarray:
    """The stratum of every patient for survival folds: event status x time bin within that status.

    The time bins of each status are cut at the quantiles of that status's times (tertiles by default): events
    usually come earlier than censoring, so cuts over all patients would leave strata such as late events nearly
    empty. A status with fewer than ``n_folds`` patients per bin gets fewer bins (one bin: stratified by event
    alone), so that every stratum can reach every test fold. Bins are left-closed, as the hazard head's; ties share
    a bin.

    The cuts use every patient's time and event, test patients included, as the class-stratified folds use every
    label: they only decide which patients share a test fold, and no model, normalisation or time bin of a model
    ever sees them. Stratum ids are ``event * n_time_bins + bin``.
    """
    times_array, events_array = survival_outcome(times, events)
    strata = np.zeros(len(times_array), dtype=np.int64)
    for status in (0, 1):
        members = events_array == status
        bins = max(1, min(n_time_bins, int(members.sum()) // max(n_folds, 1)))
        cuts = np.quantile(times_array[members], np.arange(1, bins) / bins) if bins > 1 else np.empty(0)
        strata[members] = status * n_time_bins + np.searchsorted(cuts, times_array[members], side="right")
    return strata


def make_survival_folds(
    patient_ids: np.ndarray,
    times: npt.ArrayLike,
    events: npt.ArrayLike,
    n_folds: int,
    seed: int,
    sites: np.ndarray | None = None,
) -> np.ndarray:
    """Test-fold index (0..n_folds-1) of every patient of a survival cohort: stratified by event and time bin
    (:func:`survival_strata`), shuffled with ``seed`` and grouped by patient, or by site when ``sites`` is given, by
    the same ``StratifiedGroupKFold`` as :func:`make_folds`."""
    patient_ids = np.asarray(patient_ids)
    times_array, events_array = survival_outcome(times, events)
    if len(np.unique(patient_ids)) != len(patient_ids):
        raise ValueError("make_survival_folds expects one row per patient; patient ids repeat")
    if len(patient_ids) != len(times_array):
        raise ValueError(f"one time and event per patient: {len(patient_ids)} patients, {len(times_array)} times")
    n_events = int(events_array.sum())
    if n_events < n_folds:
        raise ValueError(
            f"{n_folds}-fold cross-validation of a survival cohort needs at least {n_folds} events, one per test "
            f"fold; it has {n_events} among {len(patient_ids)} patients; lower train.folds or add patients with events"
        )
    strata = survival_strata(times_array, events_array, n_folds)
    with warnings.catch_warnings():
        # A status with fewer patients than folds (few censored patients, say) cannot reach every fold; expected.
        warnings.filterwarnings("ignore", message="The least populated class in y", category=UserWarning)
        return _stratified_group_folds(strata, patient_ids if sites is None else np.asarray(sites), n_folds, seed)


def survival_validation_split(
    train_index: np.ndarray, events: npt.ArrayLike, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation) split of a survival training fold's patient indices, stratified by event status, each part
    holding at least one event (the validation C-index needs one). A status with a single patient in the training
    part cannot be stratified: then the split is drawn unstratified and the events on each side are checked."""
    train_index = np.asarray(train_index)
    status = event_status(events)[train_index]
    n_val, n_events = math.ceil(fraction * len(train_index)), int(status.sum())
    problem = f"a validation split of {fraction:.0%} of {len(train_index)} training patients ({n_events} events)"
    fix = "raise train.val_fraction, lower train.folds or add patients with events"
    if n_events < 2 or not 1 <= n_val < len(train_index):
        raise ValueError(f"{problem} cannot leave an event on both sides; {fix}")
    counts = np.bincount(status, minlength=2)
    stratify = status if counts[counts > 0].min() >= 2 else None
    fit, val = train_test_split(train_index, test_size=n_val, stratify=stratify, random_state=seed)
    held = np.isin(train_index, val)
    if not status[held].any() or not status[~held].any():
        raise ValueError(
            f"{problem} leaves {int(status[~held].sum())} event(s) to fit and {int(status[held].sum())} to validate; "
            f"each needs one; {fix}"
        )
    return np.sort(fit), np.sort(val)


def survival_fold_validation_split(
    folds: np.ndarray, fold: int, events: npt.ArrayLike, train_config: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """The (fit, validation) split of test fold ``fold``'s training part of a survival cohort, seeded as
    :func:`fold_validation_split`."""
    return survival_validation_split(
        np.flatnonzero(folds != fold), events, train_config["val_fraction"], derived_seed(train_config["seed"], fold, 1)
    )


def _check_survival_site_folds(cohort: str, sites: np.ndarray | None, events: np.ndarray, n_folds: int) -> None:
    """What ``train.split: site`` needs of a survival cohort before any fold is drawn: a site for every patient, at
    least ``n_folds`` sites, and events in at least two sites (events in one site leave the fold testing it without
    an event to train on)."""
    counts, listed = _site_counts_for_folds(cohort, sites, events, EVENT_STATUS, n_folds, "event status")
    with_events = int((counts["event"] > 0).sum())
    if with_events < 2:
        raise ValueError(
            f"cohort {cohort!r}: train.split site needs events in at least two sites, so that the fold testing one "
            f"site still trains on events; events are in {with_events} site(s) ({listed}); add patients with events "
            "from other sites, or set train.split: patient"
        )


def check_survival_splits(
    cohort: str,
    patient_ids: np.ndarray,
    times: npt.ArrayLike,
    events: npt.ArrayLike,
    train_config: Mapping[str, Any],
    *,
    sites: Sequence[str] | np.ndarray | None = None,
    time_bins: int = 1,
) -> np.ndarray:
    """The test fold of every patient of a survival cohort, once every fold is known to be trainable and testable:
    its test part holds an event (else its C-index is undefined), and its training part splits into fit and
    validation patients (:func:`survival_fold_validation_split`) with an event in the validation part and at least
    ``MIN_EVENTS_PER_TIME_BIN * time_bins`` in the fit part (``time_bins``: the hazard head's, whose bins are cut
    at the fit part's event times; 1 for a Cox head). Otherwise a ValueError naming the cohort, every failing fold,
    the events of every fold's parts and the settings to change. ``sites`` as in :func:`check_cohort_splits`.
    """
    times_array, events_array = survival_outcome(times, events)
    sites = None if sites is None else np.asarray(sites, dtype=str)
    n_folds = train_config["folds"]
    by_site = split_setting(train_config) == "site"
    n_events = int(events_array.sum())
    setting = ("train.split site, " if by_site else "") + (
        f"train.folds {n_folds}, train.val_fraction {train_config['val_fraction']}, {len(events_array)} patients, "
        f"{n_events} events, {len(events_array) - n_events} censored"
    )
    if by_site:
        _check_survival_site_folds(cohort, sites, events_array, n_folds)
    try:
        folds = make_survival_folds(
            patient_ids, times_array, events_array, n_folds, train_config["seed"], sites=sites if by_site else None
        )
    except ValueError as error:
        raise ValueError(f"cohort {cohort!r} ({setting}): {error}") from error
    parts = []
    for fold in range(n_folds):
        try:
            parts.append(survival_fold_validation_split(folds, fold, events_array, train_config))
        except ValueError as error:  # also sklearn's
            raise ValueError(f"cohort {cohort!r}, test fold {fold} ({setting}): {error}") from error
    need = MIN_EVENTS_PER_TIME_BIN * time_bins
    fit_events = [int(events_array[fit].sum()) for fit, _ in parts]
    untested = [str(fold) for fold in range(n_folds) if not events_array[folds == fold].any()]
    scarce = [f"{fold} ({n} event(s))" for fold, n in enumerate(fit_events) if n < need]
    if untested or scarce:
        problems = []
        if scarce:
            problems.append(
                f"the fit part of test fold(s) {', '.join(scarce)} holds fewer than the {need} events training "
                f"needs ({MIN_EVENTS_PER_TIME_BIN} per time bin, {time_bins} time bin(s): the hazard head's bins are "
                "cut at the fit part's event times)"
            )
        if untested:
            problems.append(f"test fold(s) {', '.join(untested)} hold no event, so their C-index is undefined")
        per_fold = "; ".join(
            f"fold {fold}"
            + (f" (site(s) {', '.join(sorted(set(sites[folds == fold])))})" if by_site and sites is not None else "")
            + f": fit {fit_events[fold]}, validation {int(events_array[val].sum())}, "
            f"test {int(events_array[folds == fold].sum())} of {int((folds == fold).sum())} patients"
            for fold, (_, val) in enumerate(parts)
        )
        site_fix = ", or set train.split: patient" if by_site else ""
        raise ValueError(
            f"cohort {cohort!r} ({setting}): {'; '.join(problems)}; events per fold: {per_fold}; lower train.folds "
            f"(or train.val_fraction), use fewer time bins, or add patients with events{site_fix}"
        )
    return folds
