# Training and evaluation: every model in train.models under patient-level stratified cross-validation, in the
# complete and missing-modality scenarios, one job per cohort (logic: src/mosare/training/stage.py). Its figures
# (ROC, training curves, comparisons, calibration) are cohort figures, drawn by rule draw_cohort_figure. The job asks for a GPU
# (resources gpu=1) and uses CUDA with bf16 autocast when one is visible; without one it runs on the CPU, one
# single-threaded process per core.


rule train_and_evaluate:
    input:
        cohort_table=LAYOUT.cohort_table("{cohort}"),
        features=cohort_feature_stores,
        gmms=cohort_gmm_stores,
        text=LAYOUT.text_store("{cohort}"),
        rna=LAYOUT.rna_store("{cohort}"),
        slide_qc=excluded_slides_table,  # counted in metrics.md when qc.exclude_flagged is on
    output:
        metrics=report(
            LAYOUT.metrics("{cohort}"),
            caption="../report/metrics.rst",
            category="Evaluation",
            subcategory="{cohort}",
        ),
        summary=LAYOUT.metrics_summary("{cohort}"),
        comparisons=LAYOUT.comparisons("{cohort}"),
        splits=LAYOUT.splits("{cohort}"),
        train_dir=directory(LAYOUT.train_dir("{cohort}")),
        models=directory(LAYOUT.models_dir("{cohort}")),
        predictions=LAYOUT.predictions("{cohort}"),
    log:
        f"{RESULTS}/logs/train_and_evaluate/{{cohort}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_and_evaluate/{{cohort}}.tsv"
    params:
        train=training_config,
        classes=cohort_classes,
        rna_top_genes=config["rna"]["top_genes"],
        features_dir=training_features_dir,
        gmm_dir=training_gmm_dir,
        exclude_flagged=config["qc"]["exclude_flagged"],
        code=code_hash("training"),
    threads: 16
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train_and_evaluate.py"
