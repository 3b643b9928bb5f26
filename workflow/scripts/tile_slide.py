"""Snakemake wrapper: tissue detection, patch grid and QC picture for one slide (see mosare.slides.tiling)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.core.logs import log_to_file
from mosare.reporting.plots.tissue import plot_tissue_qc
from mosare.slides.tiling import tile_slide

with log_to_file(snakemake.log[0]):
    result = tile_slide(
        snakemake.input.slide,
        snakemake.output.patches,
        slide_id=snakemake.wildcards.slide_id,
        tiling=snakemake.params.tiling,
        mpp_override=snakemake.params.mpp_override,
        thumbnail=True,
    )
    plot_tissue_qc(result, snakemake.output.qc)
