"""Snakemake wrapper: the per-patient cohort table with modality presence, and its picture (see mosare.cohort.table)."""

from pathlib import Path

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.cohort.slide_qc_table import drop_slides, slides_left_out
from mosare.cohort.table import build_cohort_table
from mosare.core.logs import log_to_file
from mosare.core.samples import load_sample_sheet
from mosare.reporting.plots.cohort import plot_modality_presence

with log_to_file(snakemake.log[0]):
    sheet = load_sample_sheet(snakemake.input.samples, snakemake.params.classes, task=snakemake.params.task)
    if snakemake.input.slide_qc:  # a cohort with slides: excluded ones, and flagged ones with qc.exclude_flagged
        left_out = slides_left_out(snakemake.input.slide_qc[0], exclude_flagged=snakemake.params.exclude_flagged)
        sheet = drop_slides(sheet, left_out, snakemake.wildcards.cohort)
    table = build_cohort_table(
        sheet,
        {Path(store).name.removesuffix(".zarr"): store for store in snakemake.input.features},
        snakemake.input.text,
        snakemake.input.rna,
        snakemake.output.table,
    )
    plot_modality_presence(table, snakemake.wildcards.cohort, snakemake.output.qc)
