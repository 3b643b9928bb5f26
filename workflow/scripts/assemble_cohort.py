"""Snakemake wrapper: the per-patient cohort table with modality presence, and its picture (see mosare.cohort.table)."""

from pathlib import Path

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.cohort.table import build_cohort_table
from mosare.core.logs import log_to_file
from mosare.reporting.plots.cohort import plot_modality_presence
from mosare.core.samples import load_sample_sheet
from mosare.cohort.slide_qc_table import exclude_flagged_slides, read_flagged_slides

with log_to_file(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    sheet = load_sample_sheet(snakemake.input.samples, snakemake.params.classes)  # noqa: F821
    if snakemake.params.exclude_flagged:  # noqa: F821
        flagged = read_flagged_slides(snakemake.input.slide_qc[0])  # noqa: F821
        sheet = exclude_flagged_slides(sheet, flagged, snakemake.wildcards.cohort)  # noqa: F821
    table = build_cohort_table(
        sheet,
        {Path(store).name.removesuffix(".zarr"): store for store in snakemake.input.features},  # noqa: F821
        snakemake.input.text,  # noqa: F821
        snakemake.input.rna,  # noqa: F821
        snakemake.output.table,  # noqa: F821
    )
    plot_modality_presence(table, snakemake.wildcards.cohort, snakemake.output.qc)  # noqa: F821
