# Training and evaluation: every model in train.models under patient-level stratified cross-validation, in the
# complete and missing-modality scenarios, one job per cohort (logic: src/mosare/training.py). The job asks for a GPU
# (resources gpu=1) and uses CUDA with bf16 autocast when one is visible; without one it runs on the CPU, one
# single-threaded process per core.


rule train_and_evaluate:
    input:
        cohort_table=f"{RESULTS}/{{cohort}}/cohort.tsv",
        features=cohort_feature_stores,
        gmms=cohort_gmm_stores,
        text=f"{RESULTS}/{{cohort}}/text.zarr",
        rna=f"{RESULTS}/{{cohort}}/rna.zarr",
    output:
        metrics=report(
            f"{RESULTS}/{{cohort}}/metrics.tsv",
            caption="../report/metrics.rst",
            category="Evaluation",
            subcategory="{cohort}",
        ),
        summary=f"{RESULTS}/{{cohort}}/metrics.md",
        comparisons=f"{RESULTS}/{{cohort}}/comparisons.tsv",
        splits=f"{RESULTS}/{{cohort}}/splits.tsv",
        train_dir=directory(f"{RESULTS}/{{cohort}}/train"),
        models=directory(f"{RESULTS}/{{cohort}}/models"),
        roc=report(
            f"{RESULTS}/{{cohort}}/roc.png",
            caption="../report/roc.rst",
            category="Evaluation",
            subcategory="{cohort}",
        ),
        training_curves=report(
            f"{RESULTS}/{{cohort}}/training_curves.png",
            caption="../report/training_curves.rst",
            category="Evaluation",
            subcategory="{cohort}",
        ),
        comparisons_plot=report(
            f"{RESULTS}/{{cohort}}/comparisons.png",
            caption="../report/comparisons.rst",
            category="Evaluation",
            subcategory="{cohort}",
        ),
        calibration=report(
            f"{RESULTS}/{{cohort}}/calibration.png",
            caption="../report/calibration.rst",
            category="Evaluation",
            subcategory="{cohort}",
        ),
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
