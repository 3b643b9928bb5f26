"""Specifications of the model's building blocks, on tiny random tensors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mosare.model.abmil import GatedAttentionMIL
from mosare.model.cross_attention import CrossModalAttention, GuidedAttention
from mosare.model.losses import MultiPrototypeContrast, sinkhorn, symmetric_alignment_loss, symmetric_info_nce
from mosare.model.moe import LocalTokenGate, MixtureOfExperts
from mosare.model.reconstruction import DecoupledReconstruction, reconstruction_loss
from mosare.model.rna_encoders import GeneAttentionTokens

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_abmil_ignores_padded_patches_and_gives_a_zero_feature_without_patches():
    torch.manual_seed(0)
    abmil = GatedAttentionMIL(in_dim=6, dim=8, attention_hidden=4).eval()
    patches = torch.randn(3, 5, 6)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)
    feature, weights = abmil(patches, mask)

    changed = patches.clone()
    changed[~mask] = 1e6
    changed_feature, _ = abmil(changed, mask)

    assert torch.equal(feature, changed_feature)
    assert torch.allclose(weights[:2].sum(dim=1), torch.ones(2))
    assert torch.all(weights[~mask] == 0)
    assert torch.equal(feature[2], torch.zeros(8))


def test_gene_attention_gives_one_token_per_head_each_a_distribution_over_genes():
    torch.manual_seed(0)
    tokens = GeneAttentionTokens(genes=50, tokens=16, dim=8, token_dim=4, attention_hidden=4).eval()
    output, weights = tokens(torch.randn(3, 50))
    assert output.shape == (3, 16, 8)
    assert weights.shape == (3, 50, 16)
    assert torch.allclose(weights.sum(dim=1), torch.ones(3, 16))


def test_gene_attention_tokens_depend_on_which_gene_carries_the_value():
    torch.manual_seed(0)
    tokens = GeneAttentionTokens(genes=10, tokens=2, dim=4, token_dim=4, attention_hidden=4).eval()
    expression = torch.zeros(2, 10)
    expression[0, 3] = 3.0
    expression[1, 7] = 3.0  # same multiset of values, another gene
    output, _ = tokens(expression)
    assert not torch.allclose(output[0], output[1])


def test_guided_attention_gives_masked_keys_no_weight_and_survives_when_all_keys_are_masked():
    torch.manual_seed(0)
    block = GuidedAttention(dim=8, heads=2, dropout=0.0).eval()
    x, y = torch.randn(2, 3, 8), torch.randn(2, 4, 8)
    key_mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    changed_y = y.clone()
    changed_y[~key_mask] = 1e6
    out = block(x, y, key_mask)
    assert torch.equal(out, block(x, changed_y, key_mask))
    assert torch.isfinite(out).all()


def test_cross_modal_attention_zeroes_a_missing_modality_and_ignores_its_tokens():
    torch.manual_seed(0)
    attention = CrossModalAttention(dim=8, heads=2, dropout=0.0).eval()
    tokens = torch.randn(3, 3, 2, 8)
    present = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 0, 1]], dtype=torch.bool)
    tokens = tokens * present[:, :, None, None]
    out = attention(tokens, present)
    changed = tokens.clone()
    changed[~present] = 5.0
    assert torch.equal(out, attention(changed, present))
    assert torch.all(out[~present] == 0)
    assert torch.all(out[present].abs().sum(-1) > 0)


def test_mixture_of_experts_routes_every_token_to_exactly_top_k_experts_with_weights_summing_to_one():
    torch.manual_seed(0)
    moe = MixtureOfExperts(dim=8, experts=5, top_k=2)
    tokens = torch.randn(4, 6, 8)
    output, routing = moe(tokens)
    assert output.shape == (4, 6, 8)
    assert torch.all((routing > 0).sum(dim=-1) == 2)
    assert torch.allclose(routing.sum(dim=-1), torch.ones(4, 6))
    top2 = torch.softmax(moe.gate(tokens), dim=-1).topk(2, dim=-1).indices
    assert torch.all(routing.gather(-1, top2) > 0)


def test_mixture_of_experts_output_is_the_weighted_sum_of_the_chosen_experts():
    torch.manual_seed(0)
    moe = MixtureOfExperts(dim=4, experts=3, top_k=1)
    token = torch.randn(1, 4)
    output, routing = moe(token)
    chosen = int(routing.argmax())
    expected = torch.relu(token @ moe.w1[chosen] + moe.b1[chosen]) @ moe.w2[chosen] + moe.b2[chosen]
    assert torch.allclose(output, expected, atol=1e-6)


def test_local_gate_keeps_the_highest_scoring_tokens_unchanged_and_teaches_its_scorer():
    torch.manual_seed(0)
    gate = LocalTokenGate(dim=4, keep=2)
    tokens = torch.randn(3, 6, 4)
    kept, indices = gate(tokens)
    best = gate.score(tokens).squeeze(-1).topk(2, dim=-1).indices
    assert torch.equal(indices, best)
    assert torch.allclose(kept, tokens.gather(1, best.unsqueeze(-1).expand(-1, -1, 4)))
    kept.pow(2).sum().backward()
    assert gate.score.weight.grad.abs().sum() > 0


def test_reconstruction_from_others_never_sees_the_modality_it_reconstructs():
    torch.manual_seed(0)
    reconstruction = DecoupledReconstruction(dim=4, from_others=True)
    features = torch.randn(2, 3, 4)
    changed = features.clone()
    changed[:, 0] += 10.0
    before, after = reconstruction(features), reconstruction(changed)
    assert torch.allclose(before[:, 0], after[:, 0], atol=1e-5)
    assert not torch.allclose(before[:, 1], after[:, 1])


def test_reconstruction_loss_counts_present_modalities_only():
    reconstructed = torch.zeros(2, 3, 4)
    features = torch.ones(2, 3, 4)
    features[1, 2] = 100.0
    present = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    assert float(reconstruction_loss(reconstructed, features, present)) == 1.0


def test_symmetric_info_nce_is_low_for_aligned_pairs_and_high_for_shuffled_ones():
    torch.manual_seed(0)
    a = torch.randn(16, 32)
    aligned = float(symmetric_info_nce(a, a + 0.01 * torch.randn(16, 32), temperature=0.07))
    shuffled = float(symmetric_info_nce(a, a[torch.randperm(16)], temperature=0.07))
    assert aligned < 0.1 < shuffled


def test_symmetric_alignment_skips_modalities_with_fewer_than_two_patients():
    features = torch.randn(3, 3, 4)
    present = torch.tensor([[1, 0, 0], [1, 0, 0], [1, 1, 0]], dtype=torch.bool)
    only_wsi = symmetric_alignment_loss(features, features.sum(1), present, 0.1)
    expected = symmetric_info_nce(features[:, 0], features.sum(1), 0.1)
    assert torch.allclose(only_wsi, expected)


def test_sinkhorn_spreads_features_evenly_over_prototypes():
    torch.manual_seed(0)
    scores = torch.randn(40, 4) + torch.tensor([3.0, 0, 0, 0])  # everyone prefers prototype 0
    assignment = sinkhorn(scores, iterations=50)
    assert torch.allclose(assignment.sum(dim=1), torch.ones(40), atol=1e-4)
    assert torch.allclose(assignment.sum(dim=0), torch.full((4,), 10.0), atol=0.05)


def test_mcl_prototypes_start_at_queued_features_then_move_by_ema_and_live_in_the_state_dict():
    torch.manual_seed(0)
    mcl = MultiPrototypeContrast(n_classes=2, prototypes_per_class=3, dim=4, queue_per_class=8, momentum=0.5)
    assert {"prototypes", "queue", "queue_length", "queue_position", "prototypes_initialised"} <= set(mcl.state_dict())
    features, labels = torch.randn(10, 4), torch.tensor([0] * 5 + [1] * 5)
    mcl.enqueue(features, labels)
    mcl.update_prototypes()
    queued = F.normalize(features, dim=-1)
    for label in (0, 1):
        similarity = mcl.prototypes[label] @ queued[labels == label].T
        assert torch.allclose(similarity.amax(dim=1), torch.ones(3))  # each prototype is one of its class's features
    initialised = mcl.prototypes.clone()
    mcl.enqueue(torch.randn(10, 4), labels)
    mcl.update_prototypes()
    assert not torch.allclose(initialised, mcl.prototypes)
    assert torch.allclose(mcl.prototypes.norm(dim=-1), torch.ones(2, 3))


def test_mcl_queue_is_circular_per_class():
    mcl = MultiPrototypeContrast(n_classes=2, prototypes_per_class=1, dim=2, queue_per_class=3)
    mcl.enqueue(torch.tensor([[1.0, 0], [0, 1], [1, 1], [-1, 0]]), torch.tensor([0, 0, 0, 0]))
    assert mcl.queue_length.tolist() == [3, 0]
    assert torch.allclose(mcl.queue[0], F.normalize(torch.tensor([[-1.0, 0], [0, 1], [1, 1]]), dim=-1))


def test_mcl_logit_of_a_class_is_its_best_prototype():
    mcl = MultiPrototypeContrast(n_classes=2, prototypes_per_class=2, dim=2, temperature=1.0)
    mcl.prototypes.copy_(torch.tensor([[[1.0, 0], [0, 1]], [[-1.0, 0], [0, -1]]]))
    logits = mcl.logits(torch.tensor([[0.0, 2.0]]))
    assert torch.allclose(logits, torch.tensor([[1.0, 0.0]]))
