"""Virchow2 (Paige, Microsoft Research): ViT-H/14 with 4 register tokens and SwiGLU; its tile embedding is the class
token concatenated with the mean of the 256 patch tokens, 2,560-d.

Sources, as of this writing:
- Model card, https://huggingface.co/paige-ai/Virchow2: ``timm.create_model("hf-hub:paige-ai/Virchow2",
  pretrained=True, mlp_layer=SwiGLUPacked, act_layer=torch.nn.SiLU)``; output 1 x 261 x 1280; ``class_token =
  output[:, 0]``, ``patch_tokens = output[:, 5:]`` ("tokens 1-4 are register tokens so we ignore those"); embedding
  ``torch.cat([class_token, patch_tokens.mean(1)], dim=-1)``, 1 x 2560; inference under
  ``torch.autocast(device_type="cuda", dtype=torch.float16)``. Access-gated (CC-BY-NC-ND 4.0).
- The repository's config.json (timm): architecture ``vit_huge_patch14_224``, model_args ``img_size=224,
  init_values=1e-5, num_classes=0, reg_tokens=4, mlp_ratio=5.3375, global_pool="", dynamic_img_size=True``;
  pretrained_cfg ``input_size=(3, 224, 224), interpolation="bicubic", crop_pct=1.0, crop_mode="center"``, ImageNet
  mean and std. (Read from the copies in TRIDENT's loader and several public repositories; huggingface.co itself
  could not be read from here.)
- TRIDENT (github.com/mahmoodlab/TRIDENT, trident/patch_encoder_models/load.py, ``Virchow2InferenceEncoder``): the
  same timm kwargs, Resize(224, bicubic) + ImageNet mean/std, float16, output ``cat([out[:, 0], out[:, 5:].mean(1)])``,
  and the weights file ``pytorch_model.bin`` from https://huggingface.co/paige-ai/Virchow2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mosare.features.encoder_specs import CHECKPOINT_KEY, ENCODERS, IMAGENET_MEAN, IMAGENET_STD, EncoderSpec

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer
    from torch import nn

VIRCHOW2_HINT = (
    "Virchow2's weights are access-gated on Hugging Face: request access at https://huggingface.co/paige-ai/Virchow2, "
    "download pytorch_model.bin yourself (the pipeline never downloads weights), and set "
    f"'{CHECKPOINT_KEY}: /path/to/pytorch_model.bin' in config.yaml"
)


def virchow2_vit() -> VisionTransformer:
    """Virchow2's ViT-H/14 exactly as its config.json builds it (all tokens out), on the meta device."""
    import timm
    import torch

    from mosare.features.encoder_adapters import as_vit

    with torch.device("meta"):
        return as_vit(
            timm.create_model(
                "vit_huge_patch14_224",
                pretrained=False,
                img_size=224,
                init_values=1e-5,
                num_classes=0,
                reg_tokens=4,
                mlp_ratio=5.3375,
                global_pool="",
                dynamic_img_size=True,
                mlp_layer=timm.layers.SwiGLUPacked,
                act_layer=torch.nn.SiLU,
            )
        )


def build(spec: EncoderSpec, weights: Path) -> tuple[nn.Module, EncoderSpec]:
    from mosare.features.encoder_adapters import ClassAndMeanPatchTokens
    from mosare.features.encoders import load_checkpoint

    return ClassAndMeanPatchTokens(load_checkpoint(spec, virchow2_vit(), weights)).eval(), spec


# Job shape as UNI2-h's (a ViT of 632M parameters: 2.5 GB of float32 weights held on the host while loading); not
# measured for this model.
ENCODERS.register(
    EncoderSpec(
        name="virchow2",
        description="Virchow2 (Paige), ViT-H/14 with 4 register tokens and SwiGLU; class token + mean patch token, "
        "2560-d; access-gated weights given by the user",
        builder=f"{__name__}:build",
        dim=2560,
        input_px=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        interpolation="bicubic",
        cuda_dtype="float16",
        weights="checkpoint",
        weights_hint=VIRCHOW2_HINT,
        weights_mb=2525,
        mem_mb=12000,
        gpus=1,
        threads=10,
        decode_workers=8,
    )
)
