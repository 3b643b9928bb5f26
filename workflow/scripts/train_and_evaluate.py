"""Snakemake wrapper: one cohort's cross-validation tables and final models from its fold and final-model jobs
(see mosare.training.stage.evaluate), then every model's training curves. Also a compared encoder's tables (rule
evaluate_compared_encoder), without final models."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.cohort.data import CohortInputs
from mosare.cohort.slide_qc_table import slides_left_out
from mosare.core.logs import log_to_file
from mosare.reporting.plots.training import draw_model_curves
from mosare.training.stage import evaluate

with log_to_file(snakemake.log[0]):
    evaluate(
        snakemake.wildcards.cohort,
        snakemake.params.classes,
        snakemake.params.train,
        CohortInputs.from_rule(snakemake.input, snakemake.params),
        {
            (repeat, fold): path
            for (repeat, fold), path in zip(snakemake.params.folds, snakemake.input.folds, strict=True)
        },
        # A compared encoder's evaluation (rule evaluate_compared_encoder) has no final models.
        snakemake.input.get("final_models"),
        {
            **{name: path for name, path in snakemake.output.items()},
            "train_dir": snakemake.params.train_dir,
        },
        rna_top_genes=snakemake.params.rna_top_genes,
        # the slides left out, as the cohort table left them out, listed in metrics.md; none for a slide-less cohort
        left_out_slides=(
            slides_left_out(snakemake.input.slide_qc[0], exclude_flagged=snakemake.params.exclude_flagged)
            if snakemake.input.slide_qc
            else None
        ),
    )
    draw_model_curves(snakemake.params.train_dir, snakemake.params.train)
