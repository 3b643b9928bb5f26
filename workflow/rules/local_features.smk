# WSI local representation: one C-component diagonal Gaussian mixture per slide over its patch features.
# Logic: src/mosare/slide_gmm.py (the stage), src/mosare/gmm.py (estimator: EM, padding, BIC),
# src/mosare/gmm_store.py (the store), src/mosare/plots/gmm.py (QC). The slide file comes from the
# tiling rule's input function (tiling_slide_input), only for the QC thumbnail.


rule fit_slide_gmm:
    input:
        features=LAYOUT.feature_store("{cohort}", "{encoder}", "{slide_id}"),
        patches=LAYOUT.patch_store("{cohort}", "{slide_id}"),
        slide=tiling_slide_input,
    output:
        gmm=directory(LAYOUT.gmm_store("{cohort}", "{encoder}", "{slide_id}")),
        qc=report(
            LAYOUT.gmm_qc("{cohort}", "{encoder}", "{slide_id}"),
            caption="../report/gmm_qc.rst",
            category="GMM QC",
            subcategory="{cohort}",
        ),
    log:
        f"{RESULTS}/logs/fit_slide_gmm/{{cohort}}/{{encoder}}/{{slide_id}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fit_slide_gmm/{{cohort}}/{{encoder}}/{{slide_id}}.tsv"
    params:
        gmm=config["gmm"],
        code=code_hash("gmm"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/features.yaml"
    script:
        "../scripts/fit_slide_gmm.py"
