"""Snakemake wrapper: tissue detection, patch grid and QC picture for one slide (see mosare.slides.tiling)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.core.logs import log_to_file
from mosare.reporting.plots.tissue import plot_tissue_qc
from mosare.slides.tiling import tile_slide

with log_to_file(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    result = tile_slide(
        snakemake.input.slide,  # noqa: F821
        snakemake.output.patches,  # noqa: F821
        slide_id=snakemake.wildcards.slide_id,  # noqa: F821
        tiling=snakemake.params.tiling,  # noqa: F821
        mpp_override=snakemake.params.mpp_override,  # noqa: F821
        thumbnail=True,
    )
    plot_tissue_qc(result, snakemake.output.qc)  # noqa: F821
