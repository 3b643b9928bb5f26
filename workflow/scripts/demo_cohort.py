"""Snakemake wrapper: write a demo cohort's reports, RNA matrix, overview picture and, last, its sample sheet
(its slides are already written by rule demo_slide; see mosare.demo.writer, mosare.reporting.plots.demo). A survival
demo (task: survival) is planned by mosare.demo.survival and its sheet has time and event instead of label."""

from pathlib import Path

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.core.logs import log_to_file
from mosare.demo.plan import make_demo_plan
from mosare.demo.survival import make_survival_demo_plan
from mosare.demo.writer import write_demo_tables, write_survival_demo_tables
from mosare.reporting.plots.demo import write_demo_overview

with log_to_file(snakemake.log[0]) as log:
    cohort, demo, out_dir = snakemake.wildcards.cohort, snakemake.params.demo, Path(snakemake.output.samples).parent
    if snakemake.params.task == "survival":
        survival_plan = make_survival_demo_plan(cohort, demo, out_dir)
        plan = survival_plan.base
        write_demo_overview(plan, Path(snakemake.output.overview))
        sheet = write_survival_demo_tables(survival_plan)
        log.info(
            "survival demo cohort %s: %d events, %d censored",
            cohort, sum(o.event for o in survival_plan.outcomes), sum(not o.event for o in survival_plan.outcomes),
        )  # fmt: skip
    else:
        plan = make_demo_plan(cohort, demo, snakemake.params.classes, out_dir)
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
