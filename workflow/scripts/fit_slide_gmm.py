"""Snakemake wrapper: one chunk of slides' Gaussian mixtures over their patch features (mosare.features.slide_gmm), with
their GMM stores and QC pictures (mosare.reporting.plots.gmm), imports paid once per chunk."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)
import torch

from mosare.core.logs import log_to_file
from mosare.core.resources import usable_cores
from mosare.features.slide_gmm import SlideGMMJob, SlideMixture, fit_slide_gmms
from mosare.reporting.plots.exclusion import plot_slide_exclusion
from mosare.reporting.plots.gmm import plot_slide_mixture
from mosare.slides.exclusion import SlideExclusion


def draw(fitted: SlideMixture | SlideExclusion, job: SlideGMMJob) -> None:
    if isinstance(fitted, SlideExclusion):
        plot_slide_exclusion(fitted, job.qc_picture)
    else:
        plot_slide_mixture(fitted, job.patch_store, job.slide_path, job.qc_picture)


with log_to_file(snakemake.log.chunk):
    # One thread: GMM jobs run side by side with other jobs, and a shared core makes torch's thread pool stall.
    torch.set_num_threads(usable_cores(snakemake.threads))
    fit_slide_gmms(
        [
            SlideGMMJob(*paths)
            for paths in zip(
                snakemake.params.slide_ids,
                snakemake.input.features,
                snakemake.output.gmm,
                snakemake.input.patches,
                snakemake.input.slides,
                snakemake.output.qc,
                snakemake.log.slides,
                strict=True,
            )
        ],
        snakemake.params.gmm,
        draw=draw,
    )
