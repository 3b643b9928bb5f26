"""The encoder registry: exact architectures, strict weight loading, clear errors, and real ImageNet weights."""

from __future__ import annotations

import dataclasses
import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy
import timm
import torch
from skimage.data import chelsea

from mosare.config import ConfigError, check_encoder_weights_configured
from mosare.features.encoder_plugins.efficientnet_lite import efficientnet_lite_imagenet
from mosare.features.encoder_plugins.uni import uni2_h_architecture, uni_architecture
from mosare.features.encoder_specs import register_encoder, registered_specs, unregister_encoder
from mosare.features.encoders import EncoderWeightsError, create_encoder

EGYPTIAN_CAT = 285


def shared_random_state_like(model: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Random weights for a huge model as overlapping views of one random buffer, each shifted by its index.

    torch.save keeps the sharing, so even UNI2-h's 681M parameters cost one ~50 MB buffer on disk and in
    memory, while every key and shape is exact and no two tensors hold the same values.
    """
    shapes = [(key, value.shape) for key, value in model.state_dict().items()]
    largest = max(shape.numel() for _, shape in shapes)
    buffer = torch.randn(largest + len(shapes), generator=torch.Generator().manual_seed(seed)) * 0.02
    return {key: buffer[index : index + shape.numel()].view(shape) for index, (key, shape) in enumerate(shapes)}


def reference_model(architecture: torch.nn.Module, state: dict[str, torch.Tensor]) -> torch.nn.Module:
    architecture.load_state_dict(state, strict=True, assign=True)
    return architecture.eval()


@pytest.fixture(scope="module")
def uni_weights(tmp_path_factory):
    """Random UNI weights saved as pytorch_model.bin and model.safetensors, plus their output on a tiny input."""
    folder = tmp_path_factory.mktemp("uni")
    state = shared_random_state_like(uni_architecture(), seed=0)
    torch.save(state, folder / "pytorch_model.bin")
    # safetensors cannot store shared tensors; its numpy writer serialises each view's values (1.2 GB).
    safetensors.numpy.save_file({key: value.numpy() for key, value in state.items()}, str(folder / "model.safetensors"))
    tiny = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))  # 2x2 patch tokens: cheap
    with torch.inference_mode():
        expected = reference_model(uni_architecture(), state)(tiny)
    yield {"folder": folder, "state": state, "tiny": tiny, "expected": expected}
    for path in folder.iterdir():
        path.unlink()


@pytest.mark.parametrize("filename", ["pytorch_model.bin", "model.safetensors"])
def test_uni_loads_random_weights_strictly_from_bin_and_safetensors(uni_weights, filename):
    encoder = create_encoder("uni", checkpoint=uni_weights["folder"] / filename, device="cpu")

    assert (encoder.dim, encoder.input_px) == (1024, 224)
    assert encoder.mean == (0.485, 0.456, 0.406) and encoder.std == (0.229, 0.224, 0.225)
    assert encoder.autocast_dtype == torch.float16
    assert not encoder.model.training
    loaded = encoder.model.state_dict()
    assert all(torch.equal(loaded[key], value) for key, value in uni_weights["state"].items())
    with torch.inference_mode():
        assert torch.equal(encoder.model(uni_weights["tiny"]), uni_weights["expected"])


def test_uni_is_timm_vit_large_patch16_with_mahmoodlab_settings():
    model = uni_architecture()

    assert sum(p.numel() for p in model.parameters()) == 303_350_784
    assert model.patch_embed.patch_size == (16, 16) and model.num_features == 1024
    assert len(model.blocks) == 24 and model.blocks[0].ls1.gamma.shape == (1024,)
    assert model.dynamic_img_size


def test_uni2_h_is_vit_giant_with_swiglu_and_eight_register_tokens():
    model = uni2_h_architecture()

    assert sum(p.numel() for p in model.parameters()) == 681_394_176
    assert model.num_features == 1536 and len(model.blocks) == 24
    assert model.patch_embed.patch_size == (14, 14)
    assert model.num_reg_tokens == 8 and model.no_embed_class
    mlp = model.blocks[0].mlp  # SwiGLUPacked: a GluMlp with SiLU whose gate is the first half of fc1
    assert isinstance(mlp, timm.layers.GluMlp) and isinstance(mlp.act, torch.nn.SiLU) and not mlp.gate_last
    assert model.blocks[0].mlp.fc1.out_features == 2 * 4096


def test_uni2_h_loads_random_weights_strictly_and_prefers_bfloat16(tmp_path):
    state = shared_random_state_like(uni2_h_architecture(), seed=2)
    torch.save(state, tmp_path / "pytorch_model.bin")

    encoder = create_encoder("uni2-h", checkpoint=tmp_path / "pytorch_model.bin", device="cpu")

    # No forward pass: ViT-g costs seconds per image on a CPU; every loaded tensor equal to the saved one is the proof.
    assert encoder.dim == 1536 and encoder.autocast_dtype == torch.bfloat16
    loaded = encoder.model.state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[key], value) for key, value in state.items())


def test_uni_weights_missing_a_key_fail_naming_the_key_and_where_weights_come_from(tmp_path):
    state = shared_random_state_like(uni2_h_architecture(), seed=4)
    del state["blocks.3.attn.qkv.weight"]
    torch.save(state, tmp_path / "partial.bin")

    with pytest.raises(EncoderWeightsError) as error:
        create_encoder("uni2-h", checkpoint=tmp_path / "partial.bin", device="cpu")

    message = str(error.value)
    assert "blocks.3.attn.qkv.weight" in message and str(tmp_path / "partial.bin") in message
    assert "huggingface.co/MahmoodLab/UNI2-h" in message and "encoder.checkpoint" in message


def test_uni_weights_of_another_shape_fail_with_a_size_mismatch(tmp_path):
    state = shared_random_state_like(uni_architecture(), seed=5)
    state["pos_embed"] = torch.zeros(1, 197, 768)  # a ViT-B/16 checkpoint's position embedding
    torch.save(state, tmp_path / "vit_base.bin")

    with pytest.raises(EncoderWeightsError, match="size mismatch for pos_embed.*MahmoodLab/UNI"):
        create_encoder("uni", checkpoint=tmp_path / "vit_base.bin", device="cpu")


@pytest.mark.parametrize("checkpoint", [None, "missing/pytorch_model.bin"])
def test_uni_without_its_weights_file_says_it_is_access_gated_and_names_the_config_key(tmp_path, checkpoint):
    path = None if checkpoint is None else tmp_path / checkpoint

    with pytest.raises(EncoderWeightsError) as error:
        create_encoder("uni", checkpoint=path, device="cpu")

    message = str(error.value)
    assert "access-gated" in message and "huggingface.co/MahmoodLab/UNI" in message
    assert "encoder.checkpoint" in message and "config.yaml" in message
    if path is not None:
        assert str(path) in message


def test_efficientnet_lite0_package_weights_classify_chelsea_as_an_egyptian_cat():
    classifier = efficientnet_lite_imagenet("efficientnet-lite0")
    encoder = create_encoder("efficientnet-lite0", device="cpu")
    image = encoder.transform(chelsea())[None]

    with torch.inference_mode():
        probabilities = classifier(image).softmax(dim=-1)[0]
        pooled = classifier.forward_head(classifier.forward_features(image), pre_logits=True)
        patch = torch.from_numpy(chelsea()).permute(2, 0, 1)
        features = encoder.embed(encoder.resize_crop(patch)[None])

    assert int(probabilities.argmax()) == EGYPTIAN_CAT
    assert float(probabilities[EGYPTIAN_CAT]) > 0.3
    # The encoder's features are exactly the classifier's pooled 1280-d input, from the same weights.
    assert features.shape == (1, 1280) and encoder.dim == 1280
    torch.testing.assert_close(features, pooled, atol=1e-4, rtol=1e-4)


def test_efficientnet_lite0_rejects_a_checkpoint_because_its_weights_ship_with_the_package(tmp_path):
    with pytest.raises(EncoderWeightsError, match="remove 'encoder.checkpoint'"):
        create_encoder("efficientnet-lite0", checkpoint=tmp_path / "x.pth", device="cpu")


def test_timm_encoder_loads_a_classification_checkpoint_as_a_pooled_feature_extractor(tmp_path):
    classifier = timm.create_model("mobilenetv3_small_050", num_classes=1000).eval()
    torch.save({"state_dict": classifier.state_dict()}, tmp_path / "mobilenet.pth")

    encoder = create_encoder("timm:mobilenetv3_small_050", checkpoint=tmp_path / "mobilenet.pth", device="cpu")
    patches = torch.from_numpy(np.full((2, 3, 256, 256), 200, dtype=np.uint8))
    with torch.inference_mode():
        expected = classifier.forward_head(classifier.forward_features(encoder.transform(patches)), pre_logits=True)
        features = encoder.embed(encoder.resize_crop(patches))

    assert features.shape == (2, encoder.dim) and encoder.input_px == 224
    torch.testing.assert_close(features, expected)


def test_unknown_encoder_name_lists_the_registry():
    with pytest.raises(ValueError, match="efficientnet-lite0.*timm:<architecture>"):
        create_encoder("uni3", device="cpu")


def test_timm_encoder_without_checkpoint_names_the_config_key():
    with pytest.raises(EncoderWeightsError, match="encoder.checkpoint"):
        create_encoder("timm:resnet18", device="cpu")


def test_preprocessing_resizes_a_256px_patch_to_the_encoder_input(tmp_path):
    encoder = create_encoder("efficientnet-lite0", device="cpu")
    patch = np.zeros((256, 256, 3), dtype=np.uint8)

    image = encoder.transform(patch)

    assert image.shape == (3, 224, 224)
    np.testing.assert_allclose(image.numpy(), -1.0)  # black under mean/std 0.5
    assert Path(encoder.weights_path).name == "efficientnet-lite0-57934424.pth"


TOY_PLUGIN = '''"""A toy encoder for the tests: everything about it is in this one file."""

from mosare.features.encoder_specs import EncoderSpec, register_encoder

register_encoder(
    EncoderSpec(
        name="toy-mean-colour",
        description="each patch's mean colour (a test encoder)",
        builder=f"{__name__}:build",
        dim=3,
        input_px=32,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        interpolation="bilinear",
        cuda_dtype="float16",
        weights="checkpoint",
        weights_hint="any file: the toy has no weights",
        weights_mb=1,
        mem_mb=1234,
        gpus=0,
        threads=1,
        decode_workers=1,
    )
)


def build(spec, weights):
    import torch

    class MeanColour(torch.nn.Module):
        num_features = 3

        def forward(self, images):
            return images.mean(dim=(2, 3))

    return MeanColour().eval(), spec
'''


def test_the_encoder_registry_loads_without_torch_or_timm():
    code = (
        "import sys; from mosare.features.encoder_specs import registered_specs, encoder_weights_file; "
        "names = list(registered_specs()); encoder_weights_file('efficientnet-lite0'); "
        "print(names, 'torch' in sys.modules, 'timm' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split("]")[1].split() == ["False", "False"]
    assert "efficientnet-lite0" in result.stdout


def test_a_registered_encoder_builds_through_its_spec_and_checks_its_width(tmp_path, monkeypatch):
    (tmp_path / "toy_plugin.py").write_text(TOY_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = importlib.import_module("toy_plugin") and registered_specs()["toy-mean-colour"]
    try:
        weights = tmp_path / "toy.bin"
        weights.write_bytes(b"toy")
        check_encoder_weights_configured({"encoder": {"name": "toy-mean-colour", "checkpoint": str(weights)}})
        with pytest.raises(ConfigError, match="toy-mean-colour.*needs a local weights file.*any file: the toy"):
            check_encoder_weights_configured({"encoder": {"name": "toy-mean-colour", "checkpoint": None}})

        encoder = create_encoder("toy-mean-colour", checkpoint=weights, device="cpu")
        images = torch.full((2, 3, 32, 32), 51, dtype=torch.uint8)
        np.testing.assert_allclose(encoder.embed(images).numpy(), 0.2, rtol=1e-6)
        assert (encoder.dim, encoder.input_px, encoder.weights_path) == (3, 32, str(weights.resolve()))

        unregister_encoder("toy-mean-colour")
        register_encoder(dataclasses.replace(spec, dim=5))
        with pytest.raises(ValueError, match="spec says 5-d features, the model gives 3"):
            create_encoder("toy-mean-colour", checkpoint=weights, device="cpu")
        with pytest.raises(ValueError, match="registered twice"):
            register_encoder(spec)
    finally:
        unregister_encoder("toy-mean-colour")
        sys.modules.pop("toy_plugin", None)
