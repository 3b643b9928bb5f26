"""Snakemake wrapper: one registered cohort-level figure of one cohort (see mosare.reporting.cohort_figures)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.reporting.cohort_figures import CohortResults, draw_cohort_figure
from mosare.core.logs import log_to_file

with log_to_file(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    results = CohortResults.read(
        snakemake.wildcards.cohort,  # noqa: F821
        snakemake.params.classes,  # noqa: F821
        cohort_table=snakemake.input.cohort_table,  # noqa: F821
        metrics=snakemake.input.metrics,  # noqa: F821
        comparisons=snakemake.input.comparisons,  # noqa: F821
        predictions=snakemake.input.predictions,  # noqa: F821
        train_dir=snakemake.input.train_dir,  # noqa: F821
    )
    draw_cohort_figure(snakemake.wildcards.figure, results, snakemake.output[0])  # noqa: F821
