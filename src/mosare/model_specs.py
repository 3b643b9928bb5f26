"""The registry of trainable models: one ``ModelSpec`` per name, importable without torch.

Planning, the evaluation plan and the config schema read it; ``mosare.model.build_model`` imports the builder only
when a model is built. Adding a model or baseline is one ``register_model`` call next to its class (see
docs/architecture.md, "How to extend"); the schema's ``train.models`` enum is tested against this registry.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import Any

from mosare.modalities import MODALITIES


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model name, where its builder lives (``"module:attribute"``, called as ``builder(dims, n_classes,
    hparams, **options)``), its constructor options, and the one modality it reads (None: it fuses all there are)."""

    name: str
    builder: str
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    required_modality: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.required_modality is not None and self.required_modality not in MODALITIES:
            raise ValueError(f"model {self.name!r}: required_modality must be one of {MODALITIES}")

    @property
    def required_index(self) -> int | None:
        """Index of the required modality in MODALITIES order, or None."""
        return None if self.required_modality is None else MODALITIES.index(self.required_modality)

    def load_builder(self) -> Any:
        module, attribute = self.builder.split(":")
        return getattr(importlib.import_module(module), attribute)


MODEL_SPECS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the registry (a name registered twice is an error: two models would share outputs)."""
    if spec.name in MODEL_SPECS:
        raise ValueError(f"model {spec.name!r} is registered twice")
    MODEL_SPECS[spec.name] = spec
    return spec


for _spec in (
    ModelSpec("mosare", "mosare.model.mosare:MoSARe", description="the full MoSARe model"),
    ModelSpec("mosare_no_mcl", "mosare.model.mosare:MoSARe", {"use_mcl": False},
              description="ablation: no multi-prototype contrastive loss"),
    ModelSpec("mosare_no_reconstruction", "mosare.model.mosare:MoSARe", {"reconstruct": False},
              description="ablation: missing modalities zero-filled, no reconstruction"),
    ModelSpec("mosare_no_moe", "mosare.model.mosare:MoSARe", {"use_moe": False},
              description="ablation: one dense expert instead of each mixture of experts"),
    ModelSpec("abmil", "mosare.model.baselines:SingleModalityBaseline", {"modality": "wsi"}, "wsi",
              "baseline: gated attention MIL over the slides' patches"),
    ModelSpec("rna_mlp", "mosare.model.baselines:SingleModalityBaseline", {"modality": "rna"}, "rna",
              "baseline: MLP on the RNA genes"),
    ModelSpec("report_mlp", "mosare.model.baselines:SingleModalityBaseline", {"modality": "text"}, "text",
              "baseline: MLP on the whole-report embedding"),
    ModelSpec("late_fusion", "mosare.model.baselines:LateFusionBaseline",
              description="baseline: the three global encoders concatenated, one linear classifier"),
):  # fmt: skip
    register_model(_spec)


def single_modality_models() -> dict[str, int]:
    """Model name -> index of the only modality it reads, for the models that read one."""
    return {name: spec.required_index for name, spec in MODEL_SPECS.items() if spec.required_index is not None}
