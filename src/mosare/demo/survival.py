"""Survival demo cohorts: time-to-event outcomes driven by one latent risk that morphology, RNA and report share.

Every patient has a latent risk ``r`` (standard normal, from ``demo.seed``; stream purpose 8). It is never written
anywhere; the plan keeps it so tests can check the signal. It drives:

- **The event time**, a Weibull proportional-hazards model: hazard ``h(t | r) = lambda * k * t**(k - 1) *
  exp(beta * r)``, drawn by inversion as ``T = (-log U / (lambda * exp(beta * r))) ** (1 / k)``, ``U`` uniform.
  ``k = 1.5`` (:class:`SurvivalModel`): the hazard rises with time, as after a cancer diagnosis. ``beta = 1.2``: a
  hazard ratio of 3.3 per standard deviation of risk, so the true risk ranks patients with a Harrell's C of about
  0.75: an upper bound that models seeing it through noisy modalities approach but do not reach (published
  multimodal pathology survival models report C of about 0.6-0.7 on TCGA). ``lambda`` (:func:`hazard_scale`, 0.0053)
  puts the median event time over the cohort (over ``r``) at 24 months; a patient of average risk has about 26.
- **Censoring**: independent of everything else, uniform on 6-84 months: patients enter over 78 months of accrual
  and are analysed at one date, at least 6 months after the last entered. 34.9 % of patients are censored in
  expectation (:func:`expected_censored_fraction`). The sheet's ``time`` is ``min(T, C)`` in months, rounded to 0.1
  (about 3 days; at least 0.1); ``event`` is 1 where ``T <= C``, else 0.
- **Morphology**: a patient's slides are rendered with ``patient_phenotype(seed, index, Phi(1.5 * r))``, the
  standard normal CDF standing in for the class position of the classification demos (0 = glandular, 1 = solid).
  So higher risk looks like the more aggressive, solid class: fewer glands, bigger nuclei, denser epithelium, with
  the classification demos' patient-level spread; positions stay within [0, 1], the range the renderer is made for
  (:func:`morphology_position`). The gain 1.5 spreads patients further towards both ends than ``Phi(r)`` would.
- **RNA** (``mosare.demo.writer.survival_rna_matrix``): the classification demo's RNA with three gene modules: a
  risk module whose activity is ``0.9 * r`` plus the modules' usual normal noise (sd 0.6), and the two nuisance
  programmes; batches, library sizes and the pure-noise genes as in the classification demos. The risk genes come
  from ``biology_seed``, so an external cohort of the same cancer shares them.
- **Report** (``mosare.demo.reports.survival_report``): grade, nuclear pleomorphism, mitotic count, necrosis,
  lymphovascular invasion and nodal involvement, each more often the aggressive one as ``r`` rises. The report
  writer is given the risk, never the time or the event, so no report can state the outcome.

What each carries, measured on 400 patients (seeds 0-3, Harrell's C against time and event): ``r`` itself 0.75;
the three morphology knobs together (fitted to ``r``) 0.61-0.64, each one's rank correlation with ``r`` about -0.4
(gland fraction), 0.35 (nucleus size) and 0.2-0.3 (epithelial density); the risk module's mean log expression
0.67-0.70 (correlation with ``r`` 0.7-0.8), its best single gene 0.67-0.70, the best gene outside it 0.56; each
report phrase 0.55-0.6, seen in about 10 % of the lowest-risk third's reports and half the highest's. Censored:
32-34 %.

The patients, their sites, slides and missing modalities are planned as in ``mosare.demo.plan`` (the same settings;
sites dealt evenly over events and censorings), so a survival demo costs per patient what a classification demo
does. All patients share one cancer, ``subtype``: it names the report vocabulary (``mosare.demo.reports``).
Needs neither OpenCV nor a TIFF writer, like ``mosare.demo.plan``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mosare.demo.plan import (
    DemoPlan,
    PatientPlan,
    demo_settings,
    demo_sites,
    plan_modalities,
    plan_slides,
    random_stream,
)

SURVIVAL_SHEET_COLUMNS = ["patient_id", "slide_id", "slide_path", "time", "event", "report_path", "mpp", "site"]
DEFAULT_SUBTYPE = "CCRCC"  # clear cell renal cell carcinoma: the classic overall-survival cohort (TCGA-KIRC)
TIME_RESOLUTION = 0.1  # months
OUTCOME_STREAM = 8  # random_stream purpose of the risk, event and censoring times
MORPHOLOGY_GAIN = 1.5  # class position = Phi(MORPHOLOGY_GAIN * r)


@dataclass(frozen=True)
class SurvivalModel:
    """The Weibull proportional-hazards model and censoring of the survival demo (see the module docstring)."""

    shape: float = 1.5  # Weibull k
    log_hazard_ratio: float = 1.2  # beta, per standard deviation of risk
    median_months: float = 24.0  # median event time over the cohort (before censoring)
    censor_months: tuple[float, float] = (6.0, 84.0)  # censoring time: uniform on this interval


@dataclass(frozen=True)
class SurvivalOutcome:
    risk: float  # the latent risk r: for tests only, never written
    time: float  # months: min(event time, censoring time), rounded to TIME_RESOLUTION
    event: int  # 1 = event observed at ``time``, 0 = censored at ``time``


@dataclass(frozen=True)
class SurvivalDemoPlan:
    """A survival demo cohort. ``base`` plans patients and slides as a classification demo does (its patients' label
    is the subtype and their class position :func:`morphology_position` of the risk), so ``write_planned_slide``
    renders its slides unchanged; ``outcomes`` are aligned with ``base.patients``."""

    base: DemoPlan
    outcomes: tuple[SurvivalOutcome, ...]
    model: SurvivalModel

    @property
    def subtype(self) -> str:
        return self.base.classes[0]

    @property
    def risks(self) -> np.ndarray:
        return np.array([outcome.risk for outcome in self.outcomes])

    def outcome(self, patient: PatientPlan) -> SurvivalOutcome:
        return self.outcomes[patient.index]

    @property
    def sheet(self) -> pd.DataFrame:
        """The survival sample sheet: one row per slide, ``time`` and ``event`` where a classification sheet has
        ``label`` (absolute paths under ``out_dir``)."""
        sheet = self.base.sheet
        outcomes = [self.outcome(slide.patient) for slide in self.base.slides]
        sheet = sheet.drop(columns="label").assign(
            time=[outcome.time for outcome in outcomes], event=[outcome.event for outcome in outcomes]
        )
        return sheet[SURVIVAL_SHEET_COLUMNS]


def morphology_position(risk: float) -> float:
    """``Phi(MORPHOLOGY_GAIN * risk)``, Phi the standard normal CDF: the class position (0 glandular ... 1 solid) the
    slides are drawn at."""
    return 0.5 * (1.0 + math.erf(MORPHOLOGY_GAIN * risk / math.sqrt(2.0)))


def _standard_normal_quadrature(points: int = 80) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.hermite_e.hermegauss(points)
    return nodes, weights / weights.sum()


def hazard_scale(model: SurvivalModel) -> float:
    """The Weibull ``lambda`` that puts the cohort's median event time at ``model.median_months``: it solves
    ``E_r[exp(-lambda * m**k * exp(beta * r))] = 1/2`` over the standard normal risk, by Gauss-Hermite quadrature and
    bisection."""
    nodes, weights = _standard_normal_quadrature()
    hazard_ratio = np.exp(model.log_hazard_ratio * nodes)
    low, high = -30.0, 10.0  # log(lambda * m**k)
    for _ in range(200):
        middle = (low + high) / 2
        surviving = float(weights @ np.exp(-math.exp(middle) * hazard_ratio))
        low, high = (middle, high) if surviving > 0.5 else (low, middle)
    return math.exp((low + high) / 2) / model.median_months**model.shape


def event_times(risk: np.ndarray, uniform: np.ndarray, model: SurvivalModel) -> np.ndarray:
    """Weibull proportional-hazards event times (months) by inversion: ``(-log U / (lambda exp(beta r)))**(1/k)``."""
    rate = hazard_scale(model) * np.exp(model.log_hazard_ratio * np.asarray(risk, dtype=float))
    times: np.ndarray = (-np.log(np.asarray(uniform, dtype=float)) / rate) ** (1.0 / model.shape)
    return times


def expected_censored_fraction(model: SurvivalModel) -> float:
    """The share of patients censored in expectation: ``E_r[ mean over C of S(C | r) ]``, C uniform on
    ``censor_months`` (quadrature over r and C)."""
    nodes, weights = _standard_normal_quadrature()
    start, end = model.censor_months
    censor = np.linspace(start, end, 401)
    scale = hazard_scale(model)
    surviving = np.exp(-scale * censor[None, :] ** model.shape * np.exp(model.log_hazard_ratio * nodes)[:, None])
    return float(weights @ surviving.mean(axis=1))


def plan_outcomes(seed: int, n_patients: int, model: SurvivalModel) -> tuple[SurvivalOutcome, ...]:
    """Every patient's risk, time and event from the seed alone (stream purpose :data:`OUTCOME_STREAM`)."""
    rng = random_stream(seed, OUTCOME_STREAM)
    risk = rng.standard_normal(n_patients)
    event_time = event_times(risk, rng.random(n_patients), model)
    censor_time = rng.uniform(*model.censor_months, n_patients)
    time = np.maximum(np.round(np.minimum(event_time, censor_time), 1), TIME_RESOLUTION)
    event = event_time <= censor_time
    return tuple(
        SurvivalOutcome(risk=float(r), time=float(t), event=int(e)) for r, t, e in zip(risk, time, event, strict=True)
    )


def make_survival_demo_plan(
    cohort: str,
    demo_config: Mapping[str, Any],
    out_dir: Path,
    *,
    subtype: str = DEFAULT_SUBTYPE,
    model: SurvivalModel | None = None,
) -> SurvivalDemoPlan:
    """Decide every patient's risk, outcome, site, slides, magnifications and missing modalities from the seed alone.

    ``demo_config`` takes the classification demo's settings (``demo_settings``); all patients have ``subtype``.
    """
    model = SurvivalModel() if model is None else model
    settings = demo_settings(demo_config)
    seed, n_patients = int(settings["seed"]), int(settings["patients"])
    outcomes = plan_outcomes(seed, n_patients, model)
    rng = random_stream(seed, 0)
    lacks_rna, lacks_report, two_slides = plan_modalities(rng, n_patients, settings)
    events = np.array([outcome.event for outcome in outcomes])
    site_of, site_shift = demo_sites(seed, events, int(settings["sites"]), float(settings["site_stain_shift"]))
    patients = tuple(
        PatientPlan(
            patient_id=f"{cohort}-{i + 1:03d}",
            label=subtype,
            class_position=morphology_position(outcome.risk),
            has_rna=not lacks_rna[i],
            has_report=not lacks_report[i],
            index=i,
            site=f"S{site_of[i] + 1}",
            stain_shift=float(settings["stain_shift"]) + float(site_shift[site_of[i]]),
        )
        for i, outcome in enumerate(outcomes)
    )
    slides = plan_slides(rng, patients, two_slides, settings)
    base = DemoPlan(cohort, settings, (subtype,), Path(out_dir).resolve(), patients, slides)
    return SurvivalDemoPlan(base, outcomes, model)


def plan_survival_demo_cohort(
    cohort: str,
    demo_config: Mapping[str, Any],
    out_dir: Path,
    *,
    subtype: str = DEFAULT_SUBTYPE,
    model: SurvivalModel | None = None,
) -> pd.DataFrame:
    """The survival sample sheet ``write_survival_demo_cohort`` will write (absolute paths); pure and cheap."""
    return make_survival_demo_plan(cohort, demo_config, out_dir, subtype=subtype, model=model).sheet
