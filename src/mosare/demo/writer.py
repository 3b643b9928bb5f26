"""Synthetic demo cohorts: slides, RNA and reports with class signal, noise and real missingness.

The plan (``mosare.demo.plan``), the slides (``mosare.demo.render``) and the reports (``mosare.demo.reports``) derive
from ``demo.seed`` alone, so two runs with one seed write byte-identical files. This module writes them, plus the RNA
matrix: raw-count-like (negative binomial), genes x patients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from mosare.core.atomic_files import atomic_file
from mosare.demo.plan import DemoPlan, make_demo_plan, random_stream
from mosare.demo.render import patient_phenotype, write_demo_slide
from mosare.demo.reports import demo_report


def demo_rna_matrix(plan: DemoPlan) -> pd.DataFrame:
    """Raw-count-like RNA (genes x patients with RNA): negative-binomial counts around gene baselines, one
    up-regulated module per class whose activity varies by patient, two nuisance programmes and two
    sequencing batches with gene-wise offsets; then ``noise_genes`` pure-noise genes (:func:`noise_gene_log_means`).
    Counts, so the RNA stage's ``log_transform: auto`` logs them.
    """
    seed = int(plan.settings["seed"])
    biology_seed = seed if plan.settings.get("biology_seed") is None else int(plan.settings["biology_seed"])
    # What defines the classes (gene baselines, class modules) comes from biology_seed, so an external cohort of the
    # same cancer shares it; patients, batches and noise come from seed (one stream when the two are equal).
    biology = random_stream(biology_seed, 2)
    n_genes, n_patients, n_classes = int(plan.settings["genes"]), len(plan.patients), len(plan.classes)
    baseline = biology.normal(2.0, 1.6, n_genes)  # natural-log mean count at library size 1
    module_size = max(5, n_genes // 30)
    modules = biology.permutation(n_genes)[: module_size * (n_classes + 2)].reshape(n_classes + 2, module_size)
    loadings = np.zeros((n_classes + 2, n_genes))
    for k, genes in enumerate(modules):
        loadings[k, genes] = biology.uniform(0.3, 1.0, module_size)
    rng = biology if biology_seed == seed else random_stream(seed, 2)
    class_index = np.array([round(p.class_position * (n_classes - 1)) for p in plan.patients])
    # A patient's own-class module is up on average, with spread that blurs the classes.
    activity = rng.normal(0.0, 0.6, (n_patients, n_classes + 2))
    activity[np.arange(n_patients), class_index] += 0.9
    batch = rng.integers(0, 2, n_patients)
    batch_offset = rng.normal(0.0, 0.35, n_genes)
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
    sheet = plan.sheet
    absent = [path for path in sheet["slide_path"] if not Path(path).exists()]
    if absent:
        raise FileNotFoundError(
            f"demo cohort {plan.cohort!r}: {len(absent)} planned slide(s) missing, e.g. {absent[0]}; "
            "write them with write_planned_slide (rule demo_slide) before the tables"
        )
    (plan.out_dir / "reports").mkdir(parents=True, exist_ok=True)
    for patient in plan.patients:
        if patient.has_report:
            _write_text(plan.out_dir / "reports" / f"{patient.patient_id}.txt", demo_report(plan, patient))
    _write_text(plan.out_dir / "rna.tsv", demo_rna_matrix(plan).to_csv(sep="\t", lineterminator="\n"))
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
