"""The cohort in memory for training: the cohort table and every store of its patients, read once.

Patients are rows in ``cohort.tsv`` order; patches of all a patient's slides are pooled; the local WSI tokens are
the C heaviest GMM components over the patient's slides, each weighted by its mixture weight times its slide's
share of the patient's patches.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mosare.cohort.table import CohortTable
from mosare.features.feature_store import FeatureStore
from mosare.features.gmm_store import SlideGMMStore
from mosare.features.rna_store import RNAStore
from mosare.features.text_store import TextStore

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CohortInputs:
    """Where a cohort's model inputs are: its cohort table (rule assemble_cohort), the folders of its slides' feature
    and GMM stores, and its report and RNA stores. Training, deploying and attention read a cohort through this."""

    cohort_table: Path
    features_dir: Path
    gmm_dir: Path
    text: Path
    rna: Path

    @classmethod
    def from_rule(cls, rule_input: Any, rule_params: Any) -> CohortInputs:
        """From a rule's ``input`` (cohort_table, text, rna) and ``params`` (features_dir, gmm_dir: folders, passed as
        params because the rule already lists their stores as inputs)."""
        return cls(
            Path(rule_input.cohort_table), Path(rule_params.features_dir), Path(rule_params.gmm_dir),
            Path(rule_input.text), Path(rule_input.rna),
        )  # fmt: skip

    def load(self, classes: Sequence[str], *, allow_unlabelled: bool = False) -> CohortData:
        """Every patient's inputs in memory (:func:`load_cohort_data`)."""
        return load_cohort_data(
            self.cohort_table, self.features_dir, self.gmm_dir, self.text, self.rna, classes, allow_unlabelled
        )


@dataclasses.dataclass
class CohortData:
    """Everything training reads, for all patients of a cohort, in memory (rows follow ``patient_ids``)."""

    patient_ids: np.ndarray  # (N,) str
    labels: np.ndarray  # (N,) int64, index into classes
    classes: list[str]
    available: np.ndarray  # (N, 3) bool: the patient really has [wsi, rna, text]
    patches: np.ndarray  # (total, Dw) float16: every patient's patches, concatenated in patient order
    patch_offsets: np.ndarray  # (N + 1,) int64: patient i owns patches[offsets[i]:offsets[i + 1]]
    wsi_local: np.ndarray  # (N, C, Dw) float32 GMM tokens
    rna: np.ndarray  # (N, G) float32
    text_global: np.ndarray  # (N, Dt) float32
    text_local: np.ndarray  # (N, C, Dt) float32
    excluded: list[str] = dataclasses.field(default_factory=list)  # patients with no modality at all
    sites: np.ndarray | None = None  # (N,) str: each patient's site (cohort.tsv), None when the sheet gives none
    # A survival cohort's outcome (cohort.tsv time and event), None for a classification cohort. Its ``labels`` are
    # then the events as 0/1 (what stratifies the masks) and ``classes`` is empty.
    times: np.ndarray | None = None  # (N,) float64
    events: np.ndarray | None = None  # (N,) bool, True = event observed

    def subset(self, rows: np.ndarray) -> CohortData:
        """The same cohort restricted to patients ``rows`` (in that order)."""
        counts = self.patch_counts[rows]
        patches = np.concatenate(
            [self.patches[self.patch_offsets[i] : self.patch_offsets[i + 1]] for i in rows] or [self.patches[:0]]
        )
        return dataclasses.replace(
            self,
            patient_ids=self.patient_ids[rows],
            labels=self.labels[rows],
            available=self.available[rows],
            patches=patches,
            patch_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            wsi_local=self.wsi_local[rows],
            rna=self.rna[rows],
            text_global=self.text_global[rows],
            text_local=self.text_local[rows],
            sites=None if self.sites is None else self.sites[rows],
            times=None if self.times is None else self.times[rows],
            events=None if self.events is None else self.events[rows],
        )

    @property
    def is_survival(self) -> bool:
        """Whether the cohort's outcome is time and event (``task: survival``) rather than a class."""
        return self.times is not None

    @property
    def n_patients(self) -> int:
        return len(self.patient_ids)

    @property
    def patch_counts(self) -> np.ndarray:
        return np.diff(self.patch_offsets)


def merge_slide_components(
    weights: Sequence[np.ndarray], means: Sequence[np.ndarray], patch_counts: Sequence[int], n_components: int
) -> np.ndarray:
    """Local WSI tokens of a patient from its slides' GMMs: the ``n_components`` heaviest components, by weight.

    A component's weight is its mixture weight times its slide's share of the patient's patches.
    """
    total = max(sum(patch_counts), 1)
    all_weights = np.concatenate([w * (n / total) for w, n in zip(weights, patch_counts)])
    all_means = np.concatenate(list(means))
    order = np.argsort(-all_weights, kind="stable")[:n_components]
    tokens = np.zeros((n_components, all_means.shape[1]), dtype=np.float32)
    tokens[: len(order)] = all_means[order]
    return tokens


def _aligned_store(
    store_ids: Sequence[str], present_in_store: np.ndarray, arrays: Sequence[np.ndarray], patient_ids: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Rows of a per-patient store's ``arrays`` (its patients ``store_ids``) in ``patient_ids`` order, as float32;
    the present flag (False when absent)."""
    row_of = {pid: i for i, pid in enumerate(store_ids)}
    rows = np.array([row_of.get(pid, -1) for pid in patient_ids])
    found = rows >= 0
    present = np.zeros(len(patient_ids), dtype=bool)
    present[found] = present_in_store[rows[found]]
    out = []
    for values in arrays:
        values = np.asarray(values, dtype=np.float32)
        aligned = np.zeros((len(patient_ids), *values.shape[1:]), dtype=np.float32)
        aligned[found] = values[rows[found]]
        out.append(aligned)
    return present, out


class CohortDataError(ValueError):
    """The training inputs disagree with each other; the message names the files and the stage to rerun."""


def load_cohort_data(
    cohort_table: str | Path,
    features_dir: str | Path,
    gmm_dir: str | Path,
    text_store: str | Path,
    rna_store: str | Path,
    classes: Sequence[str],
    allow_unlabelled: bool = False,
) -> CohortData:
    """Read the cohort table and every store of its patients into memory, once.

    ``allow_unlabelled`` (applying a saved model to new patients): an empty label is allowed and read as -1.

    Which modalities a patient has is decided once, by ``cohort.tsv``; a store that disagrees with it (an RNA or
    report flag its store does not hold, a flagged slide without features) is an error, as is a slide GMM whose
    number of components differs from the report tokens'. A cohort may lack any modality, slides included.
    """
    cohort_table, features_dir, gmm_dir = Path(cohort_table), Path(features_dir), Path(gmm_dir)
    table = CohortTable.read(cohort_table, None if not classes else [*classes, ""] if allow_unlabelled else classes)
    patient_ids = np.asarray(table.patient_ids, dtype=str)
    if table.is_survival:
        labels = np.asarray(table.events, dtype=np.int64)
    else:
        labels = np.array([list(classes).index(label) if label else -1 for label in table.labels], dtype=np.int64)

    text = TextStore.read(text_store).features
    text_present, (text_global, text_local) = _aligned_store(
        text.patient_ids, text.present, (text.global_, text.local), patient_ids
    )
    rna_features = RNAStore.read(rna_store).features
    rna_present, (rna,) = _aligned_store(
        rna_features.patient_ids, rna_features.present, (rna_features.values,), patient_ids
    )
    for modality, store, store_present in (("rna", rna_store, rna_present), ("text", text_store, text_present)):
        flagged_only = patient_ids[table.has(modality) & ~store_present]
        if len(flagged_only):
            raise CohortDataError(
                f"{cohort_table} says patients {list(flagged_only[:10])} have {modality}, but {store} does not hold "
                "it for them; the stores changed after the cohort table was written: rerun rule assemble_cohort"
            )
    n_components = text_local.shape[1]

    patch_blocks: list[np.ndarray] = []
    counts = np.zeros(len(table), dtype=np.int64)
    local_tokens: dict[int, np.ndarray] = {}
    wsi_dim = 0
    has_wsi = table.has("wsi")
    for i in tqdm(range(len(table)), desc="loading slides"):
        features, weights, means = [], [], []
        for slide_id in table.slide_ids[i] if has_wsi[i] else ():
            feature_path, gmm_path = features_dir / f"{slide_id}.zarr", gmm_dir / f"{slide_id}.zarr"
            slide_features = FeatureStore.read(feature_path).features.astype(np.float16, copy=False)
            if len(slide_features) == 0:  # no tissue patch: the slide adds nothing (the patient may have others)
                log.warning(
                    "slide %s of patient %s has no patches (%s); skipped", slide_id, patient_ids[i], feature_path
                )
                continue
            gmm = SlideGMMStore.read(gmm_path)
            if gmm.n_components != n_components:
                raise CohortDataError(
                    f"{gmm_path} has {gmm.n_components} GMM components but the report tokens in {text_store} have "
                    f"{n_components}; both follow gmm.components: rerun the stage written with the other value"
                )
            features.append(slide_features)
            weights.append(np.asarray(gmm.tokens.weights, dtype=np.float64))
            means.append(np.asarray(gmm.tokens.means, dtype=np.float32))
        if features:
            wsi_dim = wsi_dim or features[0].shape[1]
            patch_blocks.append(np.concatenate(features))
            counts[i] = len(patch_blocks[-1])
            local_tokens[i] = merge_slide_components(weights, means, [len(f) for f in features], n_components)
        elif has_wsi[i]:
            raise CohortDataError(
                f"{cohort_table} says patient {patient_ids[i]} has slides, but none of {list(table.slide_ids[i])} has "
                f"a patch in {features_dir}; rerun rule assemble_cohort"
            )

    wsi_local = np.zeros((len(table), n_components, wsi_dim), dtype=np.float32)
    for i, tokens in local_tokens.items():
        wsi_local[i] = tokens
    available = np.stack([counts > 0, table.has("rna"), table.has("text")], axis=1)
    data = CohortData(
        patient_ids=patient_ids,
        labels=labels,
        classes=list(classes),
        available=available,
        patches=np.concatenate(patch_blocks) if patch_blocks else np.zeros((0, 0), np.float16),
        patch_offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        wsi_local=wsi_local,
        rna=rna,
        text_global=text_global,
        text_local=text_local,
        sites=None if table.sites is None else np.asarray(table.sites, dtype=str),
        times=table.times,
        events=table.events,
    )
    usable = available.any(axis=1)
    if not usable.all():
        log.warning(
            "%s: patients %s have no modality at all and cannot be classified; every model leaves them out",
            cohort_table, list(patient_ids[~usable]),
        )  # fmt: skip
        data = data.subset(np.flatnonzero(usable))
        data.excluded = list(patient_ids[~usable])
    return data
