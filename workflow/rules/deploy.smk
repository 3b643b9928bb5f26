# Deploy and external validation: the saved final models of cohort {source} applied to cohort {target}, both
# configured cohorts processed by this workflow with the same settings (logic: src/mosare/deploy/apply.py). A
# classification source's get ROC curves (deploy_models), a survival source's Kaplan-Meier curves of their risk
# groups (deploy_survival_models).

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
    wildcard_constraints:
        source=cohort_pattern("classification"),
    params:
        classes=deploy_classes,
        features_dir=deploy_features_dir,
        gmm_dir=deploy_gmm_dir,
        missing_genes=lambda wildcards: deploy_missing_genes(config, wildcards.source, wildcards.target),
        time_unit=lambda wildcards: cohort_time_unit(config, wildcards.source),  # a survival source's
        code=code_hash("deploy"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/deploy_models.py"


use rule deploy_models as deploy_survival_models with:
    output:
        predictions=LAYOUT.deploy_predictions("{source}", "{target}"),
        metrics=LAYOUT.deploy_metrics("{source}", "{target}"),
        kaplan_meier=report(
            LAYOUT.deploy_kaplan_meier("{source}", "{target}"),
            caption="../report/deploy_kaplan_meier.rst",
            category="External validation",
            subcategory="{source} -> {target}",
        ),
    log:
        f"{RESULTS}/logs/deploy_models/{{source}}/{{target}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/deploy_models/{{source}}/{{target}}.tsv"
    wildcard_constraints:
        source=cohort_pattern("survival"),


# Where the model looked: the source's final MoSARe model's patch attention over every patch of every slide of the
# target (logic: src/mosare/deploy/attention.py, pictures: src/mosare/reporting/plots/attention.py).
rule deploy_attention:
    input:
        models=LAYOUT.models_dir("{source}"),
        cohort_table=LAYOUT.cohort_table("{target}"),
        features=deploy_feature_stores,
        patches=deploy_patch_stores,
    output:
        attention=directory(LAYOUT.deploy_attention("{source}", "{target}")),
        # Browsable per slide; the report embeds a capped selection (rule report_attention_pictures, below).
        heatmaps=directory(LAYOUT.deploy_attention_heatmaps("{source}", "{target}")),
        montages=directory(LAYOUT.deploy_attention_montages("{source}", "{target}")),
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


# One heatmap and one montage per slide of the target would put 2,000 pictures of a 1,000-slide cohort into the
# one-file HTML report. It gets reduced copies for at most report.max_slide_pictures slides, as for slide QC: the
# slides of patients the model got wrong first, then a spread of the others (logic: src/mosare/reporting/attention_report.py).
rule report_attention_pictures:
    input:
        heatmaps=LAYOUT.deploy_attention_heatmaps("{source}", "{target}"),
        montages=LAYOUT.deploy_attention_montages("{source}", "{target}"),
        predictions=LAYOUT.deploy_predictions("{source}", "{target}"),
        cohort_table=LAYOUT.cohort_table("{target}"),
    output:
        heatmaps=report(
            directory(LAYOUT.deploy_report_pictures("{source}", "{target}", "heatmaps")),
            patterns=["{status}/{slide_id}.jpg"],
            caption="../report/attention_heatmap.rst",
            category="Where the model looked",
            subcategory="{source} -> {target}: heatmaps",
            labels={"slide": "{slide_id}", "prediction": "{status}"},
        ),
        montages=report(
            directory(LAYOUT.deploy_report_pictures("{source}", "{target}", "montages")),
            patterns=["{status}/{slide_id}.jpg"],
            caption="../report/attention_montage.rst",
            category="Where the model looked",
            subcategory="{source} -> {target}: patches",
            labels={"slide": "{slide_id}", "prediction": "{status}"},
        ),
    log:
        f"{RESULTS}/logs/report_attention_pictures/{{source}}/{{target}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/report_attention_pictures/{{source}}/{{target}}.tsv"
    params:
        max_pictures=config["report"]["max_slide_pictures"],
        model=ATTENTION_MODEL,
        code=code_hash("attention_report"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/train.yaml"
    script:
        "../scripts/report_attention_pictures.py"
