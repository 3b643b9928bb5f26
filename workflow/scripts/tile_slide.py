"""Snakemake wrapper: tissue detection, patch grid and QC picture for one slide (see mosare.slides.tiling); a slide
that cannot be tiled is excluded or fails the job by slides.on_error (mosare.slides.exclusion)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.core.logs import log_to_file
from mosare.reporting.plots.exclusion import plot_slide_exclusion
from mosare.reporting.plots.tissue import plot_tissue_qc
from mosare.slides.exclusion import SlideExclusion
from mosare.slides.tiling import tile_or_exclude

with log_to_file(snakemake.log[0]):
    result = tile_or_exclude(
        snakemake.input.slide,
        snakemake.output.patches,
        slide_id=snakemake.wildcards.slide_id,
        tiling=snakemake.params.tiling,
        # Read from the config, not a param: no finished slide's store depends on it, so switching reruns nothing.
        on_error=snakemake.config["slides"]["on_error"],
        mpp_override=snakemake.params.mpp_override,
        thumbnail=True,
    )
    if isinstance(result, SlideExclusion):
        plot_slide_exclusion(result, snakemake.output.qc)
    else:
        plot_tissue_qc(result, snakemake.output.qc)
