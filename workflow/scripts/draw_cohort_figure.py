"""Snakemake wrapper: one registered cohort-level figure of one cohort (see mosare.reporting.cohort_figures)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.core.logs import log_to_file
from mosare.reporting.cohort_figures import CohortResults, draw_cohort_figure

with log_to_file(snakemake.log[0]):
    results = CohortResults.read(
        snakemake.wildcards.cohort,
        snakemake.params.classes,
        cohort_table=snakemake.input.cohort_table,
        metrics=snakemake.input.metrics,
        comparisons=snakemake.input.comparisons,
        predictions=snakemake.input.predictions,
        train_dir=snakemake.params.train_dir,
        time_unit=snakemake.params.time_unit,
    )
    draw_cohort_figure(snakemake.wildcards.figure, results, snakemake.output[0])
