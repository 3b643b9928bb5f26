"""A cohort's slide QC table (``results/{cohort}/slide_qc.tsv``): the patch stores' ``qc`` metrics, one row per slide,
and a ``flags`` column naming why a slide looks wrong.

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


def read_slide_qc(stores: Mapping[str, str | Path]) -> pd.DataFrame:
    """One row per slide (``slide_id`` then ``QC_METRICS``) from the patch stores' ``qc`` attributes.

    A store tiled before QC metrics existed gives a row of NaN (flagged ``no QC metrics``).
    """
    rows = []
    for slide_id, store in stores.items():
        qc = PatchStore.read(store).qc or {}
        rows.append({"slide_id": slide_id, **{key: qc.get(key) for key in QC_METRICS}})
    table = pd.DataFrame(rows, columns=["slide_id", *QC_METRICS])
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

    ``min_patches`` None: the default ``gmm.components`` (fewer patches cannot give each mixture component one)."""
    if min_patches is None:
        min_patches = int(schema_defaults("gmm")["components"])
    reasons: list[list[str]] = [[] for _ in range(len(table))]
    missing = table[list(QC_METRICS)].isna().all(axis=1).to_numpy()
    for index in np.flatnonzero(missing):
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
    stores: Mapping[str, str | Path], *, mad_k: float = DEFAULT_MAD_K, min_patches: int | None = None
) -> pd.DataFrame:
    """The cohort's QC table: ``read_slide_qc`` plus ``flags``."""
    table = read_slide_qc(stores)
    table["flags"] = slide_flags(table, mad_k=mad_k, min_patches=min_patches)
    return table


def write_slide_qc_table(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_file(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def read_flagged_slides(path: str | Path) -> dict[str, str]:
    """Flagged slides of a written ``slide_qc.tsv``: slide id -> its flags."""
    table = pd.read_csv(path, sep="\t", usecols=["slide_id", "flags"], dtype=str).fillna({"flags": ""})
    return {slide: flags for slide, flags in zip(table["slide_id"], table["flags"]) if flags}


def exclude_flagged_slides(sheet: pd.DataFrame, flagged: Mapping[str, str], cohort: str) -> pd.DataFrame:
    """The sample sheet with flagged slides made absent (``qc.exclude_flagged``), each exclusion logged.

    A flagged slide's row keeps its patient but loses its slide id, as a patient without a slide has: a patient
    whose every slide is flagged stays in the cohort with WSI missing, one with another slide keeps that one.
    """
    excluded = sheet["slide_id"].isin(list(flagged)) & (sheet["slide_id"] != "")
    if not excluded.any():
        log.info("%s: qc.exclude_flagged is on; no slide is flagged", cohort)
        return sheet
    for slide_id, patient_id in zip(sheet.loc[excluded, "slide_id"], sheet.loc[excluded, "patient_id"]):
        log.warning(
            "%s: slide %s of patient %s left out (qc.exclude_flagged): %s",
            cohort,
            slide_id,
            patient_id,
            flagged[slide_id],
        )
    log.warning("%s: %d flagged slide(s) left out of training (qc.exclude_flagged)", cohort, int(excluded.sum()))
    kept = sheet.copy()
    kept.loc[excluded, ["slide_id", "slide_path"]] = ""
    return kept
