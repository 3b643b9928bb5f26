# Deploy and external validation: the saved final models of cohort {source} applied to cohort {target}, both
# configured cohorts processed by this workflow with the same settings (logic: src/mosare/deploy.py).

rule deploy_models:
    input:
        models=LAYOUT.models_dir("{source}"),
        cohort_table=LAYOUT.cohort_table("{target}"),
        features=deploy_feature_stores,
        gmms=deploy_gmm_stores,
        text=LAYOUT.text_store("{target}"),
        rna=LAYOUT.rna_store("{target}"),
    output:
        predictions=LAYOUT.deploy_predictions("{source}", "{target}"),
        metrics=LAYOUT.deploy_metrics("{source}", "{target}"),
        roc=report(
            LAYOUT.deploy_roc("{source}", "{target}"),
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


# Where the model looked: the source's final MoSARe model's patch attention over every patch of every slide of the
# target (logic: src/mosare/attention.py, pictures: src/mosare/plots/attention.py).
rule deploy_attention:
    input:
        models=LAYOUT.models_dir("{source}"),
        cohort_table=LAYOUT.cohort_table("{target}"),
        features=deploy_feature_stores,
        patches=deploy_patch_stores,
    output:
        attention=directory(LAYOUT.deploy_attention("{source}", "{target}")),
        heatmaps=report(
            directory(LAYOUT.deploy_attention_heatmaps("{source}", "{target}")),
            patterns=["{slide}.png"],
            caption="../report/attention_heatmap.rst",
            category="Where the model looked",
            subcategory="{source} -> {target}: heatmaps",
        ),
        montages=report(
            directory(LAYOUT.deploy_attention_montages("{source}", "{target}")),
            patterns=["{slide}.png"],
            caption="../report/attention_montage.rst",
            category="Where the model looked",
            subcategory="{source} -> {target}: patches",
        ),
    log:
        f"{RESULTS}/logs/deploy_attention/{{source}}/{{target}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/deploy_attention/{{source}}/{{target}}.tsv"
    params:
        classes=deploy_classes,
        features_dir=deploy_features_dir,
        patches_dir=deploy_patches_dir,
        model=ATTENTION_MODEL,
        code=code_hash("attention"),
    threads: 4
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/deploy_attention.py"
