"""A cohort's slide QC table (``results/{cohort}/slide_qc.tsv``): the patch stores' ``qc`` metrics, one row per slide,
a ``flags`` column naming why a slide looks wrong, and ``status`` (``ok`` or ``excluded``) with the ``reason`` of a
slide that could not be used (``slides.on_error: exclude``, ``mosare.slides.exclusion``), at tiling or embedding.

A slide is flagged on a metric when it lies more than ``qc.mad_k`` robust standard deviations from the cohort's
median, in the direction that means trouble (``OUTLIER_RULES``). The robust standard deviation is 1.4826 x the
median absolute deviation (MAD), so ``mad_k`` 3.5 is Iglewicz and Hoaglin's modified z-score cut-off; a floor on it
(``min_spread``) keeps a cohort of near-identical slides from flagging noise. Cohorts of fewer than
``MIN_SLIDES_FOR_OUTLIERS`` slides get only the absolute floors: fewer than ``qc.min_patches`` patches, or any
unreadable area above ``UNREADABLE_FLOOR``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mosare.core.atomic_files import atomic_file
from mosare.core.config_schema import schema_defaults
from mosare.slides.exclusion import SlideExclusion
from mosare.slides.patch_store import PatchStore
from mosare.slides.qc_fields import QC_METRICS

log = logging.getLogger(__name__)

MAD_TO_SD = 1.4826  # MAD x this = standard deviation for normal data
MIN_SLIDES_FOR_OUTLIERS = 5
UNREADABLE_FLOOR = 0.01  # share of a slide that could not be decoded, flagged whatever the cohort
DEFAULT_MAD_K: float = schema_defaults("qc")["mad_k"]


@dataclass(frozen=True)
class OutlierRule:
    """How one metric is judged: which side is bad, on a log scale or not, and the smallest spread trusted."""

    direction: str  # "low", "high" or "both"
    log: bool
    min_spread: float  # in the metric's (log) units


OUTLIER_RULES: dict[str, OutlierRule] = {
    "tissue_area_mm2": OutlierRule("low", True, 0.1),
    "n_patches": OutlierRule("low", True, 0.1),
    "patch_coverage": OutlierRule("low", False, 0.02),
    "ink_fraction": OutlierRule("high", False, 0.01),
    "sharpness": OutlierRule("low", True, 0.1),
    "brightness": OutlierRule("both", False, 2.0),
    "contrast": OutlierRule("both", False, 1.0),
    "od_hematoxylin": OutlierRule("both", True, 0.05),
    "od_eosin": OutlierRule("both", True, 0.05),
    **{f"stain_{stain}_{channel}": OutlierRule("both", False, 0.02) for stain in "he" for channel in "rgb"},
    "dark_fraction": OutlierRule("high", False, 0.01),
}


OK, EXCLUDED = "ok", "excluded"  # the status column's values


def read_slide_qc(
    stores: Mapping[str, str | Path], feature_stores: Mapping[str, str | Path] | None = None
) -> pd.DataFrame:
    """One row per slide (``slide_id`` then ``QC_METRICS``) from the patch stores' ``qc`` attributes, and each
    slide's ``status`` and ``reason``: excluded at tiling (its patch store is an exclusion, metrics NaN) or at
    embedding (its store in ``feature_stores``, slide id -> feature store, is one).

    A store tiled before QC metrics existed gives a row of NaN (flagged ``no QC metrics``).
    """
    rows = []
    for slide_id, store in stores.items():
        exclusion = SlideExclusion.read(store)
        if exclusion is None and feature_stores is not None:
            exclusion = SlideExclusion.read(feature_stores[slide_id])
        qc = (PatchStore.read(store).qc or {}) if exclusion is None or exclusion.stage != "tiling" else {}
        rows.append(
            {
                "slide_id": slide_id,
                **{key: qc.get(key) for key in QC_METRICS},
                "status": OK if exclusion is None else EXCLUDED,
                "reason": "" if exclusion is None else f"{exclusion.stage}: {exclusion.reason}",
            }
        )
    table = pd.DataFrame(rows, columns=["slide_id", *QC_METRICS, "status", "reason"])
    table[list(QC_METRICS)] = table[list(QC_METRICS)].astype(float)
    return table


def robust_z(values: pd.Series, rule: OutlierRule) -> pd.Series:
    """(value - cohort median) / max(1.4826 x MAD, ``rule.min_spread``), on a log scale when ``rule.log``."""
    scaled = np.log(values.clip(lower=1e-12)) if rule.log else values
    median = scaled.median()
    spread = max(MAD_TO_SD * (scaled - median).abs().median(), rule.min_spread)
    return (scaled - median) / spread


def slide_flags(table: pd.DataFrame, *, mad_k: float = DEFAULT_MAD_K, min_patches: int | None = None) -> pd.Series:
    """Per slide, its reasons for concern joined by ``; `` (empty when none), e.g. ``sharpness low (z -9.2)``.

    ``min_patches`` None: the default ``gmm.components`` (fewer patches cannot give each mixture component one).
    An excluded slide (``status``) is flagged ``excluded at <stage>`` first."""
    if min_patches is None:
        min_patches = int(schema_defaults("gmm")["components"])
    reasons: list[list[str]] = [[] for _ in range(len(table))]
    excluded = (table["status"] == EXCLUDED).to_numpy() if "status" in table else np.zeros(len(table), bool)
    for index in np.flatnonzero(excluded):
        reasons[index].append(f"excluded at {table['reason'].iloc[index].split(':', 1)[0]}")
    missing = table[list(QC_METRICS)].isna().all(axis=1).to_numpy()
    for index in np.flatnonzero(missing & ~excluded):
        reasons[index].append("no QC metrics")
    for index in np.flatnonzero(~missing & (table["n_patches"] < min_patches).to_numpy()):
        reasons[index].append(f"n_patches {table['n_patches'].iloc[index]:.0f} < {min_patches}")
    for index in np.flatnonzero((table["unreadable_fraction"] > UNREADABLE_FLOOR).to_numpy()):
        reasons[index].append(
            f"unreadable_fraction {table['unreadable_fraction'].iloc[index]:.3f} > {UNREADABLE_FLOOR}"
        )
    if int((~missing).sum()) >= MIN_SLIDES_FOR_OUTLIERS:
        for metric, rule in OUTLIER_RULES.items():
            z = robust_z(table[metric], rule).to_numpy()
            for side, beyond in (("low", z < -mad_k), ("high", z > mad_k)):
                if rule.direction in (side, "both"):
                    for index in np.flatnonzero(beyond):
                        reasons[index].append(f"{metric} {side} (z {z[index]:+.1f})")
    return pd.Series(["; ".join(found) for found in reasons], index=table.index, name="flags")


def slide_qc_table(
    stores: Mapping[str, str | Path],
    feature_stores: Mapping[str, str | Path] | None = None,
    *,
    mad_k: float = DEFAULT_MAD_K,
    min_patches: int | None = None,
) -> pd.DataFrame:
    """The cohort's QC table: ``read_slide_qc`` plus ``flags`` (before ``status`` and ``reason``)."""
    table = read_slide_qc(stores, feature_stores)
    table.insert(len(table.columns) - 2, "flags", slide_flags(table, mad_k=mad_k, min_patches=min_patches))
    return table


def write_slide_qc_table(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_file(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def read_flagged_slides(path: str | Path) -> dict[str, str]:
    """Flagged slides of a written ``slide_qc.tsv``: slide id -> its flags (excluded slides among them)."""
    table = pd.read_csv(path, sep="\t", usecols=["slide_id", "flags"], dtype=str).fillna({"flags": ""})
    return {slide: flags for slide, flags in zip(table["slide_id"], table["flags"]) if flags}


def read_excluded_slides(path: str | Path) -> dict[str, str]:
    """Slides of a written ``slide_qc.tsv`` that could not be used (``slides.on_error: exclude``): slide id -> reason
    (``<stage>: <error>``)."""
    table = pd.read_csv(path, sep="\t", dtype=str).fillna("")
    if "status" not in table:  # written before exclusions existed
        return {}
    excluded = table[table["status"] == EXCLUDED]
    return dict(zip(excluded["slide_id"], excluded["reason"]))


def slides_left_out(path: str | Path, *, exclude_flagged: bool) -> dict[str, str]:
    """The slides training leaves out, from a written ``slide_qc.tsv``, slide id -> why: every excluded slide
    (``excluded at <stage>: <error>``), and with ``exclude_flagged`` (``qc.exclude_flagged``) every flagged one."""
    excluded = {slide: f"excluded at {reason}" for slide, reason in read_excluded_slides(path).items()}
    flagged = read_flagged_slides(path) if exclude_flagged else {}
    return {slide: f"flagged by slide QC (qc.exclude_flagged): {flags}" for slide, flags in flagged.items()} | excluded


def drop_slides(sheet: pd.DataFrame, left_out: Mapping[str, str], cohort: str) -> pd.DataFrame:
    """The sample sheet with the ``left_out`` slides (slide id -> why) made absent, each logged.

    A left-out slide's row keeps its patient but loses its slide id, as a patient without a slide has: a patient
    whose every slide is left out stays in the cohort with WSI missing, one with another slide keeps that one.
    """
    dropped = sheet["slide_id"].isin(list(left_out)) & (sheet["slide_id"] != "")
    if not dropped.any():
        log.info("%s: no slide is left out (slide QC and slides.on_error)", cohort)
        return sheet
    for slide_id, patient_id in zip(sheet.loc[dropped, "slide_id"], sheet.loc[dropped, "patient_id"]):
        log.warning("%s: slide %s of patient %s left out: %s", cohort, slide_id, patient_id, left_out[slide_id])
    log.warning("%s: %d slide(s) left out of training", cohort, int(dropped.sum()))
    kept = sheet.copy()
    kept.loc[dropped, ["slide_id", "slide_path"]] = ""
    return kept
