"""Snakemake wrapper: write a demo cohort's reports, RNA matrix, overview picture and, last, its sample sheet
(its slides are already written by rule demo_slide; see mosare.demo.writer, mosare.reporting.plots.demo)."""

from pathlib import Path

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.demo.writer import write_demo_tables
from mosare.demo.plan import make_demo_plan
from mosare.core.logs import log_to_file
from mosare.reporting.plots.demo import write_demo_overview

with log_to_file(snakemake.log[0]) as log:  # noqa: F821 (injected by Snakemake)
    plan = make_demo_plan(
        snakemake.wildcards.cohort,  # noqa: F821
        snakemake.params.demo,  # noqa: F821
        snakemake.params.classes,  # noqa: F821
        Path(snakemake.output.samples).parent,  # noqa: F821
    )
    write_demo_overview(plan, Path(snakemake.output.overview))  # noqa: F821
    sheet = write_demo_tables(plan)
    log.info(
        "demo cohort %s: %d patients, %d slides, %d without RNA, %d without a report",
        plan.cohort,
        len(plan.patients),
        len(sheet),
        sum(not p.has_rna for p in plan.patients),
        sum(not p.has_report for p in plan.patients),
    )
