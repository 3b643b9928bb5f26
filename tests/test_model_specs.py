"""The model registry: the schema's model list, the builders and the evaluation plan all follow it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO
from torch import nn

from mosare.evaluation.scenarios import plan_evaluation
from mosare.model.factory import ModelDims, build_model
from mosare.model.specs import MODELS, ModelSpec, model_specs, register_model, single_modality_models


def test_the_schema_takes_its_model_names_from_the_registry_and_every_builder_loads():
    from mosare.config import registry_schema

    assert registry_schema()["$defs"]["train"]["properties"]["models"]["items"]["enum"] == list(model_specs())
    default = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert set(default["$defs"]["train"]["properties"]["models"]["default"]) == set(model_specs())
    for spec in model_specs().values():
        assert callable(spec.load_builder()), spec.name
    assert single_modality_models() == {"abmil": 0, "rna_mlp": 1, "report_mlp": 2}


def test_registry_loads_without_torch():
    code = "import sys, mosare.model.specs, mosare.evaluation.scenarios; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


class MeanPoolBaseline(nn.Module):
    """An example model kept to one class: it reads the mean patch feature only."""

    def __init__(self, dims: ModelDims, n_classes: int, hparams, *, scale: float) -> None:
        super().__init__()
        self.scale = scale
        self.classifier = nn.Linear(dims.wsi_dim, n_classes)

    def forward(self, batch):
        mask = batch["wsi_patch_mask"].float()[..., None]
        pooled = (batch["wsi_patches"] * mask).sum(1) / mask.sum(1).clamp(min=1)
        return {"logits": self.classifier(pooled * self.scale)}

    def compute_loss(self, batch, outputs, epoch):
        loss = nn.functional.cross_entropy(outputs["logits"], batch["label"])
        return loss, {"ce": float(loss.detach())}


def test_a_new_baseline_is_one_registration_and_the_plan_and_factory_see_it():
    spec = register_model(ModelSpec("mean_pool", f"{__name__}:MeanPoolBaseline", {"scale": 2.0}, "wsi", "example"))
    try:
        model = build_model("mean_pool", ModelDims(wsi_dim=6, rna_genes=0, text_dim=0, local_tokens=2, hidden=4), 2, {})
        batch = {"wsi_patches": torch.ones(3, 5, 6), "wsi_patch_mask": torch.ones(3, 5, dtype=torch.bool)}
        assert model(batch)["logits"].shape == (3, 2) and model.scale == 2.0
        assert spec.required_index == 0
        no_slides = np.tile([False, True, True], (4, 1))
        plan = plan_evaluation(no_slides, ["mean_pool", "mosare"], [])
        assert plan.models == ["mosare"] and plan.skipped == {
            "mean_pool": "reads only WSI, which no patient of the cohort has"
        }
        with pytest.raises(ValueError, match="registered twice"):
            register_model(dataclasses.replace(spec, builder="elsewhere:OtherModel"))
    finally:
        MODELS.unregister("mean_pool")
