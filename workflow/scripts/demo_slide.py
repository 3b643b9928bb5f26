"""Snakemake wrapper: render and write one planned demo slide (see mosare.demo.writer)."""

from pathlib import Path

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.demo.writer import write_planned_slide
from mosare.demo.plan import make_demo_plan
from mosare.core.logs import log_to_file

with log_to_file(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    output = Path(snakemake.output[0])  # noqa: F821
    plan = make_demo_plan(
        snakemake.wildcards.cohort,  # noqa: F821
        snakemake.params.demo,  # noqa: F821
        snakemake.params.classes,  # noqa: F821
        output.parent.parent,
    )
    write_planned_slide(plan, snakemake.wildcards.slide_id, workers=snakemake.threads)  # noqa: F821
    log.info("wrote %s (%.1f MB)", output, output.stat().st_size / 1e6)
