"""Snakemake wrapper: the source's final model's patch attention over every slide of the target (see mosare.deploy.attention)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

# The drawing processes are spawned, and a spawned process re-runs this file as __mp_main__: only the job itself
# runs the body (the drawing processes have no `snakemake` object, and need not import torch).
if __name__ == "__main__":
    from pathlib import Path

    from mosare.core.logs import log_to_file
    from mosare.deploy.attention import write_cohort_attention
    from mosare.reporting.plots.attention import draw_cohort_attention

    with log_to_file(snakemake.log[0]):
        slides = write_cohort_attention(
            snakemake.input.models,
            snakemake.input.cohort_table,
            snakemake.params.features_dir,
            snakemake.params.patches_dir,
            {"attention": snakemake.output.attention},
            snakemake.params.classes,
            snakemake.params.model,
        )
        draw_cohort_attention(
            slides,
            Path(snakemake.params.patches_dir),
            Path(snakemake.output.heatmaps),
            Path(snakemake.output.montages),
            workers=snakemake.threads,
        )
