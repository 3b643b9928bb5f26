# Slide QC per cohort: the tiling jobs' quality metrics (patch stores' qc attrs) in one table, with outlier flags.
# Logic: src/mosare/slide_qc.py (metrics, computed by tile_slide), src/mosare/slide_qc_table.py (table and flags).


rule slide_qc:
    input:
        stores=lambda wildcards: tiled_slides(wildcards.cohort),
    output:
        table=LAYOUT.slide_qc("{cohort}"),
    log:
        f"{RESULTS}/logs/slide_qc/{{cohort}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/slide_qc/{{cohort}}.tsv"
    params:
        qc=config["qc"],
        code=code_hash("slide_qc"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/wsi.yaml"
    script:
        "../scripts/assemble_slide_qc.py"
