"""Snakemake wrapper: apply a cohort's saved final models to another cohort (see mosare.deploy.apply)."""

from pathlib import Path

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.cohort.data import CohortInputs
from mosare.core.logs import log_to_file
from mosare.deploy.apply import deploy_cohort
from mosare.reporting.plots.survival import plot_deployed_kaplan_meier
from mosare.reporting.plots.training import plot_external_roc

with log_to_file(snakemake.log[0]):
    predictions = deploy_cohort(
        snakemake.input.models,
        CohortInputs.from_rule(snakemake.input, snakemake.params),
        snakemake.params.classes,
        {
            "predictions": snakemake.output.predictions,
            "metrics": snakemake.output.metrics,
        },
        missing_genes=snakemake.params.missing_genes,
    )
    if "kaplan_meier" in snakemake.output.keys():  # a survival source's models
        plot_deployed_kaplan_meier(
            predictions,
            Path(snakemake.output.kaplan_meier),
            time_unit=snakemake.params.time_unit,
            title=snakemake.wildcards.target,
        )
    else:
        plot_external_roc(predictions, snakemake.params.classes, Path(snakemake.output.roc))
