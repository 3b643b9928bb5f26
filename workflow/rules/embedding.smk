# WSI stage 2: every patch of a slide through the configured encoder into a feature store, one job per slide.
# Logic: src/mosare/encoders.py (registry, weights), src/mosare/embedding.py (DataLoader, streaming store).
# The slide file comes from the tiling rule's input function (tiling_slide_input): the patches are read from it.
# The weights are hashed once per workflow (fingerprint_encoder, src/mosare/weights_fingerprint.py); each slide's
# job checks the file it loads against that fingerprint with one stat and records its sha256. Both rules share the
# wsi env, so packaged weights (efficientnet-lite0) resolve to the same file in the fingerprint job as in the jobs.


rule fingerprint_encoder:
    output:
        fingerprint=f"{RESULTS}/encoders/{{encoder}}.json",
    log:
        f"{RESULTS}/logs/fingerprint_encoder/{{encoder}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fingerprint_encoder/{{encoder}}.tsv"
    wildcard_constraints:
        encoder=re.escape(encoder_slug()),
    params:
        encoder=encoder_weights_config,
        weights_stat=encoder_weights_stat,
        code=code_hash("embedding"),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=15,
    conda:
        "../../envs/wsi.yaml"
    script:
        "../scripts/fingerprint_encoder.py"


rule embed_slide:
    input:
        patches=f"{RESULTS}/{{cohort}}/patches/{{slide_id}}.zarr",
        slide=tiling_slide_input,
        weights_fingerprint=f"{RESULTS}/encoders/{{encoder}}.json",
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
    threads: embedding_threads
    resources:
        mem_mb=embedding_mem_mb,
        gpu=embedding_gpus,
        runtime=30,
    conda:
        "../../envs/wsi.yaml"
    script:
        "../scripts/embed_slide.py"
