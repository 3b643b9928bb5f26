# WSI stage 2: every patch of every slide through the configured encoder into one feature store per slide.
# Logic: src/mosare/features/encoder_specs.py (registry: dims, weights, job resources), src/mosare/features/encoders.py (models),
# src/mosare/features/embedding.py (decode workers, streaming stores), src/mosare/features/embedding_chunks.py (which slides share a job).
# One job embeds a chunk of a cohort's slides with the model loaded once (a rule per chunk and encoder, generated below:
# Snakemake rules cannot have a variable number of outputs); changing or adding a slide reruns its chunk only. Each
# encoder of compare_encoders gets its own chunk rules (named with _<encoder> after the chunk) on the shared patches.
# The weights are hashed once per workflow (fingerprint_encoder, src/mosare/features/weights_fingerprint.py); each job checks
# the file it loads against that fingerprint with one stat and records its sha256. Both rules share the wsi env, so
# packaged weights (efficientnet-lite0) resolve to the same file in the fingerprint job as in the jobs.


rule fingerprint_encoder:
    output:
        fingerprint=f"{RESULTS}/encoders/{{encoder}}.json",
    log:
        f"{RESULTS}/logs/fingerprint_encoder/{{encoder}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fingerprint_encoder/{{encoder}}.tsv"
    wildcard_constraints:
        encoder="|".join(map(re.escape, ENCODER_SETTINGS)),
    params:
        encoder=encoder_weights_config,
        weights_stat=encoder_weights_stat,
        code=lambda wildcards: code_hash("embedding", encoder_plugin(wildcards.encoder)),
    threads: 1
    resources:
        mem_mb=1000,
        runtime=15,
    conda:
        "../../envs/wsi.yaml"
    script:
        "../scripts/fingerprint_encoder.py"


for _encoder, _cohort in ((encoder, cohort) for encoder in ENCODER_SETTINGS for cohort in COHORTS):
    _slide_paths = cohort_slide_paths(_cohort)
    for _chunk in cohort_embedding_chunks(_cohort):

        rule:
            name:
                chunk_rule_name("embed_slides", _cohort, _chunk, _encoder)
            input:
                patches=[f"{RESULTS}/{_cohort}/patches/{slide_id}.zarr" for slide_id in _chunk.slide_ids],
                slides=[_slide_paths[slide_id] for slide_id in _chunk.slide_ids],
                weights_fingerprint=f"{RESULTS}/encoders/{_encoder}.json",
            output:
                features=[directory(f"{feature_dir(_cohort, _encoder)}/{slide_id}.zarr") for slide_id in _chunk.slide_ids],
            log:
                chunk=embedding_chunk_log(_cohort, _encoder, _chunk),
                slides=[embedding_log(_encoder).format(cohort=_cohort, slide_id=slide_id) for slide_id in _chunk.slide_ids],
            benchmark:
                embedding_benchmark(_cohort, _encoder, _chunk)
            params:
                encoder=embedding_settings(_encoder),
                code=code_hash("embedding", encoder_plugin(_encoder)),
            priority: SCHEDULING_PRIORITY["embed_slides"]
            threads: embedding_spec(_encoder).threads
            resources:
                **embedding_resources(len(_chunk.slide_ids), _encoder),
            group:
                "per_slide"
            conda:
                "../../envs/wsi.yaml"
            script:
                "../scripts/embed_slide.py"
