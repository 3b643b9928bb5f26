"""Snakemake wrapper: write a demo cohort's reports, RNA matrix, overview picture and, last, its sample sheet
(its slides are already written by rule demo_slide; see mosare.demo.writer, mosare.reporting.plots.demo)."""

from pathlib import Path

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.core.logs import log_to_file
from mosare.demo.plan import make_demo_plan
from mosare.demo.writer import write_demo_tables
from mosare.reporting.plots.demo import write_demo_overview

with log_to_file(snakemake.log[0]) as log:
    plan = make_demo_plan(
        snakemake.wildcards.cohort,
        snakemake.params.demo,
        snakemake.params.classes,
        Path(snakemake.output.samples).parent,
    )
    write_demo_overview(plan, Path(snakemake.output.overview))
    sheet = write_demo_tables(plan)
    log.info(
        "demo cohort %s: %d patients, %d slides, %d without RNA, %d without a report",
        plan.cohort,
        len(plan.patients),
        len(sheet),
        sum(not p.has_rna for p in plan.patients),
        sum(not p.has_report for p in plan.patients),
    )
