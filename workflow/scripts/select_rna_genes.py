"""Snakemake wrapper: log-transform the cohort's RNA matrix and keep the most variable genes (see mosare.features.expression)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.core.logs import log_to_file
from mosare.features.expression import build_rna_store
from mosare.core.samples import load_sample_sheet

with log_to_file(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    sheet = load_sample_sheet(snakemake.input.samples, snakemake.params.classes)  # noqa: F821
    build_rna_store(
        snakemake.input.get("rna"),  # noqa: F821 (absent when the cohort has no RNA matrix)
        sheet["patient_id"].drop_duplicates().tolist(),
        snakemake.params.rna,  # noqa: F821
        snakemake.output[0],  # noqa: F821
    )
