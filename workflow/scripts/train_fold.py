"""Snakemake wrapper: train and test every model and scenario of one fold of one repeat (see mosare.training.stage)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.cohort.data import CohortInputs
from mosare.core.logs import log_to_file
from mosare.training.stage import train_folds

# The guard keeps the training's worker processes (spawned, they re-import this file) from running it again.
if __name__ == "__main__":
    with log_to_file(snakemake.log[0]):
        key = (int(snakemake.wildcards.repeat), int(snakemake.wildcards.fold))
        train_folds(
            snakemake.wildcards.cohort,
            snakemake.params.classes,
            snakemake.params.train,
            CohortInputs.from_rule(snakemake.input, snakemake.params),
            {key: snakemake.output[0]},
            snakemake.params.train_dir,
            snakemake.threads,
            rna_top_genes=snakemake.params.rna_top_genes,
        )
