# Training and evaluation: every model in train.models under patient-level stratified cross-validation, in the
# complete and missing-modality scenarios (logic: src/mosare/training/stage.py). Jobs a cluster can spread:
# train_fold, one per fold of each repeat (every model and scenario of that fold); train_final_models, the models
# trained on the whole cohort; and train_and_evaluate, which reads them and writes the tables and model cards. Each
# training job asks for a GPU (resources gpu=1) and uses CUDA with bf16 autocast when one is visible; without one it
# runs on the CPU, one single-threaded process per thread. The figures (ROC, training curves, comparisons,
# calibration) are cohort figures, drawn by rule draw_cohort_figure.


rule train_fold:
    input:
        cohort_table=LAYOUT.cohort_table("{cohort}"),
        features=cohort_feature_stores,
        gmms=cohort_gmm_stores,
        text=LAYOUT.text_store("{cohort}"),
        rna=LAYOUT.rna_store("{cohort}"),
    output:
        LAYOUT.fold_results("{cohort}", "{repeat}", "{fold}"),
    log:
        f"{RESULTS}/logs/train_fold/{{cohort}}/repeat{{repeat}}-fold{{fold}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_fold/{{cohort}}/repeat{{repeat}}-fold{{fold}}.tsv"
    wildcard_constraints:
        repeat=r"\d+",
        fold=r"\d+",
    params:
        train=training_run_config,
        classes=cohort_classes,
        rna_top_genes=config["rna"]["top_genes"],
        features_dir=training_features_dir,
        gmm_dir=training_gmm_dir,
        train_dir=lambda wildcards: LAYOUT.train_dir(wildcards.cohort),
        code=code_hash("training"),
    priority: SCHEDULING_PRIORITY["train_fold"]
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train_fold.py"


rule train_final_models:
    input:
        cohort_table=LAYOUT.cohort_table("{cohort}"),
        features=cohort_feature_stores,
        gmms=cohort_gmm_stores,
        text=LAYOUT.text_store("{cohort}"),
        rna=LAYOUT.rna_store("{cohort}"),
    output:
        LAYOUT.final_model_results("{cohort}"),
    log:
        f"{RESULTS}/logs/train_final_models/{{cohort}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_final_models/{{cohort}}.tsv"
    params:
        train=training_run_config,
        classes=cohort_classes,
        rna_top_genes=config["rna"]["top_genes"],
        features_dir=training_features_dir,
        gmm_dir=training_gmm_dir,
        code=code_hash("training"),
    # The longest training job: started before the folds, so it does not finish last.
    priority: SCHEDULING_PRIORITY["train_final_models"]
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=120,
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train_final_models.py"


rule train_and_evaluate:
    input:
        folds=cohort_fold_results,
        final_models=LAYOUT.final_model_results("{cohort}"),
        cohort_table=LAYOUT.cohort_table("{cohort}"),
        features=cohort_feature_stores,
        gmms=cohort_gmm_stores,
        text=LAYOUT.text_store("{cohort}"),
        rna=LAYOUT.rna_store("{cohort}"),
        slide_qc=excluded_slides_table,  # the slides left out, listed in metrics.md
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
        models=directory(LAYOUT.models_dir("{cohort}")),
        predictions=LAYOUT.predictions("{cohort}"),
    log:
        f"{RESULTS}/logs/train_and_evaluate/{{cohort}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_and_evaluate/{{cohort}}.tsv"
    params:
        train=training_config,
        folds=cohort_fold_keys,
        classes=cohort_classes,
        rna_top_genes=config["rna"]["top_genes"],
        features_dir=training_features_dir,
        gmm_dir=training_gmm_dir,
        train_dir=lambda wildcards: LAYOUT.train_dir(wildcards.cohort),
        exclude_flagged=config["qc"]["exclude_flagged"],
        code=code_hash("training"),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/train_and_evaluate.py"


# Encoder comparison (compare_encoders): each further encoder's features trained like `encoder`'s by the same rules,
# its models that read slides only, on the same folds, masks and seeds, under results/{cohort}/encoders/{encoder}/;
# then every encoder compared on the same patients (src/mosare/evaluation/encoder_comparison.py).


use rule train_fold as train_fold_compared_encoder with:
    input:
        cohort_table=LAYOUT.cohort_table("{cohort}"),
        features=lambda wildcards: slide_feature_stores(wildcards.cohort, wildcards.encoder),
        gmms=lambda wildcards: slide_gmm_stores(wildcards.cohort, wildcards.encoder),
        text=LAYOUT.text_store("{cohort}"),
        rna=LAYOUT.rna_store("{cohort}"),
    output:
        LAYOUT.encoder_fold_results("{cohort}", "{encoder}", "{repeat}", "{fold}"),
    log:
        f"{RESULTS}/logs/train_fold/{{cohort}}/{{encoder}}/repeat{{repeat}}-fold{{fold}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_fold/{{cohort}}/{{encoder}}/repeat{{repeat}}-fold{{fold}}.tsv"
    wildcard_constraints:
        repeat=r"\d+",
        fold=r"\d+",
        encoder=compared_encoder_pattern(),
    params:
        train=compared_encoder_training_run_config,
        classes=cohort_classes,
        rna_top_genes=config["rna"]["top_genes"],
        features_dir=lambda wildcards: feature_dir(wildcards.cohort, wildcards.encoder),
        gmm_dir=lambda wildcards: gmm_dir(wildcards.cohort, wildcards.encoder),
        train_dir=lambda wildcards: LAYOUT.encoder_train_dir(wildcards.cohort, wildcards.encoder),
        code=code_hash("training"),


use rule train_and_evaluate as evaluate_compared_encoder with:
    input:
        folds=compared_encoder_fold_results,
        cohort_table=LAYOUT.cohort_table("{cohort}"),
        features=lambda wildcards: slide_feature_stores(wildcards.cohort, wildcards.encoder),
        gmms=lambda wildcards: slide_gmm_stores(wildcards.cohort, wildcards.encoder),
        text=LAYOUT.text_store("{cohort}"),
        rna=LAYOUT.rna_store("{cohort}"),
        slide_qc=excluded_slides_table,
    output:
        metrics=LAYOUT.encoder_metrics("{cohort}", "{encoder}"),
        summary=LAYOUT.encoder_metrics_summary("{cohort}", "{encoder}"),
        comparisons=LAYOUT.encoder_comparisons("{cohort}", "{encoder}"),
        splits=LAYOUT.encoder_splits("{cohort}", "{encoder}"),
        predictions=LAYOUT.encoder_predictions("{cohort}", "{encoder}"),
    log:
        f"{RESULTS}/logs/train_and_evaluate/{{cohort}}/{{encoder}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_and_evaluate/{{cohort}}/{{encoder}}.tsv"
    wildcard_constraints:
        encoder=compared_encoder_pattern(),
    params:
        train=compared_encoder_training_config,
        folds=cohort_fold_keys,
        classes=cohort_classes,
        rna_top_genes=config["rna"]["top_genes"],
        features_dir=lambda wildcards: feature_dir(wildcards.cohort, wildcards.encoder),
        gmm_dir=lambda wildcards: gmm_dir(wildcards.cohort, wildcards.encoder),
        train_dir=lambda wildcards: LAYOUT.encoder_train_dir(wildcards.cohort, wildcards.encoder),
        exclude_flagged=config["qc"]["exclude_flagged"],
        code=code_hash("training"),


rule encoder_comparison:
    input:
        predictions=lambda wildcards: [LAYOUT.predictions(wildcards.cohort)]
        + [LAYOUT.encoder_predictions(wildcards.cohort, encoder) for encoder in COMPARED_ENCODERS],
        # the embedding jobs' benchmark files are read for their cost once these exist
        features=lambda wildcards: [store for encoder in ENCODER_SETTINGS
                                    for store in slide_feature_stores(wildcards.cohort, encoder)],
    output:
        table=LAYOUT.encoder_comparison("{cohort}"),
        summary=LAYOUT.encoder_comparison_summary("{cohort}"),
        figure=report(
            LAYOUT.encoder_comparison_figure("{cohort}"),
            caption="../report/encoder_comparison.rst",
            category="Encoder comparison",
            subcategory="{cohort}",
        ),
    log:
        f"{RESULTS}/logs/encoder_comparison/{{cohort}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/encoder_comparison/{{cohort}}.tsv"
    params:
        encoders=list(ENCODER_SETTINGS),
        benchmarks=lambda wildcards: {
            encoder: [embedding_benchmark(wildcards.cohort, encoder, chunk)
                      for chunk in cohort_embedding_chunks(wildcards.cohort)]
            for encoder in ENCODER_SETTINGS
        },
        classes=cohort_classes,
        train=training_config,
        code=code_hash("encoder_comparison"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/compare_encoders.py"
