# Cohort-level figures from finished results, one job per cohort and figure (logic: src/mosare/reporting/cohort_figures.py,
# one plugin module per figure in src/mosare/reporting/figure_plugins/). A new figure is one file there. Each figure is of
# one task: a cohort gets those of its own (get_final_output, common.smk).


rule draw_cohort_figure:
    input:
        metrics=LAYOUT.metrics("{cohort}"),
        comparisons=LAYOUT.comparisons("{cohort}"),
        predictions=LAYOUT.predictions("{cohort}"),
        cohort_table=LAYOUT.cohort_table("{cohort}"),
    output:
        report(
            LAYOUT.cohort_figure("{cohort}", "{figure}"),
            caption="../report/cohort_figure.rst",
            category="Evaluation",
            subcategory="{cohort}",
            labels={"figure": "{figure}"},
        ),
    log:
        f"{RESULTS}/logs/draw_cohort_figure/{{cohort}}/{{figure}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/draw_cohort_figure/{{cohort}}/{{figure}}.tsv"
    wildcard_constraints:
        figure=cohort_figure_pattern(),
    params:
        classes=cohort_classes,  # none for a survival cohort
        time_unit=cohort_figure_time_unit,  # a survival cohort's time unit, None for a classification cohort
        description=cohort_figure_description,
        train_dir=lambda wildcards: LAYOUT.train_dir(wildcards.cohort),  # training histories, written by train_fold
        code=code_hash("figures"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/draw_cohort_figure.py"
