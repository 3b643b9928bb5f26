"""Snakemake wrapper: one cohort's slide QC table with outlier flags (see mosare.cohort.slide_qc_table)."""

from pathlib import Path

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.cohort.slide_qc_table import slide_qc_table, write_slide_qc_table
from mosare.core.logs import log_to_file

with log_to_file(snakemake.log[0]) as log:
    qc = snakemake.params.qc
    stores = {Path(store).name.removesuffix(".zarr"): store for store in snakemake.input.stores}
    features = {Path(store).name.removesuffix(".zarr"): store for store in snakemake.input.features}
    min_patches = snakemake.params.min_patches
    table = slide_qc_table(stores, features, mad_k=qc["mad_k"], min_patches=min_patches)
    write_slide_qc_table(table, snakemake.output.table)
    flagged = table[table["flags"] != ""]
    log.info(
        "%d of %d slide(s) flagged (qc.mad_k %g, min_patches %d)", len(flagged), len(table), qc["mad_k"], min_patches
    )
    for slide_id, flags in zip(flagged["slide_id"], flagged["flags"]):
        log.warning("slide %s flagged: %s", slide_id, flags)
    for slide_id, reason in zip(table["slide_id"], table["reason"]):
        if reason:
            log.warning("slide %s excluded (slides.on_error: exclude) at %s", slide_id, reason)
