# WSI local representation: one C-component diagonal Gaussian mixture per slide over its patch features.
# Logic: src/mosare/features/slide_gmm.py (the stage), src/mosare/features/gmm.py (estimator: EM, padding, BIC),
# src/mosare/features/gmm_store.py (the store), src/mosare/reporting/plots/gmm.py (QC). The slide file comes from the sample sheet,
# only for the QC thumbnail.
# One job fits a chunk of slides, the same chunks as the embedding jobs (mosare.features.embedding_chunks), so torch and the
# rest are imported once per chunk rather than once per slide (a rule per chunk, generated below, as in
# embedding.smk); changing or adding a slide refits its chunk only.


for _encoder, _cohort in ((encoder, cohort) for encoder in ENCODER_SETTINGS for cohort in COHORTS):
    _slide_paths = cohort_slide_paths(_cohort)
    for _chunk in cohort_embedding_chunks(_cohort):

        rule:
            name:
                chunk_rule_name("fit_slide_gmms", _cohort, _chunk, _encoder)
            input:
                features=[LAYOUT.feature_store(_cohort, _encoder, slide_id) for slide_id in _chunk.slide_ids],
                patches=[LAYOUT.patch_store(_cohort, slide_id) for slide_id in _chunk.slide_ids],
                slides=[_slide_paths[slide_id] for slide_id in _chunk.slide_ids],
            output:
                gmm=[directory(LAYOUT.gmm_store(_cohort, _encoder, slide_id)) for slide_id in _chunk.slide_ids],
                qc=[LAYOUT.gmm_qc(_cohort, _encoder, slide_id) for slide_id in _chunk.slide_ids],
            log:
                chunk=f"{RESULTS}/logs/fit_slide_gmms/{_cohort}/{_encoder}/chunk{_chunk.index}.log",
                slides=[gmm_log(_encoder).format(cohort=_cohort, slide_id=slide_id) for slide_id in _chunk.slide_ids],
            benchmark:
                f"{RESULTS}/benchmarks/fit_slide_gmms/{_cohort}/{_encoder}/chunk{_chunk.index}.tsv"
            params:
                slide_ids=list(_chunk.slide_ids),
                gmm=config["gmm"],
                code=code_hash("gmm"),
            priority: SCHEDULING_PRIORITY["fit_slide_gmms"]
            threads: 1
            resources:
                mem_mb=4000,
                runtime=10 + 2 * len(_chunk.slide_ids),
            group:
                "per_slide"
            conda:
                "../../envs/features.yaml"
            script:
                "../scripts/fit_slide_gmm.py"
