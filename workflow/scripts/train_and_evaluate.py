"""Snakemake wrapper: cross-validate MoSARe and its baselines on one cohort (see mosare.training.cross_validation)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.cohort.data import CohortInputs
from mosare.core.logs import log_to_file
from mosare.reporting.plots.training import draw_model_curves
from mosare.training.stage import train_and_evaluate

# The guard keeps the training's worker processes (spawned, they re-import this file) from running it again.
if __name__ == "__main__":
    with log_to_file(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
        train_and_evaluate(
            snakemake.wildcards.cohort,  # noqa: F821
            snakemake.params.classes,  # noqa: F821
            snakemake.params.train,  # noqa: F821
            CohortInputs.from_rule(snakemake.input, snakemake.params),  # noqa: F821
            {
                "splits": snakemake.output.splits,  # noqa: F821
                "metrics": snakemake.output.metrics,  # noqa: F821
                "summary": snakemake.output.summary,  # noqa: F821
                "comparisons": snakemake.output.comparisons,  # noqa: F821
                "train_dir": snakemake.output.train_dir,  # noqa: F821
                "models": snakemake.output.models,  # noqa: F821
                "predictions": snakemake.output.predictions,  # noqa: F821
            },
            snakemake.threads,  # noqa: F821
            rna_top_genes=snakemake.params.rna_top_genes,  # noqa: F821
            # counted in metrics.md; the input is there only when qc.exclude_flagged is on
            slide_qc_table=snakemake.input.slide_qc[0] if snakemake.params.exclude_flagged else None,  # noqa: F821
        )
        draw_model_curves(snakemake.output.train_dir, snakemake.params.train)  # noqa: F821
