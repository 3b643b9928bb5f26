# WSI stage 1: tissue detection and the patch grid at the exact target µm/px, one job per slide.
# Logic: src/mosare/slides/ (tiling.py the stage, tissue.py and the detectors in tissue_plugins/, patch_grid.py,
# patch_geometry.py, patch_store.py, reader.py); the script draws the QC picture with src/mosare/reporting/plots/tissue.py.


rule tile_slide:
    input:
        slide=tiling_slide_input,
    output:
        patches=directory(f"{RESULTS}/{{cohort}}/patches/{{slide_id}}.zarr"),
        # Browsable per slide; the report embeds a capped selection (rule report_slide_pictures, qc.smk).
        qc=f"{RESULTS}/{{cohort}}/qc/tissue/{{slide_id}}.png",
    log:
        f"{RESULTS}/logs/tile_slide/{{cohort}}/{{slide_id}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/tile_slide/{{cohort}}/{{slide_id}}.tsv"
    params:
        tiling=config["tiling"],
        mpp_override=tiling_mpp_override,
        code=code_hash("tiling"),
    priority: SCHEDULING_PRIORITY["tile_slide"]
    threads: 1
    resources:
        mem_mb=2000,
        # Stated, not Snakemake's default of twice the input's size: the job reads the slide where it lies and writes a
        # small store, and the default costs a stat of every slide per job while planning (docs/performance.md).
        disk_mb=1000,
        runtime=20,
    conda:
        "../../envs/wsi.yaml"
    script:
        "../scripts/tile_slide.py"
