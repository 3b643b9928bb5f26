"""Demo cohorts planned from their seed alone: patients, their sites, slides, magnifications and missing modalities.

Everything derives from ``demo.seed``: :func:`plan_demo_cohort` (cheap, called while Snakemake builds the DAG)
and the writers in ``mosare.demo.writer`` share one :class:`DemoPlan`, so the sheet planned in memory names exactly the
files the generator writes. This module needs neither OpenCV nor a TIFF writer, so planning imports none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mosare.core.config_schema import schema_defaults

PEN_FRACTION = 0.3  # of slides with a marker stroke


@dataclass(frozen=True)
class PatientPlan:
    patient_id: str
    label: str
    class_position: float  # 0 = first class (glandular) ... 1 = last class (solid); survival: from the risk
    has_rna: bool
    has_report: bool
    index: int
    site: str  # the tissue source site (the sample sheet's site column)
    stain_shift: float  # the cohort's stain_shift plus the site's own: what the patient's slides are stained with


@dataclass(frozen=True)
class SlidePlan:
    slide_id: str
    patient: PatientPlan
    mpp: float
    pen: bool  # a marker stroke on the glass
    index: int


@dataclass(frozen=True)
class DemoPlan:
    cohort: str
    settings: dict[str, Any]
    classes: tuple[str, ...]
    out_dir: Path
    patients: tuple[PatientPlan, ...]
    slides: tuple[SlidePlan, ...]

    @property
    def sheet(self) -> pd.DataFrame:
        rows = [
            {
                "patient_id": slide.patient.patient_id,
                "slide_id": slide.slide_id,
                "slide_path": str(self.out_dir / "slides" / f"{slide.slide_id}.svs"),
                "label": slide.patient.label,
                "report_path": (
                    str(self.out_dir / "reports" / f"{slide.patient.patient_id}.txt")
                    if slide.patient.has_report
                    else None
                ),
                "mpp": math.nan,
                "site": slide.patient.site,
            }
            for slide in self.slides
        ]
        return pd.DataFrame(
            rows, columns=["patient_id", "slide_id", "slide_path", "label", "report_path", "mpp", "site"]
        )


def demo_settings(demo_config: Mapping[str, Any]) -> dict[str, Any]:
    """``demo_config`` with the schema's defaults filled in (tests and scripts may pass partial dicts)."""
    settings = schema_defaults("cohorts", "*", "demo")
    unknown = set(demo_config) - set(settings)
    if unknown:
        raise ValueError(f"unknown demo setting(s) {sorted(unknown)}; known: {sorted(settings)}")
    settings.update(demo_config)
    return settings


def random_stream(seed: int, *purpose: int) -> np.random.Generator:
    """An independent random stream per purpose, so e.g. adding a gene never moves a slide."""
    return np.random.default_rng(np.random.SeedSequence([seed, *purpose]))


def _exact_subset(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    """A boolean mask with exactly round(fraction * n) True entries at random positions."""
    count = int(round(fraction * n))
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[:count]] = True
    return mask


def demo_sites(
    seed: int, class_index: np.ndarray, n_sites: int, site_stain_shift: float
) -> tuple[np.ndarray, np.ndarray]:
    """(site of every patient, stain shift of every site). Each class's patients, in a seeded order, are dealt to the
    sites in turn, one count carried on from class to class: every site holds every class as evenly as the counts
    allow, so any number of folds up to ``n_sites`` can keep sites apart. The sites' shifts are spread evenly over
    [-site_stain_shift, site_stain_shift], in a seeded order. Its own stream (purpose 5), so sites move nothing
    else."""
    rng = random_stream(seed, 5)
    order = np.concatenate([rng.permutation(np.flatnonzero(class_index == k)) for k in np.unique(class_index)])
    sites = np.empty(len(class_index), dtype=np.int64)
    sites[order] = np.arange(len(order)) % n_sites
    return sites, rng.permutation(np.linspace(-site_stain_shift, site_stain_shift, n_sites))


def make_demo_plan(cohort: str, demo_config: Mapping[str, Any], classes: Sequence[str], out_dir: Path) -> DemoPlan:
    """Decide every patient, site, slide, magnification and missing modality from the seed alone."""
    settings = demo_settings(demo_config)
    seed, n_patients = int(settings["seed"]), int(settings["patients"])
    if len(classes) < 2:
        raise ValueError(f"demo cohort {cohort!r} needs at least two classes, got {list(classes)}")
    rng = random_stream(seed, 0)
    class_index = rng.permutation(np.arange(n_patients) % len(classes))
    lacks_rna, lacks_report, two_slides = plan_modalities(rng, n_patients, settings)
    site_of, site_shift = demo_sites(seed, class_index, int(settings["sites"]), float(settings["site_stain_shift"]))
    patients = tuple(
        PatientPlan(
            patient_id=f"{cohort}-{i + 1:03d}",
            label=str(classes[k]),
            class_position=float(k) / (len(classes) - 1),
            has_rna=not lacks_rna[i],
            has_report=not lacks_report[i],
            index=i,
            site=f"S{site_of[i] + 1}",
            stain_shift=float(settings["stain_shift"]) + float(site_shift[site_of[i]]),
        )
        for i, k in enumerate(class_index)
    )
    slides = plan_slides(rng, patients, two_slides, settings)
    return DemoPlan(cohort, settings, tuple(classes), Path(out_dir).resolve(), patients, slides)


def plan_modalities(
    rng: np.random.Generator, n_patients: int, settings: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lacks RNA, lacks a report, has two slides) per patient, each an exact share of the patients."""
    lacks_rna = _exact_subset(rng, n_patients, settings["fraction_missing_rna"])
    lacks_report = _exact_subset(rng, n_patients, settings["fraction_missing_report"])
    two_slides = _exact_subset(rng, n_patients, settings["fraction_two_slides"])
    return lacks_rna, lacks_report, two_slides


def plan_slides(
    rng: np.random.Generator, patients: Sequence[PatientPlan], two_slides: np.ndarray, settings: Mapping[str, Any]
) -> tuple[SlidePlan, ...]:
    """Every patient's slide(s) (``-A``, and ``-B`` where ``two_slides``), an exact share at 40x and with pen."""
    slide_owners = [p for p in patients for _ in range(2 if two_slides[p.index] else 1)]
    is_40x = _exact_subset(rng, len(slide_owners), settings["fraction_40x"])
    has_pen = _exact_subset(rng, len(slide_owners), PEN_FRACTION)
    slides: list[SlidePlan] = []
    for index, patient in enumerate(slide_owners):
        letter = "AB"[sum(s.patient is patient for s in slides)]
        mpp = 0.25 if is_40x[index] else 0.5
        slides.append(SlidePlan(f"{patient.patient_id}-{letter}", patient, mpp, bool(has_pen[index]), index))
    return tuple(slides)


def plan_demo_cohort(
    cohort: str, demo_config: Mapping[str, Any], classes: Sequence[str], out_dir: Path
) -> pd.DataFrame:
    """The sample sheet :func:`write_demo_cohort` will write (absolute paths under ``out_dir``); pure and cheap."""
    return make_demo_plan(cohort, demo_config, classes, out_dir).sheet
