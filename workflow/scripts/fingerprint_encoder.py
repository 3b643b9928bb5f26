"""Snakemake wrapper: hash the configured encoder's weights file once (see mosare.features.weights_fingerprint)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.core.logs import log_to_file
from mosare.features.weights_fingerprint import fingerprint_encoder_weights

with log_to_file(snakemake.log[0]):
    fingerprint_encoder_weights(
        snakemake.params.encoder,
        snakemake.output.fingerprint,
    )
