"""Snakemake wrapper: render and write one planned demo slide (see mosare.demo.writer)."""

from pathlib import Path

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.core.logs import log_to_file
from mosare.demo.plan import make_demo_plan
from mosare.demo.writer import write_planned_slide

with log_to_file(snakemake.log[0]) as log:
    output = Path(snakemake.output[0])
    plan = make_demo_plan(
        snakemake.wildcards.cohort,
        snakemake.params.demo,
        snakemake.params.classes,
        output.parent.parent,
    )
    write_planned_slide(plan, snakemake.wildcards.slide_id, workers=snakemake.threads)
    log.info("wrote %s (%.1f MB)", output, output.stat().st_size / 1e6)
