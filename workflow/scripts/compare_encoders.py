"""Snakemake wrapper: every encoder of the run compared on one cohort, with its embedding cost, its table, summary and
figure (see mosare.evaluation.encoder_comparison)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)
import pandas as pd

from mosare.core.logs import log_to_file
from mosare.evaluation.encoder_comparison import (
    embedding_cost,
    encoder_comparison_table,
    survival_encoder_comparison_table,
    write_encoder_comparison,
)
from mosare.evaluation.results import evaluation_resamples
from mosare.features.feature_store import FeatureStore
from mosare.reporting.plots.encoders import plot_encoder_comparison

with log_to_file(snakemake.log[0]):
    encoders = snakemake.params.encoders
    predictions = {
        encoder: pd.read_csv(path, sep="\t")
        for encoder, path in zip(encoders, snakemake.input.predictions, strict=True)
    }
    stores_per_encoder = len(snakemake.input.features) // len(encoders)
    costs = {}
    for index, encoder in enumerate(encoders):
        stores = snakemake.input.features[index * stores_per_encoder : (index + 1) * stores_per_encoder]
        patches = sum(FeatureStore.count(store) for store in stores)
        costs[encoder] = embedding_cost(snakemake.params.benchmarks[encoder], patches)
    n_resamples, seed = evaluation_resamples(snakemake.params.train)
    if snakemake.params.classes:
        table = encoder_comparison_table(predictions, snakemake.params.classes, encoders[0], costs, n_resamples, seed)
    else:  # a survival cohort: by Harrell's C
        table = survival_encoder_comparison_table(predictions, encoders[0], costs, n_resamples, seed)
    write_encoder_comparison(table, snakemake.output.table, snakemake.output.summary)
    plot_encoder_comparison(table, snakemake.output.figure)
