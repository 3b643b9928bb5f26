"""Specifications of the full models behind `build_model`: MoSARe, its ablations and the baselines."""

from __future__ import annotations

import io

import pytest
import torch

from mosare.model.factory import ModelDims, build_model
from mosare.model.specs import model_specs

MODEL_NAMES = tuple(model_specs())

DIMS = ModelDims(wsi_dim=12, rna_genes=30, text_dim=10, local_tokens=4, hidden=16)
# small sizes; unknown keys (lr, epochs) are part of a real train section and must be ignored
HPARAMS = {
    "lr": 1e-4,
    "epochs": 3,
    "prototypes_per_class": 2,
    "contrastive_warmup_epochs": 2,
    "mcl_queue_per_class": 16,
    "rna_token_dim": 8,
    "rna_attention_hidden": 8,
    "abmil_attention_hidden": 8,
    "rna_hidden": 16,
}
MOSARE_NAMES = [name for name in MODEL_NAMES if name.startswith("mosare")]
# modality index -> the raw inputs that belong to it
MODALITY_INPUTS = {0: ("wsi_patches", "wsi_local"), 1: ("rna",), 2: ("text_global", "text_local")}
USES_MODALITY = {
    "abmil": {0},
    "rna_mlp": {1},
    "report_mlp": {2},
    "late_fusion": {0, 1, 2},
    **{name: {0, 1, 2} for name in MOSARE_NAMES},
}


def make_batch(patients: int, seed: int = 0, present: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    patches = 7
    patch_mask = torch.arange(patches) < torch.randint(1, patches + 1, (patients, 1), generator=generator)
    if present is None:
        present = torch.ones(patients, 3, dtype=torch.bool)
    batch = {
        "wsi_patches": torch.randn(patients, patches, DIMS.wsi_dim, generator=generator) * patch_mask.unsqueeze(-1),
        "wsi_patch_mask": patch_mask & present[:, :1],
        "wsi_local": torch.randn(patients, DIMS.local_tokens, DIMS.wsi_dim, generator=generator),
        "rna": torch.randn(patients, DIMS.rna_genes, generator=generator),
        "text_global": torch.randn(patients, DIMS.text_dim, generator=generator),
        "text_local": torch.randn(patients, DIMS.local_tokens, DIMS.text_dim, generator=generator),
        "present": present,
        "label": torch.randint(0, 3, (patients,), generator=generator),
    }
    for modality, keys in MODALITY_INPUTS.items():
        for key in keys:
            shape = (patients,) + (1,) * (batch[key].dim() - 1)
            batch[key] = batch[key] * present[:, modality].reshape(shape)
    return batch


def model(name: str, seed: int = 0, **hparams: float) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(name, DIMS, n_classes=3, hparams={**HPARAMS, **hparams})


pytestmark = pytest.mark.usefixtures("one_torch_thread")


MIXED_PRESENCE = torch.tensor(
    [[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=torch.bool
)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_gives_finite_logits_and_loss_for_every_patient_whatever_is_missing(name):
    net = model(name)
    batch = make_batch(8, present=MIXED_PRESENCE)
    outputs = net(batch)
    total, terms = net.compute_loss(batch, outputs, epoch=5)
    assert outputs["logits"].shape == (8, 3)
    assert torch.isfinite(outputs["logits"]).all()
    assert torch.isfinite(total) and terms["total"] == pytest.approx(float(total.detach()))


def test_unknown_model_name_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="late_fusion"):
        build_model("mosaic", DIMS, 3, {})


@pytest.mark.parametrize("name", ["mosare", "abmil", "late_fusion"])
def test_padded_patches_do_not_change_the_prediction(name):
    net = model(name).eval()
    batch = make_batch(6)
    changed = dict(batch, wsi_patches=batch["wsi_patches"].masked_fill(~batch["wsi_patch_mask"].unsqueeze(-1), 9.0))
    assert torch.equal(net(batch)["logits"], net(changed)["logits"])


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("missing", [0, 1, 2])
def test_a_missing_modalitys_input_has_no_effect_on_any_output(name, missing):
    net = model(name).eval()
    present = MIXED_PRESENCE.clone()
    present[:, missing] = False
    present[~present.any(dim=1), (missing + 1) % 3] = True
    batch = make_batch(8, present=present)
    changed = dict(batch)
    for key in MODALITY_INPUTS[missing]:
        changed[key] = torch.randn_like(batch[key]) * 100
    changed["wsi_patch_mask"] = batch["wsi_patch_mask"] if missing else torch.ones_like(batch["wsi_patch_mask"])
    before, after = net(batch), net(changed)
    for key in before:
        assert torch.equal(before[key], after[key]), key


@pytest.mark.parametrize("name", ["abmil", "rna_mlp", "report_mlp"])
def test_single_modality_baselines_read_only_their_own_modality(name):
    net = model(name).eval()
    batch, other = make_batch(4, seed=0), make_batch(4, seed=1)
    own = USES_MODALITY[name]
    mixed = dict(batch)
    for modality, keys in MODALITY_INPUTS.items():
        if modality not in own:
            mixed.update({key: other[key] for key in keys})
    assert torch.equal(net(batch)["logits"], net(mixed)["logits"])


def test_a_missing_modality_is_filled_from_the_present_ones_only_with_reconstruction():
    present = torch.tensor([[1, 1, 0]] * 4, dtype=torch.bool)
    batch = make_batch(4, present=present)
    changed_wsi = dict(batch, wsi_local=batch["wsi_local"] + 1.0)
    with_reconstruction = model("mosare").eval()
    outputs = with_reconstruction(batch)
    reconstructed_text = outputs["global_reconstruction"][:, 2]
    assert reconstructed_text.abs().sum() > 0
    assert not torch.allclose(
        with_reconstruction(changed_wsi)["local_reconstruction"][:, 2], outputs["local_reconstruction"][:, 2]
    )
    zero_fill = model("mosare_no_reconstruction").eval()
    assert "global_reconstruction" not in zero_fill(batch)


def test_zero_fill_ablation_turns_a_missing_modality_into_one_learned_constant():
    # mosare_no_reconstruction feeds exact zeros for a missing modality into the final MoE, whose experts and gate
    # have biases: the modality's share of the logits is then the same non-zero vector for every patient who lacks
    # it, whatever the patient's other modalities (docs/model.md, deviation 8).
    net = model("mosare_no_reconstruction").eval()
    present = MIXED_PRESENCE
    batch = make_batch(8, present=present)
    with torch.no_grad():
        outputs = net(batch)
        missing = ~present
        assert torch.equal(outputs["global_features"][missing], torch.zeros_like(outputs["global_features"][missing]))
        assert torch.equal(outputs["local_features"][missing], torch.zeros_like(outputs["local_features"][missing]))
        zero_token, _ = net.final_experts(torch.zeros(1, 1, DIMS.hidden))
        constant = net.classifier.weight @ (2 * zero_token[0, 0])  # the zero local and the zero global token
        shares = outputs["modality_logits"][missing]  # (missing pairs, classes)
    assert constant.abs().sum() > 0
    torch.testing.assert_close(shares, constant.expand_as(shares), rtol=0, atol=1e-6)
    # With reconstruction, a missing modality's share depends on the patient (it is reconstructed from the others).
    with torch.no_grad():
        reconstructed = model("mosare").eval()(batch)["modality_logits"][missing]
    assert not torch.allclose(reconstructed, reconstructed[:1].expand_as(reconstructed), atol=1e-4)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_parameter_learns_after_the_contrastive_warmup(name):
    # Default hyper-parameters (one local token kept): every parameter, the attention's query and key projections
    # at both levels included, gets a non-zero gradient.
    net = model(name).train()
    batch = make_batch(16)
    for epoch in (0, 5):  # the first step fills the MCL queue, the second trains with every term on
        net.zero_grad()
        total, _ = net.compute_loss(batch, net(batch), epoch=epoch)
        total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    still = [param_name for param_name, p in net.named_parameters() if not p.grad.any()]
    assert not still
    if name.startswith("mosare"):
        query_key = [n for n, _ in net.named_parameters() if ".attention.query." in n or ".attention.key_value." in n]
        assert {n.split(".")[0] for n in query_key} == {"global_attention", "local_attention"}


@pytest.mark.parametrize("name", ["mosare", "mosare_no_reconstruction", "mosare_no_moe"])
def test_contrastive_terms_are_off_during_warmup_and_on_after_it(name):
    net = model(name).train()
    batch = make_batch(16)
    _, warming = net.compute_loss(batch, net(batch), epoch=1)
    _, trained = net.compute_loss(batch, net(batch), epoch=2)
    assert warming["symcl"] == 0.0 and warming["mcl"] == 0.0
    assert trained["symcl"] > 0.0 and trained["mcl"] > 0.0


def test_without_mcl_there_is_no_mcl_term_and_no_prototype_buffers():
    net = model("mosare_no_mcl").train()
    batch = make_batch(8)
    _, terms = net.compute_loss(batch, net(batch), epoch=5)
    assert "mcl" not in terms and terms["symcl"] > 0
    assert not any("prototypes" in key for key in net.state_dict())


def test_mcl_prototypes_move_in_training_and_stay_put_in_evaluation():
    net = model("mosare").train()
    batch = make_batch(16)
    for epoch in (0, 2):
        net.compute_loss(batch, net(batch), epoch=epoch)
    after_training = net.state_dict()["mcl.prototypes"].clone()
    assert net.mcl.prototypes_initialised.all()
    net.compute_loss(batch, net(batch), epoch=3)
    assert not torch.equal(after_training, net.mcl.prototypes)
    net.eval()
    frozen = net.mcl.prototypes.clone(), net.mcl.queue.clone()
    with torch.no_grad():
        net.compute_loss(batch, net(batch), epoch=4)
    assert torch.equal(frozen[0], net.mcl.prototypes) and torch.equal(frozen[1], net.mcl.queue)


@pytest.mark.parametrize("name", ["mosare", "late_fusion"])
def test_checkpoint_round_trips_through_a_weights_only_load(name):
    trained = model(name, seed=0).train()
    batch = make_batch(16)
    for epoch in (0, 3):
        total, _ = trained.compute_loss(batch, trained(batch), epoch=epoch)
        total.backward()
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    restored = model(name, seed=1)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    trained.eval(), restored.eval()
    assert torch.equal(trained(batch)["logits"], restored(batch)["logits"])
    if name == "mosare":
        assert torch.equal(trained.mcl.prototypes, restored.mcl.prototypes)


def test_mosare_learns_a_separable_task_with_modalities_missing():
    torch.manual_seed(0)
    patients = 24
    labels = torch.arange(patients) % 3
    present = MIXED_PRESENCE.repeat(3, 1)
    batch = make_batch(patients, present=present)
    batch["label"] = labels
    signal = torch.nn.functional.one_hot(labels, 3).float() * 3.0  # class shows in the first features of each input
    batch["wsi_patches"][..., :3] += signal[:, None]
    batch["wsi_local"][..., :3] += signal[:, None]
    batch["rna"][:, :3] += signal
    batch["text_global"][:, :3] += signal
    batch["text_local"][..., :3] += signal[:, None]
    for modality, keys in MODALITY_INPUTS.items():
        for key in keys:
            batch[key] = batch[key] * present[:, modality].reshape((patients,) + (1,) * (batch[key].dim() - 1))
    net = model("mosare", contrastive_warmup_epochs=10)
    optimiser = torch.optim.AdamW(net.parameters(), lr=3e-3)
    net.train()
    for step in range(40):
        optimiser.zero_grad()
        total, _ = net.compute_loss(batch, net(batch), epoch=step // 4)
        total.backward()
        optimiser.step()
    net.eval()
    with torch.no_grad():
        accuracy = (net(batch)["logits"].argmax(dim=1) == labels).float().mean()
    assert accuracy >= 0.9


def test_mosare_trains_under_bfloat16_autocast_with_prototypes_kept_in_float32():
    net = model("mosare").train()
    batch = make_batch(16)
    for epoch in (0, 2, 3):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            total, terms = net.compute_loss(batch, net(batch), epoch=epoch)
        total.backward()
        assert all(torch.isfinite(torch.tensor(value)) for value in terms.values())
    assert net.mcl.prototypes.dtype == torch.float32
    assert torch.allclose(net.mcl.prototypes.norm(dim=-1), torch.ones_like(net.mcl.prototypes[..., 0]), atol=1e-5)
