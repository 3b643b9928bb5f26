"""Snakemake wrapper: clean, split and encode a cohort's reports into text.zarr (see mosare.features.reports)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)
import torch

from mosare.core.logs import log_to_file
from mosare.core.resources import usable_cores
from mosare.core.samples import load_sample_sheet
from mosare.features.reports import build_text_store

with log_to_file(snakemake.log[0]):
    torch.set_num_threads(usable_cores(snakemake.threads))
    build_text_store(
        load_sample_sheet(snakemake.input.samples, snakemake.params.classes, task=snakemake.params.task),
        snakemake.params.classes,
        snakemake.params.text,
        snakemake.params.gmm,
        snakemake.output[0],
        configured_leak_patterns=snakemake.params.leak_patterns,
    )
