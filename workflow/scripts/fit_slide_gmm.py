"""Snakemake wrapper: one chunk of slides' Gaussian mixtures over their patch features (mosare.features.slide_gmm), with
their GMM stores and QC pictures (mosare.reporting.plots.gmm), imports paid once per chunk."""

import torch

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.core.logs import log_to_file
from mosare.reporting.plots.gmm import plot_slide_mixture
from mosare.core.resources import usable_cores
from mosare.features.slide_gmm import SlideGMMJob, fit_slide_gmms

with log_to_file(snakemake.log.chunk):  # noqa: F821 (injected by Snakemake)
    # One thread: GMM jobs run side by side with other jobs, and a shared core makes torch's thread pool stall.
    torch.set_num_threads(usable_cores(snakemake.threads))  # noqa: F821
    fit_slide_gmms(
        [
            SlideGMMJob(*paths)
            for paths in zip(
                snakemake.params.slide_ids,  # noqa: F821
                snakemake.input.features,  # noqa: F821
                snakemake.output.gmm,  # noqa: F821
                snakemake.input.patches,  # noqa: F821
                snakemake.input.slides,  # noqa: F821
                snakemake.output.qc,  # noqa: F821
                snakemake.log.slides,  # noqa: F821
                strict=True,
            )
        ],
        snakemake.params.gmm,  # noqa: F821
        draw=lambda mixture, job: plot_slide_mixture(mixture, job.patch_store, job.slide_path, job.qc_picture),
    )
