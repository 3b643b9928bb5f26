"""Snakemake wrapper: one cohort's cross-validation tables and final models from its fold and final-model jobs
(see mosare.training.stage.evaluate), then every model's training curves."""

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
        snakemake.input.final_models,
        {
            "splits": snakemake.output.splits,
            "metrics": snakemake.output.metrics,
            "summary": snakemake.output.summary,
            "comparisons": snakemake.output.comparisons,
            "train_dir": snakemake.params.train_dir,
            "models": snakemake.output.models,
            "predictions": snakemake.output.predictions,
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
