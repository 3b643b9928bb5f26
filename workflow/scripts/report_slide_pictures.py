"""Snakemake wrapper: the slides whose QC pictures the HTML report embeds, as reduced copies (see
mosare.reporting.slide_qc_report)."""

from pathlib import Path

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.cohort.slide_qc_table import read_flagged_slides
from mosare.core.logs import log_to_file
from mosare.reporting.slide_qc_report import select_report_slides, write_report_copies

with log_to_file(snakemake.log[0]) as log:
    tissue = {Path(path).stem: path for path in snakemake.input.tissue}
    gmm = {Path(path).stem: path for path in snakemake.input.gmm}
    flagged = read_flagged_slides(snakemake.input.table)
    cap = snakemake.params.max_pictures
    selection = select_report_slides(list(tissue), flagged, cap)
    write_report_copies(selection, tissue, snakemake.output.tissue)
    write_report_copies(selection, gmm, snakemake.output.gmm)
    log.info(
        "report embeds the QC pictures of %d flagged and %d unflagged of %d slide(s) (report.max_slide_pictures %d)",
        len(selection.flagged),
        len(selection.unflagged),
        len(tissue),
        cap,
    )
    if selection.flagged_left_out:
        log.warning(
            "%d flagged slide(s) beyond report.max_slide_pictures are not in the report (they are on the "
            "contact sheets and under results/%s/qc/): %s",
            len(selection.flagged_left_out),
            snakemake.wildcards.cohort,
            ", ".join(selection.flagged_left_out),
        )
