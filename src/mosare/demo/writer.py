"""Synthetic demo cohorts: slides, RNA and reports with class (or survival, ``mosare.demo.survival``) signal, noise
and real missingness.

The plan (``mosare.demo.plan``), the slides (``mosare.demo.render``) and the reports (``mosare.demo.reports``) derive
from ``demo.seed`` alone, so two runs with one seed write byte-identical files. This module writes them, plus the RNA
matrix: raw-count-like (negative binomial), genes x patients.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from mosare.core.atomic_files import atomic_file
from mosare.demo.plan import DemoPlan, PatientPlan, make_demo_plan, random_stream
from mosare.demo.render import patient_phenotype, write_demo_slide
from mosare.demo.reports import demo_report, survival_report
from mosare.demo.survival import DEFAULT_SUBTYPE, SurvivalDemoPlan, SurvivalModel, make_survival_demo_plan

SURVIVAL_RNA_WEIGHT = 0.9  # the survival demo's risk-module activity per standard deviation of risk


def demo_rna_matrix(plan: DemoPlan) -> pd.DataFrame:
    """Raw-count-like RNA (genes x patients with RNA): negative-binomial counts around gene baselines, one
    up-regulated module per class whose activity varies by patient, two nuisance programmes and two
    sequencing batches with gene-wise offsets; then ``noise_genes`` pure-noise genes (:func:`noise_gene_log_means`).
    Counts, so the RNA stage's ``log_transform: auto`` logs them.
    """
    n_patients, n_classes = len(plan.patients), len(plan.classes)
    class_index = np.array([round(p.class_position * (n_classes - 1)) for p in plan.patients])
    # A patient's own-class module is up on average, with spread that blurs the classes.
    module_shift = np.zeros((n_patients, n_classes + 2))
    module_shift[np.arange(n_patients), class_index] = 0.9
    return module_rna_matrix(plan, module_shift)


def module_rna_matrix(plan: DemoPlan, module_shift: np.ndarray) -> pd.DataFrame:
    """:func:`demo_rna_matrix` with one gene module per column of ``module_shift`` (patients x modules): a module's
    activity in a patient is normal (sd 0.6) plus that patient's shift; the last two modules are, by convention,
    nuisance programmes with no shift."""
    seed = int(plan.settings["seed"])
    biology_seed = seed if plan.settings.get("biology_seed") is None else int(plan.settings["biology_seed"])
    n_patients, n_modules = len(plan.patients), module_shift.shape[1]
    baseline, loadings, biology = _gene_programmes(plan, n_modules)
    rng = biology if biology_seed == seed else random_stream(seed, 2)
    activity = rng.normal(0.0, 0.6, (n_patients, n_modules)) + module_shift
    batch = rng.integers(0, 2, n_patients)
    batch_offset = rng.normal(0.0, 0.35, len(baseline))
    library = rng.lognormal(np.log(20.0), 0.3, n_patients)
    log_mean = baseline[None, :] + activity @ loadings + batch[:, None] * batch_offset[None, :]
    mean = library[:, None] * np.exp(log_mean)
    dispersion = 0.15
    counts = rng.poisson(rng.gamma(1 / dispersion, mean * dispersion))
    noise_rng = random_stream(seed, 7)  # a stream of its own, so the genes above stay as they were
    noise_mean = library[:, None] * np.exp(noise_gene_log_means(plan, n_patients, noise_rng))
    counts = np.concatenate([counts, noise_rng.poisson(noise_rng.gamma(1 / dispersion, noise_mean * dispersion))], 1)
    has_rna = [p.has_rna for p in plan.patients]
    matrix = pd.DataFrame(
        counts[has_rna].T,
        columns=[p.patient_id for p in plan.patients if p.has_rna],
        index=pd.Index([f"GENE{g + 1:05d}" for g in range(counts.shape[1])], name="gene_id"),
    )
    return matrix


def _gene_programmes(plan: DemoPlan, n_modules: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """(gene baselines, module loadings (modules x genes), the biology stream after them). What defines the classes
    (gene baselines, class modules) comes from biology_seed, so an external cohort of the same cancer shares it;
    patients, batches and noise come from seed (one stream when the two are equal)."""
    seed = int(plan.settings["seed"])
    biology_seed = seed if plan.settings.get("biology_seed") is None else int(plan.settings["biology_seed"])
    biology = random_stream(biology_seed, 2)
    n_genes = int(plan.settings["genes"])
    baseline = biology.normal(2.0, 1.6, n_genes)  # natural-log mean count at library size 1
    module_size = max(5, n_genes // 30)
    modules = biology.permutation(n_genes)[: module_size * n_modules].reshape(n_modules, module_size)
    loadings = np.zeros((n_modules, n_genes))
    for k, genes in enumerate(modules):
        loadings[k, genes] = biology.uniform(0.3, 1.0, module_size)
    return baseline, loadings, biology


def noise_gene_log_means(plan: DemoPlan, n_patients: int, rng: np.random.Generator) -> np.ndarray:
    """(patients, noise_genes) natural-log mean counts of the pure-noise genes at library size 1: a gene baseline
    plus a patient deviation of gene-wise spread 0.1-0.8, unrelated to class, batch or site. Many vary more than
    the class genes, so the ``rna.top_genes`` most variable genes include noise and differ from fold to fold, as
    in real expression data. Gene parameters come from ``biology_seed`` (an external cohort has the same noise
    genes), the patients' deviations from ``rng``."""
    seed = int(plan.settings["seed"])
    biology_seed = seed if plan.settings.get("biology_seed") is None else int(plan.settings["biology_seed"])
    n_noise = int(plan.settings["noise_genes"])
    genes = random_stream(biology_seed, 6)
    baseline, spread = genes.normal(2.0, 1.6, n_noise), genes.uniform(0.1, 0.8, n_noise)
    return baseline[None, :] + rng.normal(0.0, 1.0, (n_patients, n_noise)) * spread[None, :]


def _write_text(path: Path, text: str) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_planned_slide(plan: DemoPlan, slide_id: str, *, workers: int = 1) -> Path:
    """Write one planned slide to ``out_dir/slides/{slide_id}.svs`` (one Snakemake job per slide)."""
    by_id = {slide.slide_id: slide for slide in plan.slides}
    if slide_id not in by_id:
        raise KeyError(f"demo cohort {plan.cohort!r} plans no slide {slide_id!r}; planned: {sorted(by_id)}")
    slide = by_id[slide_id]
    seed = int(plan.settings["seed"])
    path = plan.out_dir / "slides" / f"{slide_id}.svs"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_demo_slide(
        path,
        seed=seed,
        slide_index=slide.index,
        phenotype=patient_phenotype(seed, slide.patient.index, slide.patient.class_position),
        mpp=slide.mpp,
        slide_px=int(plan.settings["slide_px"]),
        pen=slide.pen,
        stain_shift=slide.patient.stain_shift,
        workers=workers,
    )
    return path


def write_demo_tables(plan: DemoPlan) -> pd.DataFrame:
    """Write the reports, ``rna.tsv`` and, last, ``samples.tsv`` (paths relative to ``out_dir``) once every
    planned slide exists; return the sheet with absolute paths."""
    return _write_tables(plan, plan.sheet, lambda patient: demo_report(plan, patient), lambda: demo_rna_matrix(plan))


def _write_tables(
    plan: DemoPlan,
    sheet: pd.DataFrame,
    report: Callable[[PatientPlan], str],
    rna: Callable[[], pd.DataFrame],
) -> pd.DataFrame:
    absent = [path for path in sheet["slide_path"] if not Path(path).exists()]
    if absent:
        raise FileNotFoundError(
            f"demo cohort {plan.cohort!r}: {len(absent)} planned slide(s) missing, e.g. {absent[0]}; "
            "write them with write_planned_slide (rule demo_slide) before the tables"
        )
    (plan.out_dir / "reports").mkdir(parents=True, exist_ok=True)
    for patient in plan.patients:
        if patient.has_report:
            _write_text(plan.out_dir / "reports" / f"{patient.patient_id}.txt", report(patient))
    _write_text(plan.out_dir / "rna.tsv", rna().to_csv(sep="\t", lineterminator="\n"))
    relative = sheet.assign(
        slide_path=[str(Path(p).relative_to(plan.out_dir)) for p in sheet["slide_path"]],
        report_path=[
            str(Path(p).relative_to(plan.out_dir)) if isinstance(p, str) else "" for p in sheet["report_path"]
        ],
        mpp="",
    )
    _write_text(plan.out_dir / "samples.tsv", relative.to_csv(sep="\t", index=False, lineterminator="\n"))
    return sheet


def write_demo_cohort(
    cohort: str, demo_config: Mapping[str, Any], classes: Sequence[str], out_dir: Path, *, workers: int = 1
) -> pd.DataFrame:
    """Write the whole demo cohort under ``out_dir``; return its sample sheet (absolute paths).

    Every file is written under a temporary name and renamed; the sample sheet comes last, so a sheet
    on disk means the cohort is complete.
    """
    plan = make_demo_plan(cohort, demo_config, classes, out_dir)
    for slide in tqdm(plan.slides, desc=f"{cohort} demo slides", unit="slide"):
        write_planned_slide(plan, slide.slide_id, workers=workers)
    return write_demo_tables(plan)


def survival_rna_matrix(plan: SurvivalDemoPlan) -> pd.DataFrame:
    """The survival demo's RNA (genes x patients with RNA): :func:`module_rna_matrix` with a risk module, whose
    activity is ``SURVIVAL_RNA_WEIGHT * r`` plus noise, and two nuisance programmes (``mosare.demo.survival``)."""
    module_shift = np.zeros((len(plan.outcomes), 3))
    module_shift[:, 0] = SURVIVAL_RNA_WEIGHT * plan.risks
    return module_rna_matrix(plan.base, module_shift)


def survival_risk_genes(plan: SurvivalDemoPlan) -> list[str]:
    """The gene ids of the survival demo's risk module (what the tests check the signal on)."""
    _, loadings, _ = _gene_programmes(plan.base, 3)
    return [f"GENE{g + 1:05d}" for g in np.flatnonzero(loadings[0])]


def write_survival_demo_tables(plan: SurvivalDemoPlan) -> pd.DataFrame:
    """:func:`write_demo_tables` for a survival demo: its reports (``survival_report``), ``rna.tsv`` and, last,
    ``samples.tsv`` with ``time`` and ``event`` instead of ``label``; return the sheet with absolute paths."""
    return _write_tables(
        plan.base,
        plan.sheet,
        lambda patient: survival_report(plan.base, patient, plan.outcome(patient).risk),
        lambda: survival_rna_matrix(plan),
    )


def write_survival_demo_cohort(
    cohort: str,
    demo_config: Mapping[str, Any],
    out_dir: Path,
    *,
    subtype: str = DEFAULT_SUBTYPE,
    model: SurvivalModel | None = None,
    workers: int = 1,
) -> pd.DataFrame:
    """Write a whole survival demo cohort under ``out_dir`` (slides as :func:`write_demo_cohort` does, then
    :func:`write_survival_demo_tables`); return its sample sheet (absolute paths)."""
    plan = make_survival_demo_plan(cohort, demo_config, out_dir, subtype=subtype, model=model)
    for slide in tqdm(plan.base.slides, desc=f"{cohort} demo slides", unit="slide"):
        write_planned_slide(plan.base, slide.slide_id, workers=workers)
    return write_survival_demo_tables(plan)
