"""Snakemake wrapper: embed one slide's patches with the configured encoder (see mosare.embedding)."""

import checkout_src  # noqa: F401 (puts this checkout's src/ first on sys.path, so mosare comes from here)

from mosare.embedding import embed_slide_with_config
from mosare.logs import log_to_file

with log_to_file(snakemake.log[0]):  # noqa: F821 (injected by Snakemake)
    embed_slide_with_config(
        snakemake.input.patches,  # noqa: F821
        snakemake.output.features,  # noqa: F821
        snakemake.params.encoder,  # noqa: F821
        threads=snakemake.threads,  # noqa: F821
        weights_fingerprint=snakemake.input.weights_fingerprint,  # noqa: F821
    )
