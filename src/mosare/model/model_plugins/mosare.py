"""MoSARe (arXiv 2503.09498) and its ablations: one class, ``mosare.model.mosare.MoSARe``, with flags."""

from mosare.model.specs import ModelSpec, register_model

MOSARE = "mosare.model.mosare:MoSARe"

register_model(ModelSpec("mosare", MOSARE, description="the full MoSARe model"))
register_model(
    ModelSpec("mosare_no_mcl", MOSARE, {"use_mcl": False}, description="ablation: no multi-prototype contrastive loss")
)
register_model(
    ModelSpec(
        "mosare_no_reconstruction",
        MOSARE,
        {"reconstruct": False},
        description="ablation: missing modalities zero-filled, no reconstruction",
    )
)
register_model(
    ModelSpec(
        "mosare_no_moe",
        MOSARE,
        {"use_moe": False},
        description="ablation: one dense expert instead of each mixture of experts",
    )
)
