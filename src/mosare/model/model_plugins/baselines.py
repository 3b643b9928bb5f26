"""Baselines on the same inputs and folds: one per modality, and late fusion of the three global encoders."""

from mosare.model.specs import ModelSpec, register_model

SINGLE_MODALITY = "mosare.model.baselines:SingleModalityBaseline"

register_model(
    ModelSpec(
        "abmil", SINGLE_MODALITY, {"modality": "wsi"}, "wsi", "baseline: gated attention MIL over the slides' patches"
    )
)
register_model(ModelSpec("rna_mlp", SINGLE_MODALITY, {"modality": "rna"}, "rna", "baseline: MLP on the RNA genes"))
register_model(
    ModelSpec(
        "report_mlp", SINGLE_MODALITY, {"modality": "text"}, "text", "baseline: MLP on the whole-report embedding"
    )
)
register_model(
    ModelSpec(
        "late_fusion",
        "mosare.model.baselines:LateFusionBaseline",
        description="baseline: the three global encoders concatenated, one linear classifier",
    )
)
