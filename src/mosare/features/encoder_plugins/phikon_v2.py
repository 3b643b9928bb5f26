"""Phikon-v2 (Owkin): ViT-L/16 trained with DINOv2, 1,024-d class token; its checkpoint is a transformers Dinov2Model.

Sources, as of this writing:
- Model card, https://huggingface.co/owkin/phikon-v2: "Model type: Pretrained vision backbone (ViT-L/16 via
  DINOv2)"; features are the CLS token, ``AutoModel.from_pretrained("owkin/phikon-v2")`` then
  ``outputs.last_hidden_state[:, 0, :]``, "(1, 1024) shape"; the repository holds config.json, model.safetensors
  (1.21 GB) and preprocessor_config.json; Owkin non-commercial licence. The crawled model page asks for no access
  request. Neither config.json nor preprocessor_config.json could be read from here: the 14 x 14 position grid
  (224 px) is checked by the strict load, LayerNorm eps 1e-6 (DINOv2's and transformers' default) cannot be.
- TRIDENT (github.com/mahmoodlab/TRIDENT, trident/patch_encoder_models/load.py, ``Phikonv2InferenceEncoder``):
  ``AutoModel.from_pretrained`` on the folder of ``model.safetensors`` and ``config.json``, Resize(224) (torchvision's
  default, bilinear) + CenterCrop(224) + ImageNet mean/std, float32 (no autocast), ``last_hidden_state[:, 0, :]``.
- Phikon-v2 paper (arXiv 2409.09173): tiles of 224 x 224 px at 20x (0.5 um/px), ViT-L/16 without registers.

transformers' ``Dinov2Model`` is a timm ViT-L/16 with LayerScale under other names: ``last_hidden_state`` is the
final LayerNorm's output, so its class token is timm's pooled ``global_pool="token"`` output. The checkpoint is read
with its names mapped to timm's (``mosare.features.encoder_adapters.dinov2_transformers_to_timm``), every tensor
placed or refused, then loaded strictly: transformers is not needed (nor in the slide stages' env).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from mosare.features.encoder_specs import CHECKPOINT_KEY, ENCODERS, IMAGENET_MEAN, IMAGENET_STD, EncoderSpec

if TYPE_CHECKING:
    from timm.models.vision_transformer import VisionTransformer
    from torch import nn

PHIKON_V2_HINT = (
    "download model.safetensors from https://huggingface.co/owkin/phikon-v2 yourself (Owkin non-commercial licence; "
    "the pipeline never downloads weights) and set "
    f"'{CHECKPOINT_KEY}: /path/to/model.safetensors' in config.yaml"
)


def phikon_v2_architecture() -> VisionTransformer:
    """Phikon-v2's ViT-L/16 (LayerScale, LayerNorm eps 1e-6, pooled class token, 1024-d) on the meta device."""
    import timm
    import torch

    from mosare.features.encoder_adapters import as_vit

    with torch.device("meta"):
        return as_vit(
            timm.create_model("vit_large_patch16_224", pretrained=False, img_size=224, init_values=1e-5, num_classes=0)
        )


def build(spec: EncoderSpec, weights: Path) -> tuple[nn.Module, EncoderSpec]:
    from mosare.features.encoder_adapters import dinov2_transformers_to_timm
    from mosare.features.encoders import load_checkpoint

    model = phikon_v2_architecture()
    convert = functools.partial(dinov2_transformers_to_timm, depth=len(model.blocks))
    return load_checkpoint(spec, model, weights, convert=convert), spec


# Job shape as UNI's (the same ViT-L/16: 1.2 GB of float32 weights; converting the checkpoint's names briefly holds
# another 0.3 GB of concatenated q/k/v); not measured for this model.
ENCODERS.register(
    EncoderSpec(
        name="phikon-v2",
        description="Phikon-v2 (Owkin), ViT-L/16 (DINOv2), 1024-d class token; weights given by the user",
        builder=f"{__name__}:build",
        dim=1024,
        input_px=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        interpolation="bilinear",
        cuda_dtype="float32",
        weights="checkpoint",
        weights_hint=PHIKON_V2_HINT,
        weights_mb=1213,
        mem_mb=8000,
        gpus=1,
        threads=10,
        decode_workers=8,
    )
)
