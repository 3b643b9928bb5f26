"""MoSARe fusion model, its ablations and baselines behind one factory, `build_model`.

Batch format (dict of tensors, B patients): `wsi_patches` (B, P, Dw) with `wsi_patch_mask` (B, P) bool (True = real
patch), `wsi_local` (B, C, Dw), `rna` (B, G), `text_global` (B, Dt), `text_local` (B, C, Dt), `present` (B, 3) bool
in the order [wsi, rna, text], `label` (B,) long. `model(batch)` returns a dict with at least `logits` (B, K);
`model.compute_loss(batch, outputs, epoch)` returns (total loss, {term: float}).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from mosare.model.common import ModelDims, ModelHParams
from mosare.model.specs import MODELS


def build_model(
    name: str, dims: ModelDims, n_classes: int, hparams: Mapping[str, Any], survival: Any = None
) -> nn.Module:
    """The model `name` (a registered ``ModelSpec``); `hparams` is the config's train section, unknown keys ignored.

    ``survival`` (a ``mosare.model.survival.SurvivalSetup``, survival cohorts only): the model predicts with a
    ``SurvivalHead`` in place of its classifier (``n_classes`` is then ignored), and its builder gets
    ``survival=...``.
    """
    if survival is None and n_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
    spec = MODELS.get(name)
    extra = {} if survival is None else {"survival": survival}
    try:
        return spec.load_builder()(dims, n_classes, ModelHParams.from_mapping(hparams), **spec.options, **extra)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from error


__all__ = ["ModelDims", "ModelHParams", "build_model"]
