"""The decode workers' half of an encoder's preprocessing (uint8 resize + center crop), from its spec alone.

Kept apart from ``mosare.features.encoders`` so that embedding jobs start their decode workers before timm is imported and
the model is built. torchvision is imported here, before the workers fork, on purpose: each worker that imported
it itself would hold its own copy (about 100 MB more per worker, measured by benchmarks/bench_embedding_memory.py).
"""

from __future__ import annotations

from torchvision.transforms import v2

from mosare.features.encoder_specs import EncoderSpec


def resize_crop_transform(input_px: int, interpolation: v2.InterpolationMode | str) -> v2.Compose:
    """uint8 (..., 3, H, W) -> uint8 (..., 3, input_px, input_px): Resize(input_px) + CenterCrop(input_px)."""
    mode = v2.InterpolationMode(interpolation)
    return v2.Compose([v2.Resize(input_px, interpolation=mode, antialias=True), v2.CenterCrop(input_px)])


def spec_resize_crop(spec: EncoderSpec) -> v2.Compose:
    """The resize + crop of ``spec``'s encoder, before its model exists."""
    if spec.input_px is None:
        raise ValueError(f"encoder {spec.name!r}: its input size is known only once its model is built")
    return resize_crop_transform(spec.input_px, spec.interpolation)
