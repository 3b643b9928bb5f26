# Per-patient modalities besides the slides: report embeddings (text.zarr), RNA gene selection (rna.zarr), and the
# cohort table that records, per patient, which modalities really exist (cohort.tsv).


rule encode_reports:
    input:
        samples=modality_sample_sheet,
        reports=report_files,
    output:
        directory(LAYOUT.text_store("{cohort}")),
    log:
        f"{RESULTS}/logs/encode_reports/{{cohort}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/encode_reports/{{cohort}}.tsv"
    params:
        classes=cohort_classes,
        task=cohort_task_of,
        leak_patterns=configured_leak_patterns,
        text=config["text"],
        gmm=config["gmm"],
        code=code_hash("text"),
    priority: SCHEDULING_PRIORITY["encode_reports"]
    # One thread: with two, on a 2-core machine it waited for both cores to be free at once, which happened only when
    # every slide job was done, so the training job waited 37 s more for it (the demo). A cohort's reports are
    # minutes at most, and the text store is bit-identical at 1 and 2 threads.
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/features.yaml"
    script:
        "../scripts/encode_reports.py"


rule select_rna_genes:
    input:
        unpack(rna_matrix_input),
        samples=modality_sample_sheet,
    output:
        directory(LAYOUT.rna_store("{cohort}")),
    log:
        f"{RESULTS}/logs/select_rna_genes/{{cohort}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/select_rna_genes/{{cohort}}.tsv"
    params:
        classes=cohort_classes,
        task=cohort_task_of,
        rna=config["rna"],
        code=code_hash("rna"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/features.yaml"
    script:
        "../scripts/select_rna_genes.py"


rule assemble_cohort:
    input:
        samples=modality_sample_sheet,
        features=cohort_feature_stores,
        text=LAYOUT.text_store("{cohort}"),
        rna=LAYOUT.rna_store("{cohort}"),
        slide_qc=excluded_slides_table,
    output:
        table=LAYOUT.cohort_table("{cohort}"),
        qc=report(
            LAYOUT.modality_qc("{cohort}"),
            caption="../report/modalities.rst",
            category="Cohort",
            subcategory="{cohort}",
        ),
    log:
        f"{RESULTS}/logs/assemble_cohort/{{cohort}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/assemble_cohort/{{cohort}}.tsv"
    params:
        classes=cohort_classes,
        task=cohort_task_of,
        exclude_flagged=config["qc"]["exclude_flagged"],
        code=code_hash("cohort"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../../envs/features.yaml"
    script:
        "../scripts/assemble_cohort.py"
