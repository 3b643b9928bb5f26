# WSI stage 1: tissue detection and the patch grid at the exact target µm/px, one job per slide.
# Logic: src/mosare/tiling.py (grid, tissue), src/mosare/slides.py (reader), src/mosare/plots/tissue.py (QC).


def tiling_row(wildcards) -> pd.Series:
    """The sample-sheet row of the slide being tiled."""
    if wildcards.slide_id not in slide_ids(wildcards.cohort):
        raise ValueError(
            f"slide {wildcards.slide_id!r} is not in cohort {wildcards.cohort!r}'s sample sheet "
            f"({sample_sheet_path(wildcards.cohort)}); request one of its slide_id values"
        )
    return slide_row(wildcards.cohort, wildcards.slide_id)


def tiling_slide_input(wildcards) -> str:
    """The slide file of this row of the cohort's sample sheet (for demo cohorts, demo_slide's output)."""
    return str(tiling_row(wildcards).slide_path)


def tiling_mpp_override(wildcards) -> float | None:
    """The sample sheet's level-0 µm/px for this slide, used only when the file lacks it (None when blank)."""
    mpp = tiling_row(wildcards).mpp
    return None if pd.isna(mpp) else float(mpp)


def tiled_slides(cohort: str) -> list[str]:
    """Every patch store of a cohort (one per slide in its sample sheet)."""
    return [f"{RESULTS}/{cohort}/patches/{slide_id}.zarr" for slide_id in slide_ids(cohort)]


def tissue_qc_pictures(cohort: str) -> list[str]:
    """Every tissue QC picture of a cohort."""
    return [f"{RESULTS}/{cohort}/qc/tissue/{slide_id}.png" for slide_id in slide_ids(cohort)]


rule tile_slide:
    input:
        slide=tiling_slide_input,
    output:
        patches=directory(f"{RESULTS}/{{cohort}}/patches/{{slide_id}}.zarr"),
        qc=report(
            f"{RESULTS}/{{cohort}}/qc/tissue/{{slide_id}}.png",
            caption="../report/tissue_qc.rst",
            category="Tissue QC",
            subcategory="{cohort}",
        ),
    log:
        f"{RESULTS}/logs/tile_slide/{{cohort}}/{{slide_id}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/tile_slide/{{cohort}}/{{slide_id}}.tsv"
    params:
        tiling=config["tiling"],
        mpp_override=tiling_mpp_override,
        code=code_hash("tiling"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../../envs/wsi.yaml"
    script:
        "../scripts/tile_slide.py"
