# WSI stage 2: every patch of a slide through the configured encoder into a feature store, one job per slide.
# Logic: src/mosare/encoders.py (registry, weights), src/mosare/embedding.py (DataLoader, streaming store).
# The slide file comes from the tiling rule's input function (tiling_slide_input): the patches are read from it.
import re


def embedding_gpus(wildcards) -> int:
    """GPUs an embedding job asks for: 0 for efficientnet-lite0 (the CPU demo default), 1 for the ViT encoders.

    SLURM profiles turn `gpu` into `--gpus`; locally it only limits how many GPU jobs run at once when
    `--resources gpu=N` is given. Jobs use CUDA whenever it is visible, whatever this says.
    """
    return 0 if config["encoder"]["name"] == "efficientnet-lite0" else 1


def embedding_mem_mb(wildcards) -> int:
    """Memory for the model (fp32 weights on the host while loading), DataLoader workers and one store chunk."""
    return {"efficientnet-lite0": 3000, "uni": 8000, "uni2-h": 12000}.get(config["encoder"]["name"], 8000)


def slide_feature_stores(cohort: str) -> list[str]:
    """Every slide's feature store of a cohort, for the configured encoder."""
    return [f"{RESULTS}/{cohort}/features/{encoder_slug()}/{slide_id}.zarr" for slide_id in slide_ids(cohort)]


rule embed_slide:
    input:
        patches=f"{RESULTS}/{{cohort}}/patches/{{slide_id}}.zarr",
        slide=tiling_slide_input,
    output:
        features=directory(f"{RESULTS}/{{cohort}}/features/{{encoder}}/{{slide_id}}.zarr"),
    log:
        f"{RESULTS}/logs/embed_slide/{{cohort}}/{{encoder}}/{{slide_id}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embed_slide/{{cohort}}/{{encoder}}/{{slide_id}}.tsv"
    wildcard_constraints:
        # Only the configured encoder's stores can be made (its name is in params, not in the path).
        encoder=re.escape(encoder_slug()),
    params:
        encoder=config["encoder"],
        code=code_hash("embedding"),
    threads: 4
    resources:
        mem_mb=embedding_mem_mb,
        gpu=embedding_gpus,
        runtime=30,
    conda:
        "../../envs/wsi.yaml"
    script:
        "../scripts/embed_slide.py"
