"""MoSARe fusion model, its ablations and baselines behind one factory, `build_model`.

Batch format (dict of tensors, B patients): `wsi_patches` (B, P, Dw) with `wsi_patch_mask` (B, P) bool (True = real
patch), `wsi_local` (B, C, Dw), `rna` (B, G), `text_global` (B, Dt), `text_local` (B, C, Dt), `present` (B, 3) bool
in the order [wsi, rna, text], `label` (B,) long. `model(batch)` returns a dict with at least `logits` (B, K);
`model.compute_loss(batch, outputs, epoch)` returns (total loss, {term: float}).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from torch import nn

from mosare.model.baselines import ABMILBaseline, LateFusionBaseline, ReportBaseline, RNABaseline
from mosare.model.common import MODALITIES, ModelDims, ModelHParams
from mosare.model.mosare import MoSARe

_BUILDERS: dict[str, Callable[[ModelDims, int, ModelHParams], nn.Module]] = {
    "mosare": MoSARe,
    "mosare_no_mcl": partial(MoSARe, use_mcl=False),
    "mosare_no_reconstruction": partial(MoSARe, reconstruct=False),
    "mosare_no_moe": partial(MoSARe, use_moe=False),
    "abmil": ABMILBaseline,
    "rna_mlp": RNABaseline,
    "report_mlp": ReportBaseline,
    "late_fusion": LateFusionBaseline,
}
MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def build_model(name: str, dims: ModelDims, n_classes: int, hparams: Mapping[str, Any]) -> nn.Module:
    """The model `name` (one of MODEL_NAMES); `hparams` is the config's train section, unknown keys ignored."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    if n_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
    return _BUILDERS[name](dims, n_classes, ModelHParams.from_mapping(hparams))


__all__ = ["MODALITIES", "MODEL_NAMES", "ModelDims", "ModelHParams", "build_model"]
