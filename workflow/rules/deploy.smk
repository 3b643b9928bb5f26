# Deploy and external validation: the saved final models of cohort {source} applied to cohort {target}, both
# configured cohorts processed by this workflow with the same settings (logic: src/mosare/deploy.py).

rule deploy_models:
    input:
        models=f"{RESULTS}/{{source}}/models",
        cohort_table=f"{RESULTS}/{{target}}/cohort.tsv",
        features=deploy_feature_stores,
        gmms=deploy_gmm_stores,
        text=f"{RESULTS}/{{target}}/text.zarr",
        rna=f"{RESULTS}/{{target}}/rna.zarr",
    output:
        predictions=f"{RESULTS}/{{source}}/deploy/{{target}}/predictions.tsv",
        metrics=f"{RESULTS}/{{source}}/deploy/{{target}}/metrics.tsv",
        roc=report(
            f"{RESULTS}/{{source}}/deploy/{{target}}/roc.png",
            caption="../report/deploy_roc.rst",
            category="External validation",
            subcategory="{source} -> {target}",
        ),
    log:
        f"{RESULTS}/logs/deploy_models/{{source}}/{{target}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/deploy_models/{{source}}/{{target}}.tsv"
    params:
        classes=deploy_classes,
        features_dir=deploy_features_dir,
        gmm_dir=deploy_gmm_dir,
        missing_genes=(config.get("deploy") or {}).get("missing_genes", "error"),
        code=code_hash("deploy"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/deploy_models.py"
