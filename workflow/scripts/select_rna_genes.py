"""Snakemake wrapper: log-transform the cohort's RNA matrix and keep the most variable genes (see mosare.features.expression)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.core.logs import log_to_file
from mosare.core.samples import load_sample_sheet
from mosare.features.expression import build_rna_store

with log_to_file(snakemake.log[0]):
    sheet = load_sample_sheet(snakemake.input.samples, snakemake.params.classes, task=snakemake.params.task)
    build_rna_store(
        snakemake.input.get("rna"),
        sheet["patient_id"].drop_duplicates().tolist(),
        snakemake.params.rna,
        snakemake.output[0],
    )
