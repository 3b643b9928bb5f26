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


rule slide_qc_pictures:
    input:
        table=LAYOUT.slide_qc("{cohort}"),
        pictures=lambda wildcards: tissue_qc_pictures(wildcards.cohort),
    output:
        overview=report(
            LAYOUT.slide_qc_overview("{cohort}"),
            caption="../report/slide_qc_overview.rst",
            category="Slide QC",
            subcategory="{cohort}",
        ),
        sheets=report(
            directory(LAYOUT.contact_sheets("{cohort}")),
            patterns=["{page}.png"],
            caption="../report/contact_sheet.rst",
            category="Slide QC",
            subcategory="{cohort}",
        ),
    log:
        f"{RESULTS}/logs/slide_qc_pictures/{{cohort}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/slide_qc_pictures/{{cohort}}.tsv"
    params:
        code=code_hash("slide_qc"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../../envs/wsi.yaml"
    script:
        "../scripts/draw_slide_qc.py"
