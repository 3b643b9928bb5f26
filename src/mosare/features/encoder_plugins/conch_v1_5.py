"""CONCH v1.5 (MahmoodLab, TITAN's patch encoder): ViT-L/16 at 448 px, then an attentional pooler and a LayerNorm,
768-d.

Sources, as of this writing:
- TRIDENT (github.com/mahmoodlab/TRIDENT), trident/patch_encoder_models/load.py, ``Conchv15InferenceEncoder``:
  ``create_model_from_pretrained(checkpoint_path=..., img_size=448)``, float16; the error message names the files
  ``pytorch_model_vision.bin`` and ``config.json`` at https://huggingface.co/MahmoodLab/conchv1_5. TRIDENT's README
  table: CONCHv1.5, embedding dim 768.
- trident/patch_encoder_models/model_zoo/conchv1_5/conchv1_5.py: ``CONCHVisionTower`` = ``trunk`` (an iBOT/timm
  ViT-L/16: embed 1024, depth 24, 16 heads, mlp_ratio 4, qkv bias, LayerScale, LayerNorm eps 1e-6, class token,
  no register tokens) + ``attn_pool_contrast`` (AttentionalPooler(d_model=768, context_dim=1024, n_head=8,
  n_queries=1)) + ``ln_contrast`` (LayerNorm(768)); forward: ``ln_contrast(attn_pool_contrast(
  trunk.forward_features(x))[:, 0])``. The checkpoint is loaded strictly after ``trunk.pos_embed`` is resampled
  (bilinear, no antialias) if its grid differs from the trunk's. Transform: Resize(448, bilinear) + CenterCrop(448) +
  ImageNet mean/std.
- TITAN (github.com/mahmoodlab/TITAN, and its Hugging Face code's ``ConchConfig``): patch_size 16, context_dim 1024,
  embed_dim 768, depth 24, num_heads 16, mlp_ratio 4, qkv_bias, one contrastive pooler query. Weights are
  access-gated (CC-BY-NC-ND 4.0); the model card itself, https://huggingface.co/MahmoodLab/conchv1_5, could not be
  read from here.

timm's ``vit_large_patch16_224`` at ``img_size=448`` with LayerScale has exactly the trunk's tensors and forward
(``forward_features``: patch embedding, class token, position embedding, blocks, final LayerNorm).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from mosare.features.encoder_specs import CHECKPOINT_KEY, ENCODERS, IMAGENET_MEAN, IMAGENET_STD, EncoderSpec

if TYPE_CHECKING:
    from torch import nn

    from mosare.features.encoder_adapters import ConchVisionTower

CONCH_V1_5_HINT = (
    "CONCH v1.5's weights are access-gated on Hugging Face: request access at "
    "https://huggingface.co/MahmoodLab/conchv1_5, download pytorch_model_vision.bin yourself (the pipeline never "
    f"downloads weights), and set '{CHECKPOINT_KEY}: /path/to/pytorch_model_vision.bin' in config.yaml"
)


def conch_v1_5_architecture() -> ConchVisionTower:
    """CONCH v1.5's vision tower (trunk at 448 px, pooler, LayerNorm; 768-d) on the meta device."""
    import timm
    import torch

    from mosare.features.encoder_adapters import ConchVisionTower, as_vit

    with torch.device("meta"):
        trunk = as_vit(
            timm.create_model("vit_large_patch16_224", pretrained=False, img_size=448, init_values=1.0, num_classes=0)
        )
        return ConchVisionTower(trunk, embed_dim=768, pooler_heads=8)


def build(spec: EncoderSpec, weights: Path) -> tuple[nn.Module, EncoderSpec]:
    from mosare.features.encoder_adapters import resample_trunk_pos_embed
    from mosare.features.encoders import load_checkpoint

    model = conch_v1_5_architecture()
    convert = functools.partial(resample_trunk_pos_embed, trunk=model.trunk)
    return load_checkpoint(spec, model, weights, convert=convert), spec


# Job shape as UNI's (a ViT-L/16: 1.2 GB of float32 weights), not measured for this model; its 448 px input has 4x
# the tokens of UNI's 224 px, which costs GPU memory and time, not host memory.
ENCODERS.register(
    EncoderSpec(
        name="conch-v1_5",
        description="CONCH v1.5 (MahmoodLab), ViT-L/16 at 448 px + attentional pooler, 768-d; access-gated weights "
        "given by the user",
        builder=f"{__name__}:build",
        dim=768,
        input_px=448,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        interpolation="bilinear",
        cuda_dtype="float16",
        weights="checkpoint",
        weights_hint=CONCH_V1_5_HINT,
        weights_mb=1227,
        mem_mb=8000,
        gpus=1,
        threads=10,
        decode_workers=8,
    )
)
