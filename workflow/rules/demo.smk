# Demo cohorts (cohorts configured with `demo:`): a synthetic cohort under results/demo/{cohort}/, deterministic by
# demo.seed. One job per slide (demo_slide), then one job (demo_cohort) writes the reports, the RNA matrix and, last,
# the sample sheet. Logic: src/mosare/demo/ (plan.py, render.py for the slides, reports.py, writer.py), and
# src/mosare/reporting/plots/demo.py (overview).
#
# The planned sample sheet (cohort_sheet in common.smk) holds absolute slide paths, and downstream rules use them as
# inputs, so demo_slide's output is the same absolute path: DEMO_ROOT is resolved exactly like the plan's out_dir.


rule demo_slide:
    output:
        f"{DEMO_ROOT}/{{cohort}}/slides/{{slide_id}}.svs",
    log:
        f"{RESULTS}/logs/demo_slide/{{cohort}}/{{slide_id}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/demo_slide/{{cohort}}/{{slide_id}}.tsv"
    wildcard_constraints:
        cohort=demo_cohort_pattern(),
    params:
        demo=demo_config,
        classes=cohort_classes,
        task=cohort_task_of,
        code=code_hash("demo"),
    priority: SCHEDULING_PRIORITY["demo_slide"]
    threads: 1
    resources:
        mem_mb=1500,
        disk_mb=1000,  # stated, as for tile_slide: one slide written, nothing staged
        runtime=10,
    conda:
        "../../envs/demo.yaml"
    script:
        "../scripts/demo_slide.py"


rule demo_cohort:
    input:
        slides=demo_slide_paths,
    output:
        samples=LAYOUT.demo_sample_sheet("{cohort}"),
        rna=LAYOUT.demo_rna_matrix("{cohort}"),
        reports=directory(LAYOUT.demo_reports("{cohort}")),
        overview=report(
            LAYOUT.demo_overview("{cohort}"),
            caption="../report/demo_overview.rst",
            category="Demo cohorts",
            subcategory="{cohort}",
        ),
    log:
        f"{RESULTS}/logs/demo_cohort/{{cohort}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/demo_cohort/{{cohort}}.tsv"
    wildcard_constraints:
        cohort=demo_cohort_pattern(),
    params:
        demo=demo_config,
        classes=cohort_classes,
        task=cohort_task_of,
        code=code_hash("demo"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/demo.yaml"
    script:
        "../scripts/demo_cohort.py"
