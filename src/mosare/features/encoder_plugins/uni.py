"""UNI v1 and UNI2-h (MahmoodLab): ViT-L/16 (1024-d) and ViT-g/14 with register tokens (1536-d).

Model cards: huggingface.co/MahmoodLab/UNI and huggingface.co/MahmoodLab/UNI2-h (timm kwargs, ImageNet mean/std,
224 px). Weights are access-gated: the user downloads them and sets ``encoder.checkpoint``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from mosare.features.encoder_specs import CHECKPOINT_KEY, ENCODERS, IMAGENET_MEAN, IMAGENET_STD, EncoderSpec

if TYPE_CHECKING:
    from torch import nn

UNI_HINT = (
    "UNI weights are access-gated on Hugging Face: request access at https://huggingface.co/{repo}, "
    "download pytorch_model.bin yourself (the pipeline never downloads weights), and set "
    f"'{CHECKPOINT_KEY}: /path/to/pytorch_model.bin' in config.yaml"
)


def uni_architecture() -> nn.Module:
    """UNI v1's ViT-L/16 exactly as MahmoodLab builds it, on the meta device (no memory, no init)."""
    import timm
    import torch

    with torch.device("meta"):
        return timm.create_model(
            "vit_large_patch16_224",
            pretrained=False,
            img_size=224,
            patch_size=16,
            init_values=1e-5,
            num_classes=0,
            dynamic_img_size=True,
        )


def uni2_h_architecture() -> nn.Module:
    """UNI2-h's ViT-g/14 (24 blocks, 1536-d, SwiGLU, 8 register tokens) on the meta device."""
    import timm
    import torch

    with torch.device("meta"):
        return timm.create_model(
            "vit_giant_patch14_224",
            pretrained=False,
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


def build_uni(spec: EncoderSpec, weights: Path) -> tuple[nn.Module, EncoderSpec]:
    from mosare.features.encoders import load_checkpoint

    return load_checkpoint(spec, uni_architecture(), weights), spec


def build_uni2_h(spec: EncoderSpec, weights: Path) -> tuple[nn.Module, EncoderSpec]:
    from mosare.features.encoders import load_checkpoint

    return load_checkpoint(spec, uni2_h_architecture(), weights), spec


# Job memory: the ViTs hold fp32 weights on the host while loading (1.2 / 2.7 GB) plus decode workers.
UNI = ENCODERS.register(
    EncoderSpec(
        name="uni",
        description="UNI v1 (MahmoodLab), ViT-L/16, 1024-d; access-gated weights given by the user",
        builder=f"{__name__}:build_uni",
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
ENCODERS.register(
    replace(
        UNI,
        name="uni2-h",
        description="UNI2-h, ViT-g/14 with 8 register tokens and SwiGLU, 1536-d; same weight rules as uni",
        builder=f"{__name__}:build_uni2_h",
        dim=1536,
        cuda_dtype="bfloat16",
        weights_hint=UNI_HINT.format(repo="MahmoodLab/UNI2-h"),
        weights_mb=2730,
        mem_mb=12000,
    )
)
