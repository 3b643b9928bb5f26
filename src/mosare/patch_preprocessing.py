"""The decode workers' half of an encoder's preprocessing (uint8 resize + center crop), from its spec alone.

Kept apart from ``mosare.encoders`` so that embedding jobs can start their decode workers before timm is
imported and the model is built (torch and torchvision only).
"""

from __future__ import annotations

from torchvision.transforms import v2

from mosare.encoder_specs import EncoderSpec

INTERPOLATIONS = {"bilinear": v2.InterpolationMode.BILINEAR, "bicubic": v2.InterpolationMode.BICUBIC}


def resize_crop_transform(input_px: int, interpolation: v2.InterpolationMode) -> v2.Compose:
    """uint8 (..., 3, H, W) -> uint8 (..., 3, input_px, input_px): Resize(input_px) + CenterCrop(input_px)."""
    return v2.Compose([v2.Resize(input_px, interpolation=interpolation, antialias=True), v2.CenterCrop(input_px)])


def spec_resize_crop(spec: EncoderSpec) -> v2.Compose:
    """``resize_crop_transform`` for ``spec``, before its model exists."""
    if spec.input_px is None:
        raise ValueError(f"encoder {spec.name!r}: its input size is known only once its model is built")
    return resize_crop_transform(spec.input_px, INTERPOLATIONS[spec.interpolation])
