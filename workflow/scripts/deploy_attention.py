"""Snakemake wrapper: the source's final model's patch attention over every slide of the target (see mosare.deploy.attention)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

# The drawing processes are spawned, and a spawned process re-runs this file as __mp_main__: only the job itself
# runs the body (the drawing processes have no `snakemake` object, and need not import torch).
if __name__ == "__main__":
    from pathlib import Path

    from mosare.core.logs import log_to_file
    from mosare.deploy.attention import write_cohort_attention
    from mosare.reporting.plots.attention import draw_cohort_attention

    with log_to_file(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
        slides = write_cohort_attention(
            snakemake.input.models,  # noqa: F821
            snakemake.input.cohort_table,  # noqa: F821
            snakemake.params.features_dir,  # noqa: F821
            snakemake.params.patches_dir,  # noqa: F821
            {"attention": snakemake.output.attention},  # noqa: F821
            snakemake.params.classes,  # noqa: F821
            snakemake.params.model,  # noqa: F821
        )
        draw_cohort_attention(
            slides,
            Path(snakemake.params.patches_dir),  # noqa: F821
            Path(snakemake.output.heatmaps),  # noqa: F821
            Path(snakemake.output.montages),  # noqa: F821
            workers=snakemake.threads,  # noqa: F821
        )
