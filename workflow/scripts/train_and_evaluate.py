"""Snakemake wrapper: cross-validate MoSARe and its baselines on one cohort (see mosare.training.cross_validation)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.cohort.data import CohortInputs
from mosare.core.logs import log_to_file
from mosare.reporting.plots.training import draw_model_curves
from mosare.training.stage import train_and_evaluate

# The guard keeps the training's worker processes (spawned, they re-import this file) from running it again.
if __name__ == "__main__":
    with log_to_file(snakemake.log[0]):
        train_and_evaluate(
            snakemake.wildcards.cohort,
            snakemake.params.classes,
            snakemake.params.train,
            CohortInputs.from_rule(snakemake.input, snakemake.params),
            {
                "splits": snakemake.output.splits,
                "metrics": snakemake.output.metrics,
                "summary": snakemake.output.summary,
                "comparisons": snakemake.output.comparisons,
                "train_dir": snakemake.output.train_dir,
                "models": snakemake.output.models,
                "predictions": snakemake.output.predictions,
            },
            snakemake.threads,
            rna_top_genes=snakemake.params.rna_top_genes,
            # counted in metrics.md; the input is there only when qc.exclude_flagged is on
            slide_qc_table=snakemake.input.slide_qc[0] if snakemake.params.exclude_flagged else None,
        )
        draw_model_curves(snakemake.output.train_dir, snakemake.params.train)
