"""H-optimus-0 (Bioptimus): ViT-g/14 with 4 register tokens and SwiGLU, 40 blocks, 1,536-d class token.

Sources, as of this writing:
- Bioptimus's release notes, https://github.com/bioptimus/releases/tree/main/models/h-optimus/v0 (README.md): a
  ``g/14`` backbone with 4 registers, 40 blocks, 24 heads, embedding 1536; built as ``timm.models.VisionTransformer(
  patch_size=14, embed_dim=1536, depth=40, num_heads=24, init_values=1e-05, mlp_ratio=5.33334,
  mlp_layer=partial(GluMlp, act_layer=SiLU, gate_last=False), act_layer=SiLU, reg_tokens=4, no_embed_class=True,
  img_size=224, num_classes=0, in_chans=3)`` and loaded with ``load_state_dict`` (strict); "expects images of size
  224x224, extracted at 0.5 microns per pixel"; transform ToTensor + Normalize(mean=(0.707223, 0.578729, 0.703617),
  std=(0.211883, 0.230117, 0.177517)), no resize; float16 autocast recommended; output (1, 1536). The checkpoint
  ``checkpoint.pth`` is linked there (public-bioptimus-eu-west-3.s3.eu-west-3.amazonaws.com/h-optimus-v0/).
- Model card, https://huggingface.co/bioptimus/H-optimus-0 (as quoted by many public repositories; huggingface.co
  itself could not be read from here): ``timm.create_model("hf-hub:bioptimus/H-optimus-0", pretrained=True,
  init_values=1e-5, dynamic_img_size=False)``, the same transform and float16 autocast.
- TRIDENT (github.com/mahmoodlab/TRIDENT, trident/patch_encoder_models/load.py, ``HOptimus0InferenceEncoder``):
  ``vit_giant_patch14_reg4_dinov2`` with ``img_size=224, init_values=1e-5, global_pool="token", num_classes=0``,
  Resize(224) (torchvision's default, bilinear) + the same mean/std, float16, and ``pytorch_model.bin`` from
  https://huggingface.co/bioptimus/H-optimus-0.

timm's ``vit_giant_patch14_reg4_dinov2`` is that same network (SwiGLUPacked is GluMlp with ``gate_last=False``;
tests/test_encoder_registry.py checks every tensor's name and shape against the release's parameters).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mosare.features.encoder_specs import CHECKPOINT_KEY, ENCODERS, EncoderSpec

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer
    from torch import nn

H_OPTIMUS_MEAN = (0.707223, 0.578729, 0.703617)
H_OPTIMUS_STD = (0.211883, 0.230117, 0.177517)
H_OPTIMUS_0_HINT = (
    "H-optimus-0's weights are on Hugging Face behind an access request: accept the terms at "
    "https://huggingface.co/bioptimus/H-optimus-0 and download pytorch_model.bin (or model.safetensors) yourself, "
    "or take checkpoint.pth from the link in https://github.com/bioptimus/releases/tree/main/models/h-optimus/v0 "
    f"(the pipeline never downloads weights); then set '{CHECKPOINT_KEY}: /path/to/that/file' in config.yaml"
)


def h_optimus_0_architecture() -> VisionTransformer:
    """H-optimus-0's ViT-g/14 (pooled class token, 1536-d) as its model card builds it, on the meta device."""
    import timm
    import torch

    from mosare.features.encoder_adapters import as_vit

    with torch.device("meta"):
        return as_vit(
            timm.create_model(
                "vit_giant_patch14_reg4_dinov2",
                pretrained=False,
                img_size=224,
                init_values=1e-5,
                num_classes=0,
                dynamic_img_size=False,
            )
        )


def build(spec: EncoderSpec, weights: Path) -> tuple[nn.Module, EncoderSpec]:
    from mosare.features.encoders import load_checkpoint

    return load_checkpoint(spec, h_optimus_0_architecture(), weights), spec


# Job memory: 4.5 GB of float32 weights held on the host while loading, scaled from UNI2-h's 12 GB for 2.7 GB; not
# measured for this model.
ENCODERS.register(
    EncoderSpec(
        name="h-optimus-0",
        description="H-optimus-0 (Bioptimus), ViT-g/14 with 4 register tokens and SwiGLU, 1536-d class token; "
        "weights given by the user",
        builder=f"{__name__}:build",
        dim=1536,
        input_px=224,
        mean=H_OPTIMUS_MEAN,
        std=H_OPTIMUS_STD,
        interpolation="bilinear",
        cuda_dtype="float16",
        weights="checkpoint",
        weights_hint=H_OPTIMUS_0_HINT,
        weights_mb=4539,
        mem_mb=16000,
        gpus=1,
        threads=10,
        decode_workers=8,
    )
)
