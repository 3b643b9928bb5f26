"""Snakemake wrapper: clean, split and encode a cohort's reports into text.zarr (see mosare.features.reports)."""

import torch

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.core.logs import log_to_file
from mosare.core.resources import usable_cores
from mosare.core.samples import load_sample_sheet
from mosare.features.reports import build_text_store

with log_to_file(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    torch.set_num_threads(usable_cores(snakemake.threads))  # noqa: F821
    build_text_store(
        load_sample_sheet(snakemake.input.samples, snakemake.params.classes),  # noqa: F821
        snakemake.params.classes,  # noqa: F821
        snakemake.params.text,  # noqa: F821
        snakemake.params.gmm,  # noqa: F821
        snakemake.output[0],  # noqa: F821
        configured_leak_patterns=snakemake.params.leak_patterns,  # noqa: F821
    )
