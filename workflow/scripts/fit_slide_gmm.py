"""Snakemake wrapper: one slide's Gaussian mixture over its patch features (mosare.slide_gmm), GMM store and QC
picture (mosare.plots.gmm)."""

import torch

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.logs import log_to_file
from mosare.plots.gmm import plot_slide_mixture
from mosare.resources import usable_cores
from mosare.slide_gmm import fit_slide_gmm

with log_to_file(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    # One thread per slide job: slides run side by side, and a shared core makes torch's thread pool stall.
    torch.set_num_threads(usable_cores(snakemake.threads))  # noqa: F821
    mixture = fit_slide_gmm(
        snakemake.input.features,  # noqa: F821
        snakemake.output.gmm,  # noqa: F821
        snakemake.params.gmm,  # noqa: F821
        slide_id=snakemake.wildcards.slide_id,  # noqa: F821
    )
    plot_slide_mixture(mixture, snakemake.input.patches, snakemake.input.slide, snakemake.output.qc)  # noqa: F821
