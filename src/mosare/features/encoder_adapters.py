"""What some registered encoders need beyond a timm model's pooled output: their own output heads and checkpoint
conversions, each following its authors' published inference code (the plugin that uses it cites the source).

- :class:`ClassAndMeanPatchTokens`: Virchow2's tile embedding, the class token beside the mean of the patch tokens.
- :class:`ConchVisionTower`: CONCH v1.5's trunk, attentional pooler and LayerNorm (TRIDENT's ``CONCHVisionTower``).
- :func:`dinov2_transformers_to_timm`: Phikon-v2's checkpoint (a Hugging Face transformers ``Dinov2Model``) under
  timm's ViT names, every tensor placed or refused by name.

Torch is imported here, so plugins import this module inside their builder functions only (planning stays light).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer
from torch import nn


def as_vit(model: nn.Module) -> VisionTransformer:
    """``model`` (from ``timm.create_model``, typed as any module) as the VisionTransformer it is; TypeError if not."""
    if not isinstance(model, VisionTransformer):
        raise TypeError(f"expected a timm VisionTransformer, got a {type(model).__name__}")
    return model


class ClassAndMeanPatchTokens(nn.Module):
    """A timm ViT's final class token concatenated with the mean of its patch tokens: ``2 * vit.num_features`` wide.

    The register tokens (between the class token and the patch tokens) are left out of the mean, as in Virchow2's
    model card: ``torch.cat([output[:, 0], output[:, 5:].mean(1)], dim=-1)`` with 1 class + 4 register tokens.
    """

    def __init__(self, vit: VisionTransformer) -> None:
        super().__init__()
        self.vit = vit
        self.num_features = 2 * vit.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.vit.forward_features(images)  # (B, prefix + patches, D), after the final LayerNorm
        patch_tokens = tokens[:, self.vit.num_prefix_tokens :]
        return torch.cat([tokens[:, 0], patch_tokens.mean(dim=1)], dim=-1)


class AttentionalPooler(nn.Module):
    """CoCa's attentional pooler as CONCH uses it: learned queries attend over LayerNormed tokens, no biases.

    Parameter names are those of the published checkpoint (``query``, ``ln_k``, ``ln_q``, ``to_q``, ``to_kv``,
    ``to_out``); the arithmetic is that of TRIDENT's ``AttentionalPooler`` (einops there, plain torch here).
    """

    def __init__(self, d_model: int, context_dim: int, n_head: int, n_queries: int) -> None:
        super().__init__()
        head_dim = d_model // n_head
        self.heads = n_head
        self.scale = head_dim**-0.5
        self.query = nn.Parameter(torch.zeros(n_queries, d_model))
        self.ln_k = nn.LayerNorm(context_dim)
        self.ln_q = nn.LayerNorm(d_model)
        self.to_q = nn.Linear(d_model, head_dim * n_head, bias=False)
        self.to_kv = nn.Linear(context_dim, 2 * head_dim * n_head, bias=False)
        self.to_out = nn.Linear(head_dim * n_head, d_model, bias=False)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n, heads * head_dim) -> (B, heads, n, head_dim)."""
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, context_dim) tokens -> (B, n_queries, d_model)."""
        keys, values = self.to_kv(self.ln_k(tokens)).chunk(2, dim=-1)
        queries = self.to_q(self.ln_q(self.query)).expand(tokens.shape[0], -1, -1)
        q, k, v = self._split_heads(queries), self._split_heads(keys), self._split_heads(values)
        attention = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        return self.to_out((attention @ v).transpose(1, 2).flatten(2))


class ConchVisionTower(nn.Module):
    """CONCH v1.5's image encoder: a ViT trunk, then one attentional-pooler query and a LayerNorm (``embed_dim`` wide).

    The output is TRIDENT's ``conch_v15`` feature (768-d): the contrastive branch before any projection; the vision
    checkpoint holds no projection. Attribute names match the checkpoint's prefixes (``trunk.``,
    ``attn_pool_contrast.``, ``ln_contrast.``), so the file loads into this module as it is.
    """

    def __init__(self, trunk: VisionTransformer, embed_dim: int = 768, pooler_heads: int = 8) -> None:
        super().__init__()
        self.trunk = trunk
        self.attn_pool_contrast = AttentionalPooler(embed_dim, trunk.num_features, pooler_heads, n_queries=1)
        self.ln_contrast = nn.LayerNorm(embed_dim)
        self.num_features = embed_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.trunk.forward_features(images)  # every token, after the trunk's final LayerNorm
        return self.ln_contrast(self.attn_pool_contrast(tokens)[:, 0])


def resample_trunk_pos_embed(state: Mapping[str, torch.Tensor], trunk: VisionTransformer) -> dict[str, torch.Tensor]:
    """``state`` with ``trunk.pos_embed`` resampled to the trunk's patch grid when the file's grid differs.

    As TRIDENT's CONCH v1.5 loader does before its strict load: bilinear, no antialiasing, the class token's entry
    kept (timm's ``resample_abs_pos_embed``). Anything but a square grid of the trunk's width is a ValueError.
    """
    key = "trunk.pos_embed"
    state = dict(state)
    if trunk.pos_embed is None:
        raise ValueError("the trunk has no position embedding to resample to")
    if key not in state or state[key].shape == trunk.pos_embed.shape:
        return state
    position = state[key]
    grid = math.isqrt(max(position.shape[1] - 1, 0)) if position.ndim == 3 else 0
    if position.ndim != 3 or grid < 1 or grid * grid != position.shape[1] - 1 or position.shape[2] != trunk.embed_dim:
        raise ValueError(
            f"{key} is {tuple(position.shape)}: not a class token plus a square grid of "
            f"{trunk.embed_dim}-d position embeddings, as the trunk's {tuple(trunk.pos_embed.shape)}"
        )
    state[key] = resample_abs_pos_embed(
        position,
        new_size=list(trunk.patch_embed.grid_size),
        num_prefix_tokens=1,
        interpolation="bilinear",
        antialias=False,
        verbose=False,
    )
    return state


# transformers' Dinov2Model names -> timm VisionTransformer names (patch embedding, class token, position embedding,
# blocks with LayerScale, final LayerNorm). The query/key/value projections are concatenated into timm's qkv.
DINOV2_TOP = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
DINOV2_BLOCK = {
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "layer_scale1.lambda1": "ls1.gamma",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
    "layer_scale2.lambda1": "ls2.gamma",
}
# The attention's names: as transformers < 5 saved them (the published Phikon-v2 file), and as transformers >= 5 does.
DINOV2_ATTENTION = {
    "transformers<5": (
        ("attention.attention.query", "attention.attention.key", "attention.attention.value"),
        "attention.output.dense",
    ),
    "transformers>=5": (("attention.q_proj", "attention.k_proj", "attention.v_proj"), "attention.o_proj"),
}
# Used only to mask patches in DINOv2's masked-image-modelling training; Dinov2Model's inference never reads it.
DINOV2_TRAINING_ONLY = ("embeddings.mask_token",)


def dinov2_transformers_to_timm(state: Mapping[str, torch.Tensor], depth: int) -> dict[str, torch.Tensor]:
    """A transformers ``Dinov2Model`` state dict of ``depth`` layers under timm's ViT names.

    Every tensor of ``state`` is either placed (renamed, or concatenated into ``blocks.N.attn.qkv``) or is one of
    ``DINOV2_TRAINING_ONLY``; a tensor the conversion expects but does not find, or finds but does not know, is a
    ValueError naming it. Shapes are checked by the strict load that follows (and here, for q/k/v to concatenate).
    """
    remaining = dict(state)

    def take(key: str) -> torch.Tensor:
        if key not in remaining:
            raise ValueError(f"no tensor {key!r} (a transformers Dinov2Model checkpoint of {depth} layers has one)")
        return remaining.pop(key)

    naming = next(
        (names for names in DINOV2_ATTENTION.values() if f"encoder.layer.0.{names[0][0]}.weight" in state), None
    )
    if naming is None:
        raise ValueError(
            "no 'encoder.layer.0.attention.attention.query.weight' (or 'encoder.layer.0.attention.q_proj.weight'): "
            "not a transformers Dinov2Model checkpoint"
        )
    qkv_names, output_name = naming
    converted = {timm_key: take(key) for key, timm_key in DINOV2_TOP.items()}
    for index in range(depth):
        layer, block = f"encoder.layer.{index}.", f"blocks.{index}."
        converted.update({block + timm_key: take(layer + key) for key, timm_key in DINOV2_BLOCK.items()})
        for kind in ("weight", "bias"):
            q, k, v = (take(f"{layer}{name}.{kind}") for name in qkv_names)
            if not q.shape == k.shape == v.shape:
                raise ValueError(
                    f"{layer}{qkv_names[0]}.{kind} and its key/value are {tuple(q.shape)}, {tuple(k.shape)}, "
                    f"{tuple(v.shape)}: they must agree to form {block}attn.qkv.{kind}"
                )
            converted[f"{block}attn.qkv.{kind}"] = torch.cat([q, k, v], dim=0)
            converted[f"{block}attn.proj.{kind}"] = take(f"{layer}{output_name}.{kind}")
    for key in DINOV2_TRAINING_ONLY:
        remaining.pop(key, None)
    if remaining:
        raise ValueError(
            f"{len(remaining)} tensors a {depth}-layer Dinov2Model does not have, e.g. {sorted(remaining)[:3]}"
        )
    return converted
