"""Snakemake wrapper: embed one chunk of slides with the configured encoder, model loaded once (see mosare.features.embedding)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.core.logs import log_to_file
from mosare.features.embedding import SlideJob, embed_slides_with_config

with log_to_file(snakemake.log.chunk):
    embed_slides_with_config(
        [
            SlideJob(patches, features, log)
            for patches, features, log in zip(
                snakemake.input.patches, snakemake.output.features, snakemake.log.slides, strict=True
            )
        ],
        snakemake.params.encoder,
        threads=snakemake.threads,
        weights_fingerprint=snakemake.input.weights_fingerprint,
        # Read from the config, not a param: no finished slide's store depends on it, so switching reruns nothing.
        on_error=snakemake.config["slides"]["on_error"],
    )
