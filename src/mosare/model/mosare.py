"""The MoSARe fusion model (and its ablations, chosen by constructor flags)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mosare.model.abmil import GatedAttentionMIL
from mosare.model.common import ModelDims, ModelHParams, TokenProjection, zero_missing
from mosare.model.cross_attention import CrossModalAttention
from mosare.model.losses import MultiPrototypeContrast, present_cross_entropy, symmetric_alignment_loss
from mosare.model.moe import LocalTokenGate, MixtureOfExperts, SingleExpert
from mosare.model.reconstruction import DecoupledReconstruction, reconstruction_loss
from mosare.model.report_encoder import ReportEncoder
from mosare.model.rna_encoders import GeneAttentionTokens, RNAGlobalMLP

Batch = dict[str, torch.Tensor]


class MoSARe(nn.Module):
    """Global and local features per modality -> cross-modal attention -> reconstruction of the missing ones ->
    mixture of experts over six tokens -> classifier.

    Ablations: `use_mcl=False` drops the multi-prototype loss; `reconstruct=False` zero-fills missing modalities
    and drops the reconstruction loss (the final MoE, whose layers have biases, maps the zeros to a learned constant,
    the same for every patient lacking the modality); `use_moe=False` replaces every mixture of experts by one dense
    expert MLP.
    A missing modality's input never reaches the output: its features are zeroed right after its encoders and it
    is a masked key in every attention block. A modality no patient of the cohort has (size 0 in `ModelDims`) has
    no encoder and is not reconstructed: a decoder never trained on it would only invent it.
    """

    in_cohort: torch.Tensor  # (3,) bool buffer: the modalities some patient of the cohort has

    def __init__(
        self,
        dims: ModelDims,
        n_classes: int,
        hparams: ModelHParams,
        *,
        use_mcl: bool = True,
        reconstruct: bool = True,
        use_moe: bool = True,
        survival: Any = None,
    ) -> None:
        super().__init__()
        dim = dims.hidden
        # A survival cohort (a mosare.model.survival.SurvivalSetup): the classifier and the per-modality heads are
        # SurvivalHeads, and MCL's classes are the time bins of the events known to fall in them.
        self.survival = survival
        self.hidden_dim = dim
        self.hparams = hparams
        self.local_tokens = dims.local_tokens
        # No encoder for a modality the cohort lacks altogether (size 0): its features are zeros.
        self.wsi_global = (
            GatedAttentionMIL(dims.wsi_dim, dim, hparams.abmil_attention_hidden, hparams.dropout)
            if dims.wsi_dim
            else None
        )
        self.wsi_local = TokenProjection(dims.wsi_dim, dim, hparams.dropout) if dims.wsi_dim else None
        self.rna_global = RNAGlobalMLP(dims.rna_genes, hparams.rna_hidden, dim) if dims.rna_genes else None
        self.rna_local = (
            GeneAttentionTokens(
                dims.rna_genes,
                dims.local_tokens,
                dim,
                hparams.rna_token_dim,
                hparams.rna_attention_hidden,
                hparams.dropout,
            )  # fmt: skip
            if dims.rna_genes
            else None
        )
        self.report = ReportEncoder(dims.text_dim, dim, hparams.dropout) if dims.text_dim else None
        # Not a checkpoint entry: it follows from dims, which rebuild the model.
        self.register_buffer("in_cohort", torch.tensor(dims.in_cohort), persistent=False)

        def experts() -> nn.Module:
            return MixtureOfExperts(dim, hparams.experts, hparams.expert_top_k) if use_moe else SingleExpert(dim)

        self.local_gates = nn.ModuleList(LocalTokenGate(dim, hparams.local_top_k) for _ in range(3))
        self.local_experts = nn.ModuleList(experts() for _ in range(3))
        self.final_experts = experts()
        self.global_attention = CrossModalAttention(dim, hparams.heads, hparams.dropout)
        self.local_attention = CrossModalAttention(dim, hparams.heads, hparams.dropout)
        from_others = hparams.reconstruct_from == "others"
        self.global_reconstruction = DecoupledReconstruction(dim, from_others=from_others) if reconstruct else None
        self.local_reconstruction = DecoupledReconstruction(dim, from_others=from_others) if reconstruct else None
        if survival is None:
            self.classifier = nn.Linear(dim, n_classes)
            self.global_head = nn.Linear(dim, n_classes)  # shared by the three modalities, as in the authors' code
            self.local_head = nn.Linear(dim, n_classes)
        else:
            self.classifier = survival.make_head(dim)
            self.global_head = survival.make_head(dim)
            self.local_head = survival.make_head(dim)
        self.mcl = (
            MultiPrototypeContrast(
                n_classes if survival is None else survival.n_bins,
                hparams.prototypes_per_class,
                dim,
                hparams.mcl_queue_per_class,
                hparams.mcl_momentum,
                hparams.mcl_temperature,
                hparams.sinkhorn_iterations,
            )
            if use_mcl
            else None
        )

    def _complete(
        self, features: torch.Tensor, present: torch.Tensor, decoder: DecoupledReconstruction | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fill the missing modalities' features with their reconstructions (or leave the zeros); a modality the
        cohort lacks altogether keeps its zeros."""
        if decoder is None:
            return features, None
        reconstructed = decoder(features)
        keep = present | ~self.in_cohort
        return torch.where(keep.unsqueeze(-1), features, reconstructed), reconstructed

    def _wsi_features(self, batch: Batch, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Global (B, D) and local (B, T, D) WSI features and the patch attention; zeros (and None) without slides."""
        if self.wsi_global is None or self.wsi_local is None:
            return like.new_zeros(like.shape[0], like.shape[2]), torch.zeros_like(like), None
        patch_mask = batch["wsi_patch_mask"].bool() & batch["present"].bool()[:, :1]  # a missing slide has no patch
        wsi_global, attention = self.wsi_global(batch["wsi_patches"], patch_mask)
        return wsi_global, self.wsi_local(batch["wsi_local"]), attention

    def _rna_features(self, expression: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global (B, D) and local (B, T, D) RNA features; zeros shaped like the WSI local tokens without RNA."""
        if self.rna_global is None or self.rna_local is None:
            return like.new_zeros(like.shape[0], like.shape[2]), torch.zeros_like(like)
        return self.rna_global(expression), self.rna_local(expression)[0]

    def _text_features(self, batch: Batch, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global (B, D) and local (B, T, D) report features; zeros shaped like the WSI local tokens without reports."""
        if self.report is None:
            return like.new_zeros(like.shape[0], like.shape[2]), torch.zeros_like(like)
        return self.report(batch["text_global"], batch["text_local"])

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        present = batch["present"].bool()
        like = self.classifier.weight.new_zeros(present.shape[0], self.local_tokens, self.hidden_dim)
        wsi_global, wsi_local, wsi_attention = self._wsi_features(batch, like)
        rna_global, rna_local = self._rna_features(batch["rna"], like)
        text_global, text_local = self._text_features(batch, like)
        global_tokens = zero_missing(torch.stack([wsi_global, rna_global, text_global], 1), present)
        local_tokens = zero_missing(torch.stack([wsi_local, rna_local, text_local], 1), present)

        kept, kept_indices, local_routing = [], [], []
        for m, (gate, experts) in enumerate(zip(self.local_gates, self.local_experts, strict=True)):
            tokens, indices = gate(local_tokens[:, m])
            tokens, routing = experts(tokens)
            kept.append(tokens)
            kept_indices.append(indices)
            local_routing.append(routing)
        kept_tokens = zero_missing(torch.stack(kept, dim=1), present)  # (B, 3, k, D)

        global_features = self.global_attention(global_tokens.unsqueeze(2), present).squeeze(2)  # (B, 3, D)
        local_features = self.local_attention(kept_tokens, present).mean(dim=2)  # (B, 3, D)
        full_global, global_reconstruction = self._complete(global_features, present, self.global_reconstruction)
        full_local, local_reconstruction = self._complete(local_features, present, self.local_reconstruction)

        final_tokens, final_routing = self.final_experts(torch.cat([full_local, full_global], dim=1))
        fused = final_tokens.sum(dim=1)
        outputs = {
            "logits": self.classifier(fused),
            "fused": fused,
            "global_features": global_features,
            "local_features": local_features,
            "global_logits": self.global_head(global_features),
            "local_logits": self.local_head(local_features),
            "local_token_indices": torch.stack(kept_indices, dim=1),
            "local_routing": torch.stack(local_routing, dim=1),
            "final_routing": final_routing,
            # Each modality's share of the logits: fused is the sum of the six final tokens and the classifier is
            # linear, so logits = bias + sum over modalities of W @ (its local + global token), exactly.
            "modality_logits": torch.einsum(
                "kd,bmd->bmk", self.classifier.weight, final_tokens[:, :3] + final_tokens[:, 3:]
            ),
        }
        if wsi_attention is not None:
            outputs["wsi_attention"] = wsi_attention
        if global_reconstruction is not None and local_reconstruction is not None:
            outputs["global_reconstruction"] = global_reconstruction
            outputs["local_reconstruction"] = local_reconstruction
        return outputs

    def compute_loss(
        self, batch: Batch, outputs: dict[str, torch.Tensor], epoch: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total training loss and its terms. In training mode this also feeds the MCL queue and, after the
        contrastive warm-up, moves the prototypes (evaluation-mode calls change nothing)."""
        labels = batch["label"].long()
        present = batch["present"].bool()
        if self.survival is not None:
            return self._survival_loss(batch, outputs, epoch)
        terms = {
            "ce": F.cross_entropy(outputs["logits"].float(), labels),
            "ce_modality": 0.5
            * (
                present_cross_entropy(outputs["global_logits"], labels, present)
                + present_cross_entropy(outputs["local_logits"], labels, present)
            ),
        }
        total = terms["ce"] + terms["ce_modality"]
        return self._shared_terms(outputs, present, labels, epoch, terms, total)

    def _survival_loss(
        self, batch: Batch, outputs: dict[str, torch.Tensor], epoch: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """A survival cohort's loss: the head's (hazard NLL or Cox) in place of the cross-entropy, the per-modality
        heads' over the present modalities, and MCL on the pseudo-classes (``mcl_pseudo_classes``; -1 left out)."""
        present = batch["present"].bool()
        times, events = batch["time"], batch["event"]
        classifier, global_head, local_head = self.classifier, self.global_head, self.local_head
        terms = {
            "survival": classifier.loss(outputs["logits"], times, events),  # type: ignore[operator]
            "survival_modality": 0.5
            * (
                global_head.present_loss(outputs["global_logits"], times, events, present)  # type: ignore[operator]
                + local_head.present_loss(outputs["local_logits"], times, events, present)  # type: ignore[operator]
            ),
        }
        total = terms["survival"] + terms["survival_modality"]
        return self._shared_terms(outputs, present, self.survival.pseudo_classes(times, events), epoch, terms, total)

    def _shared_terms(
        self,
        outputs: dict[str, torch.Tensor],
        present: torch.Tensor,
        labels: torch.Tensor,
        epoch: int,
        terms: dict[str, torch.Tensor],
        total: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Reconstruction, SymCL and MCL on top of the supervised terms. ``labels`` -1 (a survival cohort's patients
        whose event bin is unknown) are left out of MCL's loss and queues."""
        hparams = self.hparams
        if "global_reconstruction" in outputs:
            terms["reconstruction"] = 0.5 * (
                reconstruction_loss(outputs["global_reconstruction"], outputs["global_features"], present)
                + reconstruction_loss(outputs["local_reconstruction"], outputs["local_features"], present)
            )
            total = total + hparams.lambda_rec * terms["reconstruction"]

        contrastive = epoch >= hparams.contrastive_warmup_epochs
        zero = total.new_zeros(())
        terms["symcl"] = (
            0.5
            * (
                symmetric_alignment_loss(
                    outputs["global_features"], outputs["global_features"].sum(1), present, hparams.symcl_temperature
                )
                + symmetric_alignment_loss(
                    outputs["local_features"], outputs["local_features"].sum(1), present, hparams.symcl_temperature
                )
            )
            if contrastive
            else zero
        )
        total = total + hparams.lambda_symcl * terms["symcl"]
        if self.mcl is not None:
            fused = outputs["fused"]
            if self.survival is not None:  # only the patients whose pseudo-class is known
                known = labels >= 0
                fused, labels = fused[known], labels[known]
            terms["mcl"] = self.mcl.loss(fused, labels) if contrastive and len(labels) else zero
            total = total + hparams.lambda_mcl * terms["mcl"]
            if self.training:
                self.mcl.enqueue(fused, labels)
                if contrastive:
                    self.mcl.update_prototypes()
        terms["total"] = total
        return total, {name: float(value.detach()) for name, value in terms.items()}
