"""Snakemake wrapper: a cohort's slide QC contact sheets and metrics overview (see mosare.reporting.plots.slide_qc)."""

from pathlib import Path

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)
import pandas as pd

from mosare.core.logs import log_to_file
from mosare.reporting.plots.slide_qc import plot_contact_sheets, plot_qc_overview

with log_to_file(snakemake.log[0]) as log:
    table = pd.read_csv(snakemake.input.table, sep="\t", dtype={"slide_id": str, "flags": str})
    pictures = {Path(path).stem: path for path in snakemake.input.pictures}
    pages = plot_contact_sheets(table, pictures, snakemake.output.sheets)
    plot_qc_overview(table, snakemake.output.overview)
    log.info("%d contact sheet page(s) for %d slides", len(pages), len(table))
