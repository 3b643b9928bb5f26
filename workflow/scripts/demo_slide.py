"""Snakemake wrapper: render and write one planned demo slide (see mosare.demo.writer; a survival demo's slides are
planned by mosare.demo.survival and rendered the same way)."""

from pathlib import Path

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.core.logs import log_to_file
from mosare.demo.plan import make_demo_plan
from mosare.demo.survival import make_survival_demo_plan
from mosare.demo.writer import write_planned_slide

with log_to_file(snakemake.log[0]) as log:
    output = Path(snakemake.output[0])
    cohort, demo, out_dir = snakemake.wildcards.cohort, snakemake.params.demo, output.parent.parent
    if snakemake.params.task == "survival":
        plan = make_survival_demo_plan(cohort, demo, out_dir).base
    else:
        plan = make_demo_plan(cohort, demo, snakemake.params.classes, out_dir)
    write_planned_slide(plan, snakemake.wildcards.slide_id, workers=snakemake.threads)
    log.info("wrote %s (%.1f MB)", output, output.stat().st_size / 1e6)
