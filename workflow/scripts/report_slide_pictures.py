"""Snakemake wrapper: the slides whose QC pictures the HTML report embeds, as reduced copies (see
mosare.reporting.slide_qc_report)."""

from pathlib import Path

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.core.logs import log_to_file
from mosare.reporting.slide_qc_report import select_report_slides, write_report_copies
from mosare.cohort.slide_qc_table import read_flagged_slides

with log_to_file(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    tissue = {Path(path).stem: path for path in snakemake.input.tissue}  # noqa: F821
    gmm = {Path(path).stem: path for path in snakemake.input.gmm}  # noqa: F821
    flagged = read_flagged_slides(snakemake.input.table)  # noqa: F821
    cap = snakemake.params.max_pictures  # noqa: F821
    selection = select_report_slides(list(tissue), flagged, cap)
    write_report_copies(selection, tissue, snakemake.output.tissue)  # noqa: F821
    write_report_copies(selection, gmm, snakemake.output.gmm)  # noqa: F821
    log.info("report embeds the QC pictures of %d flagged and %d unflagged of %d slide(s) (report.max_slide_pictures "
             "%d)", len(selection.flagged), len(selection.unflagged), len(tissue), cap)
    if selection.flagged_left_out:
        log.warning("%d flagged slide(s) beyond report.max_slide_pictures are not in the report (they are on the "
                    "contact sheets and under results/%s/qc/): %s", len(selection.flagged_left_out),
                    snakemake.wildcards.cohort, ", ".join(selection.flagged_left_out))  # noqa: F821
