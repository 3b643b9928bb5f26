"""Snakemake wrapper: one cohort's slide QC table with outlier flags (see mosare.cohort.slide_qc_table)."""

from pathlib import Path

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.core.logs import log_to_file
from mosare.cohort.slide_qc_table import slide_qc_table, write_slide_qc_table

with log_to_file(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    qc = snakemake.params.qc  # noqa: F821
    stores = {Path(store).name.removesuffix(".zarr"): store for store in snakemake.input.stores}  # noqa: F821
    min_patches = snakemake.params.min_patches  # noqa: F821 (qc.min_patches, or gmm.components when unset)
    table = slide_qc_table(stores, mad_k=qc["mad_k"], min_patches=min_patches)
    write_slide_qc_table(table, snakemake.output.table)  # noqa: F821
    flagged = table[table["flags"] != ""]
    log.info("%d of %d slide(s) flagged (qc.mad_k %g, min_patches %d)", len(flagged), len(table), qc["mad_k"],
             min_patches)
    for slide_id, flags in zip(flagged["slide_id"], flagged["flags"]):
        log.warning("slide %s flagged: %s", slide_id, flags)
