"""The registry of trainable models: one ``ModelSpec`` per name, importable without torch.

Planning, the evaluation plan and config validation (``train.models``) read it; ``mosare.model.factory.build_model``
imports the builder only when a model is built. Every model, the built-ins included, is a plugin
(``mosare.core.plugins``): a module in ``mosare/model/model_plugins/`` calling ``register_model(ModelSpec(...))``.
docs/extending.md walks through adding one.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import Any

from mosare.core.modalities import MODALITIES
from mosare.core.plugins import Registry


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


MODELS: Registry[ModelSpec] = Registry("model", "mosare.model.model_plugins", lambda spec: spec.name)
register_model = MODELS.register


def model_specs() -> dict[str, ModelSpec]:
    """Every registered model by name, in registration order."""
    return MODELS.entries()


def single_modality_models() -> dict[str, int]:
    """Model name -> index of the only modality it reads, for the models that read one."""
    return {name: spec.required_index for name, spec in model_specs().items() if spec.required_index is not None}
