"""Snakemake wrapper: one slide's Gaussian mixture over its patch features, GMM store and QC picture (see mosare.gmm)."""

import torch

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.gmm import fit_slide_gmm
from mosare.logs import log_to_file
from mosare.resources import usable_cores

with log_to_file(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    # One thread per slide job: slides run side by side, and a shared core makes torch's thread pool stall.
    torch.set_num_threads(usable_cores(snakemake.threads))  # noqa: F821
    fit_slide_gmm(
        snakemake.input.features,  # noqa: F821
        snakemake.input.patches,  # noqa: F821
        snakemake.input.slide,  # noqa: F821
        snakemake.output.gmm,  # noqa: F821
        snakemake.output.qc,  # noqa: F821
        snakemake.params.gmm,  # noqa: F821
        slide_id=snakemake.wildcards.slide_id,  # noqa: F821
    )
