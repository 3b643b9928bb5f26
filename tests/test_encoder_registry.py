"""Every registered encoder against its model card: its preprocessing facts, strict loading of weights the test makes,
the output shape of its real architecture, and errors that name the file for a checkpoint that does not fit.

Giant ViTs stay cheap: their weights are views of one shared random buffer (one ~50 MB file even for H-optimus-0's
1.1B parameters, every key and shape exact), their full-size output shape comes from a forward pass on the meta
device, and the heads and conversions that differ from timm's pooled output are checked numerically on small copies.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from skimage.data import chelsea
from test_encoders import EGYPTIAN_CAT, shared_random_state_like

from mosare.features import embedding, encoders
from mosare.features.encoder_adapters import (
    AttentionalPooler,
    ClassAndMeanPatchTokens,
    ConchVisionTower,
    dinov2_transformers_to_timm,
    resample_trunk_pos_embed,
)
from mosare.features.encoder_plugins.conch_v1_5 import conch_v1_5_architecture
from mosare.features.encoder_plugins.efficientnet_lite import VARIANTS, efficientnet_lite_imagenet
from mosare.features.encoder_plugins.h_optimus_0 import h_optimus_0_architecture
from mosare.features.encoder_plugins.phikon_v2 import phikon_v2_architecture
from mosare.features.encoder_plugins.uni import uni2_h_architecture, uni_architecture
from mosare.features.encoder_plugins.virchow2 import virchow2_vit
from mosare.features.encoder_specs import encoder_spec, load_object, registered_specs
from mosare.features.encoders import EncoderWeightsError, create_encoder, pooled_dim

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
TF_LITE = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@dataclasses.dataclass(frozen=True)
class Facts:
    dim: int
    input_px: int
    mean_std: tuple[tuple[float, float, float], tuple[float, float, float]]
    interpolation: str
    cuda_dtype: str


# Each encoder's facts as published, with where they were read (the plugin modules quote the sources at length).
MODEL_CARD_FACTS = {
    # huggingface.co/MahmoodLab/UNI: timm ViT-L/16, Resize(224) + CenterCrop(224), ImageNet mean/std, fp16 autocast;
    # 1024-d. TRIDENT's UNIInferenceEncoder: the same, torchvision's default (bilinear) interpolation.
    "uni": Facts(1024, 224, IMAGENET, "bilinear", "float16"),
    # huggingface.co/MahmoodLab/UNI2-h: ViT-g/14 (reg 8, SwiGLU), 224 px, ImageNet mean/std, bf16; 1536-d (TRIDENT).
    "uni2-h": Facts(1536, 224, IMAGENET, "bilinear", "bfloat16"),
    # TRIDENT load.py Conchv15InferenceEncoder + model_zoo/conchv1_5/conchv1_5.py: Resize(448, BILINEAR) +
    # CenterCrop(448), ImageNet mean/std, float16; README table: 768-d (attentional pooler + LayerNorm).
    "conch-v1_5": Facts(768, 448, IMAGENET, "bilinear", "float16"),
    # huggingface.co/paige-ai/Virchow2: config.json pretrained_cfg input 224, bicubic, crop_pct 1.0, ImageNet
    # mean/std; card: fp16 autocast, class token + mean patch token = 1 x 2560.
    "virchow2": Facts(2560, 224, IMAGENET, "bicubic", "float16"),
    # github.com/bioptimus/releases models/h-optimus/v0 README (and huggingface.co/bioptimus/H-optimus-0): 224 x 224
    # at 0.5 um/px, mean (0.707223, 0.578729, 0.703617), std (0.211883, 0.230117, 0.177517), fp16 autocast, (1, 1536).
    # No resize there; TRIDENT resizes with torchvision's default, bilinear.
    "h-optimus-0": Facts(
        1536, 224, ((0.707223, 0.578729, 0.703617), (0.211883, 0.230117, 0.177517)), "bilinear", "float16"
    ),
    # huggingface.co/owkin/phikon-v2: ViT-L/16, CLS token, (1, 1024). TRIDENT Phikonv2InferenceEncoder: Resize(224)
    # (bilinear) + CenterCrop(224), ImageNet mean/std, float32.
    "phikon-v2": Facts(1024, 224, IMAGENET, "bilinear", "float32"),
    # timm 1.0.31 pretrained_cfg of tf_efficientnet_lite0/1/2 (checked against timm below): 224 / 240 / 260 px,
    # bicubic, mean = std = 0.5 (TensorFlow's (x - 127) / 128); 1280-d pooled features.
    "efficientnet-lite0": Facts(1280, 224, TF_LITE, "bicubic", "float16"),
    "efficientnet-lite1": Facts(1280, 240, TF_LITE, "bicubic", "float16"),
    "efficientnet-lite2": Facts(1280, 260, TF_LITE, "bicubic", "float16"),
}

# The encoders whose weights come from encoder.checkpoint, and the architecture each file's tensors belong to.
CHECKPOINT_ARCHITECTURES = {
    "uni": uni_architecture,
    "uni2-h": uni2_h_architecture,
    "conch-v1_5": conch_v1_5_architecture,
    "virchow2": virchow2_vit,
    "h-optimus-0": h_optimus_0_architecture,
    "phikon-v2": phikon_v2_architecture,
}


def built_in_specs():
    return {name: spec for name, spec in registered_specs().items() if spec.builder.startswith("mosare.features.")}


def test_every_built_in_encoder_has_its_model_card_facts_and_a_test_architecture():
    specs = built_in_specs()
    assert set(specs) == set(MODEL_CARD_FACTS)
    assert {name for name, spec in specs.items() if spec.weights == "checkpoint"} == set(CHECKPOINT_ARCHITECTURES)


@pytest.mark.parametrize("name", sorted(MODEL_CARD_FACTS))
def test_each_encoders_preprocessing_and_width_are_those_of_its_model_card(name):
    spec, facts = encoder_spec(name), MODEL_CARD_FACTS[name]

    assert (spec.dim, spec.input_px, spec.interpolation, spec.cuda_dtype) == (
        facts.dim,
        facts.input_px,
        facts.interpolation,
        facts.cuda_dtype,
    )
    assert (spec.mean, spec.std) == facts.mean_std


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_efficientnet_lite_facts_are_timms_pretrained_config(name):
    config = timm.create_model(VARIANTS[name].architecture, pretrained=False).pretrained_cfg
    spec = encoder_spec(name)

    assert config["input_size"] == (3, spec.input_px, spec.input_px)
    assert (config["mean"], config["std"], config["interpolation"]) == (spec.mean, spec.std, spec.interpolation)


def meta_model(name: str, monkeypatch) -> torch.nn.Module:
    """Encoder ``name`` exactly as its spec's builder makes it, except that the weights are never loaded (meta)."""
    monkeypatch.setattr(encoders, "load_checkpoint", lambda spec, architecture, path, convert=None: architecture)
    model, _ = load_object(encoder_spec(name).builder)(encoder_spec(name), Path("never-read.bin"))
    return model


@pytest.mark.parametrize("name", sorted(CHECKPOINT_ARCHITECTURES))
def test_each_checkpoint_encoders_full_size_model_gives_its_specs_width_at_its_input_size(name, monkeypatch):
    spec = encoder_spec(name)
    model = meta_model(name, monkeypatch)

    with torch.inference_mode():
        features = model(torch.empty(2, 3, spec.input_px, spec.input_px, device="meta"))

    assert tuple(features.shape) == (2, spec.dim) and pooled_dim(model) == spec.dim


# ------------------------------------------------------------------ strict loading with weights the test creates


# transformers' Dinov2Model names for a timm ViT's tensors, written out here independently of the plugin's table.
def as_transformers_dinov2(state: dict[str, torch.Tensor], depth: int, attention: str = "attention.attention"):
    top = {
        "cls_token": "embeddings.cls_token",
        "pos_embed": "embeddings.position_embeddings",
        "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
        "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
        "norm.weight": "layernorm.weight",
        "norm.bias": "layernorm.bias",
    }
    hf = {hf_key: state[key] for key, hf_key in top.items()}
    hf["embeddings.mask_token"] = torch.zeros(1, state["cls_token"].shape[-1])
    names = (
        ("query", "key", "value", "output.dense")
        if attention == "attention.attention"
        else ("q_proj", "k_proj", "v_proj", "o_proj")
    )
    for i in range(depth):
        b, layer = f"blocks.{i}.", f"encoder.layer.{i}."
        for part in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
            for kind in ("weight", "bias"):
                hf[f"{layer}{part}.{kind}"] = state[f"{b}{part}.{kind}"]
        hf[f"{layer}layer_scale1.lambda1"] = state[f"{b}ls1.gamma"]
        hf[f"{layer}layer_scale2.lambda1"] = state[f"{b}ls2.gamma"]
        for kind in ("weight", "bias"):
            for name, part in zip(names[:3], state[f"{b}attn.qkv.{kind}"].chunk(3, dim=0)):
                hf[f"{layer}{attention}.{name}.{kind}"] = part
            output = "attention.output.dense" if attention == "attention.attention" else "attention.o_proj"
            hf[f"{layer}{output}.{kind}"] = state[f"{b}attn.proj.{kind}"]
    return hf


@functools.cache
def timm_state(name: str) -> dict[str, torch.Tensor]:
    """Random weights for encoder ``name``'s architecture under timm's names (views of one shared buffer)."""
    return shared_random_state_like(CHECKPOINT_ARCHITECTURES[name](), seed=len(name))


def file_state(name: str) -> dict[str, torch.Tensor]:
    """What encoder ``name``'s published weights file holds: timm's names, or transformers' for Phikon-v2."""
    state = timm_state(name)
    return as_transformers_dinov2(state, depth=24) if name == "phikon-v2" else dict(state)


@pytest.mark.parametrize("name", ["conch-v1_5", "virchow2", "h-optimus-0", "phikon-v2"])
def test_each_new_checkpoint_encoder_loads_random_weights_strictly_into_its_model(name, tmp_path):
    path = tmp_path / ("model.bin" if name == "phikon-v2" else "pytorch_model.bin")
    torch.save(file_state(name), path)

    encoder = create_encoder(name, checkpoint=path, device="cpu")

    loaded = encoder.model.state_dict()
    expected = timm_state(name)
    if name == "virchow2":  # the head wraps the ViT the file loads into
        loaded = {key.removeprefix("vit."): value for key, value in loaded.items()}
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[key], value) for key, value in expected.items())
    assert encoder.dim == MODEL_CARD_FACTS[name].dim and not encoder.model.training
    assert encoder.weights_path == str(path.resolve())
    assert encoder.dtype_name == "float32"  # on the CPU; on CUDA the spec's dtype
    if name == "phikon-v2":
        assert encoder.autocast_dtype is None  # float32 on CUDA too, as TRIDENT runs it


def test_phikon_v2_loads_a_checkpoint_saved_by_transformers_5_names_too(tmp_path):
    torch.save(as_transformers_dinov2(timm_state("phikon-v2"), depth=24, attention="attention"), tmp_path / "v5.bin")

    encoder = create_encoder("phikon-v2", checkpoint=tmp_path / "v5.bin", device="cpu")

    qkv = encoder.model.state_dict()["blocks.23.attn.qkv.weight"]
    assert torch.equal(qkv, timm_state("phikon-v2")["blocks.23.attn.qkv.weight"])


def test_conch_v1_5_resamples_a_position_embedding_of_another_grid_as_tridents_loader_does(tmp_path):
    state = file_state("conch-v1_5")
    grid14 = torch.randn(1, 1 + 14 * 14, 1024, generator=torch.Generator().manual_seed(3))
    state["trunk.pos_embed"] = grid14
    torch.save(state, tmp_path / "pytorch_model_vision.bin")

    encoder = create_encoder("conch-v1_5", checkpoint=tmp_path / "pytorch_model_vision.bin", device="cpu")

    expected = timm.layers.resample_abs_pos_embed(
        grid14, new_size=[28, 28], num_prefix_tokens=1, interpolation="bilinear", antialias=False
    )
    assert torch.equal(encoder.model.state_dict()["trunk.pos_embed"], expected)
    assert expected.shape == (1, 1 + 28 * 28, 1024)


# Per encoder, a tensor of its file: (its name in the file, the name the error gives for a wrong shape).
CORRUPTED = {
    "uni": ("blocks.3.attn.qkv.weight", "blocks.3.attn.qkv.weight"),
    "uni2-h": ("blocks.3.mlp.fc1.weight", "blocks.3.mlp.fc1.weight"),
    "conch-v1_5": ("attn_pool_contrast.to_kv.weight", "attn_pool_contrast.to_kv.weight"),
    "virchow2": ("blocks.5.mlp.fc2.weight", "blocks.5.mlp.fc2.weight"),
    "h-optimus-0": ("reg_token", "reg_token"),
    "phikon-v2": ("encoder.layer.7.mlp.fc1.weight", "blocks.7.mlp.fc1.weight"),
}


@pytest.mark.parametrize("fault", ["missing", "unknown", "shape"])
@pytest.mark.parametrize("name", sorted(CHECKPOINT_ARCHITECTURES))
def test_a_checkpoint_missing_a_tensor_with_an_unknown_one_or_a_wrong_shape_fails_naming_the_file(
    name, fault, tmp_path
):
    key, shape_error_key = CORRUPTED[name]
    state = file_state(name)
    if fault == "missing":
        del state[key]
    elif fault == "unknown":
        state["head.extra.weight"] = torch.zeros(3)
    else:
        state[key] = torch.zeros(*state[key].shape[:-1], state[key].shape[-1] + 1)
    path = tmp_path / f"{fault}.bin"
    torch.save(state, path)

    with pytest.raises(EncoderWeightsError) as error:
        create_encoder(name, checkpoint=path, device="cpu")

    message = str(error.value)
    assert str(path) in message and "encoder.checkpoint" in message
    assert {"missing": key, "unknown": "head.extra.weight", "shape": shape_error_key}[fault] in message


def test_a_conch_position_embedding_on_no_square_grid_fails_naming_the_file(tmp_path):
    state = file_state("conch-v1_5")
    state["trunk.pos_embed"] = torch.zeros(1, 1 + 150, 1024)
    torch.save(state, tmp_path / "odd.bin")

    with pytest.raises(EncoderWeightsError, match=f"{tmp_path / 'odd.bin'}.*trunk.pos_embed is \\(1, 151, 1024\\)"):
        create_encoder("conch-v1_5", checkpoint=tmp_path / "odd.bin", device="cpu")


# ------------------------------------------------------------------ architectures as their authors build them


def test_virchow2_is_vit_h14_with_four_register_tokens_and_swiglu_632m_parameters():
    vit = virchow2_vit()

    assert sum(p.numel() for p in vit.parameters()) == 631_239_424  # the card's "632 million"
    assert (vit.num_features, len(vit.blocks), vit.num_prefix_tokens, vit.num_reg_tokens) == (1280, 32, 5, 4)
    mlp = vit.blocks[0].mlp
    assert isinstance(mlp, timm.layers.GluMlp) and isinstance(mlp.act, torch.nn.SiLU) and not mlp.gate_last
    assert mlp.fc1.out_features == int(1280 * 5.3375) and vit.global_pool == ""


def test_h_optimus_0_has_exactly_the_tensors_of_bioptimus_release_parameters():
    release = dict(  # github.com/bioptimus/releases, models/h-optimus/v0/README.md
        patch_size=14,
        embed_dim=1536,
        depth=40,
        num_heads=24,
        init_values=1e-05,
        mlp_ratio=5.33334,
        mlp_layer=functools.partial(timm.layers.mlp.GluMlp, act_layer=torch.nn.SiLU, gate_last=False),
        act_layer=torch.nn.SiLU,
        reg_tokens=4,
        no_embed_class=True,
        img_size=224,
        num_classes=0,
        in_chans=3,
    )
    with torch.device("meta"):
        official = timm.models.VisionTransformer(**release)
    ours = h_optimus_0_architecture()

    shapes = {key: value.shape for key, value in ours.state_dict().items()}
    assert shapes == {key: value.shape for key, value in official.state_dict().items()}
    assert sum(p.numel() for p in ours.parameters()) == 1_134_774_272  # "1.1 billion parameters"
    assert ours.global_pool == "token" and not ours.dynamic_img_size


def test_conch_v1_5_and_phikon_v2_trunks_are_vit_l16_with_layerscale():
    conch, phikon = conch_v1_5_architecture(), phikon_v2_architecture()

    assert conch.trunk.patch_embed.grid_size == (28, 28) and conch.trunk.pos_embed.shape == (1, 785, 1024)
    assert phikon.patch_embed.grid_size == (14, 14) and phikon.pos_embed.shape == (1, 197, 1024)
    for vit in (conch.trunk, phikon):
        assert (vit.num_features, len(vit.blocks), vit.num_prefix_tokens) == (1024, 24, 1)
        assert vit.blocks[0].ls1.gamma.shape == (1024,) and vit.norm.eps == 1e-6
    pooler = conch.attn_pool_contrast
    assert (pooler.query.shape, pooler.heads, pooler.to_kv.in_features) == ((1, 768), 8, 1024)


# ------------------------------------------------------------------ heads and conversions, numerically


def small_vit(**kwargs) -> timm.models.VisionTransformer:
    torch.manual_seed(0)
    model = timm.models.VisionTransformer(embed_dim=32, depth=2, num_heads=4, num_classes=0, **kwargs).eval()
    for parameter in model.parameters():  # no zero inits: every tensor matters
        parameter.data.normal_(0, 0.2)
    return model


def test_virchow2_head_is_the_class_token_beside_the_mean_of_the_patch_tokens_without_registers():
    vit = small_vit(
        img_size=28,
        patch_size=14,
        reg_tokens=4,
        global_pool="",
        mlp_layer=timm.layers.SwiGLUPacked,
        act_layer=torch.nn.SiLU,
        init_values=1e-5,
    )
    images = torch.randn(3, 3, 28, 28, generator=torch.Generator().manual_seed(1))

    with torch.inference_mode():
        output = vit(images)  # the model card's `output = model(image)`: (B, 1 + 4 + 4, 32)
        features = ClassAndMeanPatchTokens(vit)(images)

    assert output.shape == (3, 9, 32)
    torch.testing.assert_close(features, torch.cat([output[:, 0], output[:, 5:].mean(1)], dim=-1), rtol=0, atol=0)
    assert not torch.allclose(features[:, 32:], output[:, 1:].mean(1))  # the register tokens are left out


def trident_attentional_pooler(pooler: AttentionalPooler, x: torch.Tensor) -> torch.Tensor:
    """TRIDENT's AttentionalPooler.forward (conchv1_5.py), transcribed with einsum instead of einops."""
    x = x[:, None]  # b n d -> b 1 n d
    q = pooler.query[None, None].expand(x.shape[0], x.shape[1], -1, -1)
    x = pooler.ln_k(x)
    q = pooler.ln_q(q)
    q = pooler.to_q(q)
    k, v = pooler.to_kv(x).chunk(2, dim=-1)

    def split(t):  # b t n (h d) -> b h t n d
        return t.unflatten(-1, (pooler.heads, -1)).permute(0, 3, 1, 2, 4)

    q, k, v = split(q), split(k), split(v)
    q = q * pooler.scale
    sim = torch.einsum("...id,...jd->...ij", q, k)
    sim = sim - sim.amax(dim=-1, keepdim=True)
    out = torch.einsum("...ij,...jd->...id", sim.softmax(dim=-1), v)
    out = out.permute(0, 2, 3, 1, 4).flatten(3)  # b h t n d -> b t n (h d)
    return pooler.to_out(out).squeeze(dim=1)


def test_conch_tower_pools_the_trunks_tokens_as_tridents_conch_v1_5_does():
    trunk = small_vit(img_size=32, patch_size=16, init_values=1.0)
    tower = ConchVisionTower(trunk, embed_dim=24, pooler_heads=4).eval()
    for parameter in tower.parameters():
        parameter.data.normal_(0, 0.2)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))

    with torch.inference_mode():
        tokens = trunk.forward_features(images)
        expected = tower.ln_contrast(trident_attentional_pooler(tower.attn_pool_contrast, tokens)[:, 0])
        features = tower(images)

    assert features.shape == (2, 24) and tower.num_features == 24
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)


def test_resample_trunk_pos_embed_keeps_a_matching_grid_and_refuses_another_width():
    trunk = small_vit(img_size=32, patch_size=16)
    same = {"trunk.pos_embed": torch.randn(1, 5, 32)}

    assert resample_trunk_pos_embed(same, trunk)["trunk.pos_embed"] is same["trunk.pos_embed"]
    with pytest.raises(ValueError, match="square grid of 32-d"):
        resample_trunk_pos_embed({"trunk.pos_embed": torch.randn(1, 17, 16)}, trunk)


@pytest.mark.parametrize("attention", ["attention.attention", "attention"])
def test_dinov2_conversion_gives_timm_the_features_transformers_computes(attention):
    transformers = pytest.importorskip("transformers")
    config = transformers.Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, patch_size=4, image_size=16, layerscale_value=0.5
    )
    hf = transformers.Dinov2Model(config).eval()
    torch.manual_seed(0)
    for parameter in hf.parameters():
        parameter.data.normal_(0, 0.2)
    state = hf.state_dict()
    assert (
        "encoder.layer.0.attention.q_proj.weight" in state
        or "encoder.layer.0.attention.attention.query.weight" in state
    )
    if attention == "attention.attention" and "encoder.layer.0.attention.q_proj.weight" in state:
        state = {  # the published file's transformers-4 names
            key.replace("attention.q_proj", "attention.attention.query")
            .replace("attention.k_proj", "attention.attention.key")
            .replace("attention.v_proj", "attention.attention.value")
            .replace("attention.o_proj", "attention.output.dense"): value
            for key, value in state.items()
        }
    vit = timm.models.VisionTransformer(
        img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=4, init_values=1.0, num_classes=0
    ).eval()
    vit.load_state_dict(dinov2_transformers_to_timm(state, depth=2), strict=True)
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))

    with torch.inference_mode():
        expected = hf(pixel_values=images).last_hidden_state[:, 0, :]  # the model card's feature
        features = vit(images)

    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)


def test_dinov2_conversion_refuses_a_tensor_it_does_not_place_and_names_a_missing_one():
    state = as_transformers_dinov2(
        shared_random_state_like(small_vit(img_size=16, patch_size=4, init_values=1.0), 0), 2
    )

    with pytest.raises(ValueError, match="e.g. \\['encoder.layer.2.norm1.weight'\\]"):
        dinov2_transformers_to_timm({**state, "encoder.layer.2.norm1.weight": torch.zeros(32)}, depth=2)
    del state["encoder.layer.1.layer_scale2.lambda1"]
    with pytest.raises(ValueError, match="no tensor 'encoder.layer.1.layer_scale2.lambda1'"):
        dinov2_transformers_to_timm(state, depth=2)


# ------------------------------------------------------------------ EfficientNet-Lite1 and -Lite2, real weights


@pytest.mark.parametrize("name", ["efficientnet-lite1", "efficientnet-lite2"])
def test_efficientnet_lite_package_weights_classify_chelsea_and_give_the_classifiers_pooled_features(
    name, one_torch_thread
):
    classifier = efficientnet_lite_imagenet(name)
    encoder = create_encoder(name, device="cpu")
    patch = torch.from_numpy(chelsea()).permute(2, 0, 1)

    with torch.inference_mode():
        image = encoder.transform(chelsea())[None]
        probabilities = classifier(image).softmax(dim=-1)[0]
        pooled = classifier.forward_head(classifier.forward_features(image), pre_logits=True)
        features = encoder.embed(encoder.resize_crop(patch)[None])

    assert int(probabilities.argmax()) == EGYPTIAN_CAT and float(probabilities[EGYPTIAN_CAT]) > 0.3
    assert features.shape == (1, 1280) and image.shape[-1] == encoder.input_px == VARIANTS[name].input_px
    torch.testing.assert_close(features, pooled, atol=1e-4, rtol=1e-4)
    assert Path(encoder.weights_path).parent.parent.name == VARIANTS[name].module


@pytest.mark.parametrize("name", ["efficientnet-lite1", "efficientnet-lite2"])
def test_efficientnet_lite_features_are_bit_identical_whole_or_in_the_specs_pieces(name, one_torch_thread):
    """As tests/test_embedding.py checks Lite0: the spec's cpu_forward_rows must not change a bit. 33 rows: 16 + 17."""
    encoder = create_encoder(name, device="cpu")
    rows = encoder_spec(name).cpu_forward_rows
    px = encoder.input_px
    images = torch.randint(0, 256, (33, 3, px, px), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))

    pieces = embedding.embed_in_pieces(encoder, images, rows)

    assert embedding.forward_pieces(33, rows) == [16, 17]
    np.testing.assert_array_equal(pieces.view(np.uint32), encoder.embed(images).numpy().view(np.uint32))
