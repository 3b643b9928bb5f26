"""Snakemake wrapper: apply a cohort's saved final models to another cohort (see mosare.deploy.apply)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from pathlib import Path

from mosare.cohort.data import CohortInputs
from mosare.core.logs import log_to_file
from mosare.deploy.apply import deploy_cohort
from mosare.reporting.plots.training import plot_external_roc

with log_to_file(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    predictions = deploy_cohort(
        snakemake.input.models,  # noqa: F821
        CohortInputs.from_rule(snakemake.input, snakemake.params),  # noqa: F821
        snakemake.params.classes,  # noqa: F821
        {
            "predictions": snakemake.output.predictions,  # noqa: F821
            "metrics": snakemake.output.metrics,  # noqa: F821
        },
        missing_genes=snakemake.params.missing_genes,  # noqa: F821
    )
    plot_external_roc(predictions, snakemake.params.classes, Path(snakemake.output.roc))  # noqa: F821
