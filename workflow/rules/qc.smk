# Slide QC per cohort: the tiling jobs' quality metrics (patch stores' qc attrs) in one table, with outlier flags and the
# status and reason of slides excluded at tiling or embedding (slides.on_error: exclude).
# Logic: src/mosare/slides/qc_metrics.py (metrics, computed by tile_slide), src/mosare/cohort/slide_qc_table.py (table and flags),
# src/mosare/reporting/plots/slide_qc.py (contact sheets, overview), src/mosare/reporting/slide_qc_report.py (pictures in the report).


rule slide_qc:
    input:
        stores=lambda wildcards: tiled_slides(wildcards.cohort),
        # For the slides excluded at embedding (slides.on_error: exclude), listed with their reason.
        features=lambda wildcards: slide_feature_stores(wildcards.cohort),
    output:
        table=LAYOUT.slide_qc("{cohort}"),
    log:
        f"{RESULTS}/logs/slide_qc/{{cohort}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/slide_qc/{{cohort}}.tsv"
    params:
        qc=config["qc"],
        min_patches=slide_qc_min_patches(config),
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


# Per-slide pictures stay plain outputs under results/{cohort}/qc/: embedding all of them made the demo's report
# 58 MB. The report gets reduced copies for flagged slides first, then a spread of the others, report.max_slide_pictures
# slides in all.
rule report_slide_pictures:
    input:
        table=LAYOUT.slide_qc("{cohort}"),
        tissue=lambda wildcards: tissue_qc_pictures(wildcards.cohort),
        gmm=lambda wildcards: gmm_qc_pictures(wildcards.cohort),
    output:
        tissue=report(
            directory(LAYOUT.report_slide_pictures("{cohort}", "tissue")),
            patterns=["{status}/{slide_id}.jpg"],
            caption="../report/tissue_qc.rst",
            category="Tissue QC",
            subcategory="{cohort}",
            labels={"slide": "{slide_id}", "QC": "{status}"},
        ),
        gmm=report(
            directory(LAYOUT.report_slide_pictures("{cohort}", "gmm")),
            patterns=["{status}/{slide_id}.jpg"],
            caption="../report/gmm_qc.rst",
            category="GMM QC",
            subcategory="{cohort}",
            labels={"slide": "{slide_id}", "QC": "{status}"},
        ),
    log:
        f"{RESULTS}/logs/report_slide_pictures/{{cohort}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/report_slide_pictures/{{cohort}}.tsv"
    params:
        max_pictures=config["report"]["max_slide_pictures"],
        # For the captions, which describe how the pictures were made.
        tiling=config["tiling"],
        gmm=config["gmm"],
        encoder=encoder_slug(),
        code=code_hash("slide_qc"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/wsi.yaml"
    script:
        "../scripts/report_slide_pictures.py"
