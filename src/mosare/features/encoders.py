"""Patch encoders: models built from their ``EncoderSpec`` (``mosare.features.encoder_specs``), in eval mode with their preprocessing.

Every encoder maps uint8 RGB patches to one feature vector each. Preprocessing is split in two so the
pipeline can move uint8 (4x smaller than float) to the device: ``resize_crop`` runs in the decode workers on
uint8 tensors (it needs only the spec, so workers start before the model is built), ``embed`` normalises on the
device and runs the model. The registered encoders are listed in ``mosare.features.encoder_specs``; ``timm:<architecture>``
is any timm model with a local checkpoint, pooled features (``num_classes=0``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import timm
import torch
from torch import nn
from torchvision.transforms import v2

from mosare.core.devices import resolve_device
from mosare.features.encoder_specs import (
    EncoderSpec,
    EncoderWeightsError,
    encoder_spec,
    encoder_weights_file,
    load_object,
    with_model_facts,
)
from mosare.features.patch_preprocessing import resize_crop_transform


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
        return resize_crop_transform(self.input_px, self.interpolation)

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

    @functools.cached_property
    def input_memory_format(self) -> torch.memory_format:
        """The layout ``embed`` gives its batches: the model's (:func:`memory_format`), found once, not per batch."""
        return memory_format(self.model)

    @torch.inference_mode()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, input_px, input_px) on the device -> float32 (B, dim) features."""
        inputs = self.normalize(images).contiguous(memory_format=self.input_memory_format)
        use_autocast = self.device.type == "cuda" and self.autocast_dtype is not None
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=use_autocast):
            features = self.model(inputs)
        return features.float()


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


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def load_weights_strictly(
    model: ModuleT, state: Mapping[str, torch.Tensor], *, name: str, path: Path, hint: str
) -> ModuleT:
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
    # Plain int attributes of timm models (and of plugin models, docs/extending.md), unknown to nn.Module's typing.
    width = getattr(model, "head_hidden_size", None) or getattr(model, "num_features", None)
    if width is None:
        raise AttributeError(f"{type(model).__name__} has no num_features (or head_hidden_size): its pooled width")
    return int(width)


def load_checkpoint(
    spec: EncoderSpec,
    architecture: ModuleT,
    path: Path,
    convert: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
) -> ModuleT:
    """``architecture`` with the weights of ``path`` loaded strictly; EncoderWeightsError naming the file otherwise.

    ``convert`` maps a checkpoint written under another library's names to the architecture's, explicitly (it raises
    ValueError for a tensor it does not know or cannot place); its result is then loaded just as strictly.
    """
    try:
        state = load_state_dict_file(path)
    except EncoderWeightsError:
        raise
    except Exception as error:
        raise EncoderWeightsError(
            f"encoder {spec.name!r}: cannot read weights file {path} ({type(error).__name__}: {error}). "
            f"{spec.weights_hint}"
        ) from error
    if convert is not None:
        try:
            state = convert(state)
        except ValueError as error:
            raise EncoderWeightsError(
                f"encoder {spec.name!r}: weights file {path} does not match the architecture: {error}. "
                f"{spec.weights_hint}"
            ) from error
    return load_weights_strictly(architecture, state, name=spec.name, path=path, hint=spec.weights_hint)


def build_timm(spec: EncoderSpec, weights: Path) -> tuple[nn.Module, EncoderSpec]:
    """Any timm architecture as a pooled feature extractor; its width and preprocessing come from timm."""
    architecture = spec.name.split(":", 1)[1]
    if architecture not in timm.list_models():
        raise ValueError(f"encoder {spec.name!r}: timm has no architecture {architecture!r} (see timm.list_models())")
    with torch.device("meta"):
        model = timm.create_model(architecture, pretrained=False, num_classes=0)
    state = load_state_dict_file(weights)
    # A classification checkpoint carries a head this feature extractor does not have.
    head = getattr(model, "pretrained_cfg", {}).get("classifier")  # every timm model has its pretrained_cfg dict
    if isinstance(head, str):
        state = {key: value for key, value in state.items() if not key.startswith(f"{head}.")}
    model = load_weights_strictly(model, state, name=spec.name, path=weights, hint=spec.weights_hint)
    config = timm.data.resolve_data_config(model=model)
    facts = dict(
        input_px=int(config["input_size"][-1]),
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        interpolation="bicubic" if config["interpolation"] == "bicubic" else "bilinear",
    )
    return model, with_model_facts(spec, **facts)


def memory_format(model: nn.Module) -> torch.memory_format:
    """Channels-last for convolutional networks: oneDNN's convolutions run them about 2x faster on the CPU in this
    layout (efficientnet-lite0, 1 thread, batch 64; features within 1e-5 of channels-first). A ViT's only
    convolution is its patch embedding, so it stays as it is, bit for bit."""
    convolutions = sum(isinstance(module, nn.Conv2d) for module in model.modules())
    return torch.channels_last if convolutions > 1 else torch.contiguous_format


def create_encoder(
    name: str, checkpoint: str | Path | None = None, device: str | torch.device | None = None
) -> Encoder:
    """The encoder ``name`` (a registered one, see ``mosare.features.encoder_specs``, or ``timm:<architecture>``) on ``device``.

    ``checkpoint`` is the local weights file (required unless the weights ship in a package); it is loaded
    strictly - every key and shape must match - and a missing or mismatched file raises
    EncoderWeightsError saying where the weights come from and which config key to set.
    """
    device = resolve_device(device)
    spec = encoder_spec(name)
    weights = encoder_weights_file(name, checkpoint)
    model, spec = load_object(spec.builder)(spec, weights)
    if spec.dim is not None and pooled_dim(model) != spec.dim:
        raise ValueError(f"encoder {name!r}: its spec says {spec.dim}-d features, the model gives {pooled_dim(model)}")
    return Encoder(
        name=spec.name,
        model=model.to(device, memory_format=memory_format(model)).eval(),
        dim=pooled_dim(model),
        input_px=spec.input_px,
        mean=spec.mean,
        std=spec.std,
        interpolation=v2.InterpolationMode(spec.interpolation),
        autocast_dtype=None if spec.cuda_dtype == "float32" else getattr(torch, spec.cuda_dtype),
        weights_path=str(weights),
        device=device,
    )
