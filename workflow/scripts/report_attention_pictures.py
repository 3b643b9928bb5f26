"""Snakemake wrapper: the slides whose attention pictures the HTML report embeds for a deploy pair, as reduced copies
(see mosare.reporting.attention_report)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.core.logs import log_to_file
from mosare.reporting.attention_report import select_attention_slides, write_attention_report_pictures

with log_to_file(snakemake.log[0]) as log:
    cap = snakemake.params.max_pictures
    selection = select_attention_slides(
        snakemake.input.cohort_table, snakemake.input.predictions, snakemake.params.model, cap
    )
    write_attention_report_pictures(selection, snakemake.input.heatmaps, snakemake.output.heatmaps)
    write_attention_report_pictures(selection, snakemake.input.montages, snakemake.output.montages)
    log.info(
        "report embeds the attention pictures of %d slide(s) of misclassified patients and %d other(s) "
        "(report.max_slide_pictures %d)",
        len(selection.flagged),
        len(selection.unflagged),
        cap,
    )
    if selection.flagged_left_out:
        log.warning(
            "%d slide(s) of misclassified patients beyond report.max_slide_pictures are not in the report "
            "(their pictures are under %s and %s): %s",
            len(selection.flagged_left_out),
            snakemake.input.heatmaps,
            snakemake.input.montages,
            ", ".join(selection.flagged_left_out),
        )
