"""docs/extending.md, followed literally: each recipe's file, copied as written into a scratch copy of the workflow,
is the only change, its registry finds and uses the new entry, and planning accepts it."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from workflow_runs import COHORT, REPO, make_workdir, planned_jobs, snakemake, snapshot_workflow, tiny_demo_config

RECIPE = re.compile(r"```python\n# (src/mosare/\S+\.py)\n(.*?)```", re.S)
TESTS = Path(__file__).resolve().parent


def recipes() -> dict[str, str]:
    """Plugin folder -> (path, file text) of each recipe in docs/extending.md."""
    return {
        str(Path(path).parent): (path, f"# {path}\n{text}")
        for path, text in RECIPE.findall((REPO / "docs" / "extending.md").read_text(encoding="utf-8"))
    }


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (caches left out) -> sha256 of its bytes."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def add_recipe(tmp_path: Path, plugin_dir: str) -> tuple[Path, str]:
    """A scratch copy of the workflow with the recipe for ``plugin_dir`` added; returns (repo, plugin module name)."""
    path, text = recipes()[plugin_dir]
    repo = snapshot_workflow(tmp_path / "workflow")
    before = tree(repo)
    (repo / path).write_text(text, encoding="utf-8")
    after = tree(repo)
    assert set(after) - set(before) == {path}
    assert {name: digest for name, digest in after.items() if name != path} == before  # nothing else edited
    return repo, Path(path).stem


def run_python(repo: Path, code: str) -> str:
    """``code`` run with the scratch copy's package first on sys.path (and the tests' helpers importable)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo / "src"), str(TESTS)])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=repo)
    assert result.returncode == 0, result.stderr
    return result.stdout


def stage_hash(repo: Path, stage: str) -> str:
    return run_python(repo, f"from mosare.core.provenance import stage_code_hash; print(stage_code_hash({stage!r}))")


def encoder_hash(repo: Path, encoder: str) -> str:
    return run_python(
        repo, f"from mosare.features.encoder_specs import embedding_code_hash; print(embedding_code_hash({encoder!r}))"
    )


def test_every_plugin_kind_has_one_recipe_in_its_own_folder():
    assert sorted(recipes()) == [
        "src/mosare/features/encoder_plugins",
        "src/mosare/model/model_plugins",
        "src/mosare/reporting/figure_plugins",
        "src/mosare/slides/tissue_plugins",
    ]


def test_an_encoder_is_one_file_that_embeds_and_plans_with_its_own_resources(tmp_path):
    repo, _ = add_recipe(tmp_path, "src/mosare/features/encoder_plugins")
    (tmp_path / "any.bin").write_bytes(b"no weights")
    embedded = run_python(
        repo,
        "import torch; from mosare.features.encoders import create_encoder; "
        f"encoder = create_encoder('mean-colour', checkpoint={str(tmp_path / 'any.bin')!r}, device='cpu'); "
        "print(encoder.embed(torch.full((2, 3, 32, 32), 51, dtype=torch.uint8)).tolist())",
    )
    assert [value for row in eval(embedded) for value in row] == pytest.approx([0.2] * 6)
    # The new encoder's embedding is fingerprinted with its own plugin file; the other encoders' stay as they were.
    assert encoder_hash(repo, "efficientnet-lite0") == encoder_hash(REPO, "efficientnet-lite0")
    new_hash = encoder_hash(repo, "mean-colour")
    with next((repo / "src/mosare/features/encoder_plugins").glob("mean_colour*.py")).open("a") as plugin:
        plugin.write("\nEDITED = True\n")
    assert encoder_hash(repo, "mean-colour") != new_hash

    config = tiny_demo_config()
    config["encoder"] = {"name": "mean-colour", "checkpoint": "any.bin", "slides_per_job": 4}
    workdir = make_workdir(tmp_path / "work", config)
    (workdir / "any.bin").write_bytes(b"no weights")
    output = snakemake(workdir, "--dry-run", f"results/{COHORT}/cohort.tsv", repo=repo).stdout
    assert output.count("mem_mb=1234") == 2 and f"results/{COHORT}/features/mean-colour/" in output


def test_a_tissue_detector_is_one_file_that_tiles_and_plans(tmp_path):
    repo, _ = add_recipe(tmp_path, "src/mosare/slides/tissue_plugins")
    tiled = run_python(
        repo,
        "from pathlib import Path; from synthetic_slides import tissue_image, write_slide; "
        "from mosare.slides.tiling import tile_slide; "
        f"root = Path({str(tmp_path)!r}); "
        "path = write_slide(root / 's.svs', tissue_image(2048, 2048, blobs=[(0.5, 0.5, 0.35, 0.35)]), mpp=0.5, "
        "downsamples=(1, 4)); "
        "tiling = {'target_mpp': 0.5, 'patch_px': 256, 'tissue': {'method': 'darkness'}}; "
        "result = tile_slide(path, root / 'd.zarr', slide_id='s', tiling=tiling); "
        "print(result.tissue.threshold, result.n_patches)",
    )
    threshold, n_patches = tiled.split()
    assert float(threshold) == 225.0 and 15 <= int(n_patches) <= 30  # a 0.35 mm disc holds about 23 patches
    assert stage_hash(repo, "tiling") != stage_hash(REPO, "tiling")

    config = tiny_demo_config()
    config["tiling"]["tissue"]["method"] = "darkness"
    workdir = make_workdir(tmp_path / "work", config)
    assert "tile_slide" in planned_jobs(workdir, f"results/{COHORT}/cohort.tsv", repo=repo)


def test_a_model_is_one_file_that_builds_trains_and_plans(tmp_path):
    repo, _ = add_recipe(tmp_path, "src/mosare/model/model_plugins")
    logits = run_python(
        repo,
        "import torch; from mosare.model.factory import ModelDims, build_model; "
        "model = build_model('mean_pool', ModelDims(wsi_dim=6, rna_genes=0, text_dim=0, local_tokens=2, hidden=4), 2, {}); "
        "batch = {'wsi_patches': torch.ones(3, 5, 6), 'wsi_patch_mask': torch.ones(3, 5, dtype=torch.bool), "
        "'label': torch.zeros(3, dtype=torch.long)}; outputs = model(batch); "
        "print(tuple(outputs['logits'].shape), model.scale, sorted(model.compute_loss(batch, outputs, 0)[1]))",
    )
    assert logits.strip() == "(3, 2) 2.0 ['ce']"
    assert stage_hash(repo, "training") != stage_hash(REPO, "training")

    config = tiny_demo_config()
    config["train"]["models"] = ["mosare", "mean_pool"]
    workdir = make_workdir(tmp_path / "work", config)
    assert "train_and_evaluate" in planned_jobs(workdir, f"results/{COHORT}/metrics.tsv", repo=repo)


def test_a_cohort_figure_is_one_file_that_is_drawn_and_planned(tmp_path):
    repo, _ = add_recipe(tmp_path, "src/mosare/reporting/figure_plugins")
    run_python(
        repo,
        "from pathlib import Path; from test_cohort_figures import assert_drawn, finished_cohort; "
        "from mosare.reporting.cohort_figures import draw_cohort_figure; "
        f"root = Path({str(tmp_path)!r}); "
        "draw_cohort_figure('patients_per_class', finished_cohort(root / 'results'), root / 'figure.png'); "
        "assert_drawn(root / 'figure.png')",
    )
    assert stage_hash(repo, "figures") != stage_hash(REPO, "figures")

    workdir = make_workdir(tmp_path / "work", tiny_demo_config())
    planned = planned_jobs(workdir, f"results/{COHORT}/figures/patients_per_class.png", repo=repo)
    assert planned.get("draw_cohort_figure") == 1 and "train_and_evaluate" in planned


# Cohort figures are not chosen by name: every registered figure is drawn.
CHOSEN_BY_NAME = {
    "src/mosare/features/encoder_plugins": ("encoder.name", "mean-color"),
    "src/mosare/slides/tissue_plugins": ("tissue detector", "darknes"),
    "src/mosare/model/model_plugins": ("model", "mean_pol"),
}


@pytest.mark.parametrize("plugin_dir", sorted(CHOSEN_BY_NAME))
def test_a_misspelt_name_fails_planning_naming_the_registered_ones(tmp_path, plugin_dir):
    repo, _ = add_recipe(tmp_path, plugin_dir)
    config = tiny_demo_config()
    kind, typo = CHOSEN_BY_NAME[plugin_dir]
    if kind == "encoder.name":
        config["encoder"] = {"name": typo}
    elif kind == "model":
        config["train"]["models"] = [typo]
    else:
        config["tiling"]["tissue"]["method"] = typo
    workdir = make_workdir(tmp_path / "work", config)
    with pytest.raises(AssertionError, match=rf"unknown {kind} '{typo}'.*'{typo[:4]}"):
        snakemake(workdir, "--dry-run", repo=repo)


@pytest.mark.parametrize("plugin_dir", sorted(recipes()))
def test_a_plugin_that_fails_to_import_fails_every_load_and_planning_with_its_name(tmp_path, plugin_dir):
    repo = snapshot_workflow(tmp_path / "workflow")
    (repo / plugin_dir / "broken.py").write_text("raise RuntimeError('weights server unreachable')\n")
    registry = {
        "src/mosare/features/encoder_plugins": "mosare.features.encoder_specs:ENCODERS",
        "src/mosare/slides/tissue_plugins": "mosare.slides.tissue:TISSUE_DETECTORS",
        "src/mosare/model/model_plugins": "mosare.model.specs:MODELS",
        "src/mosare/reporting/figure_plugins": "mosare.reporting.cohort_figures:FIGURES",
    }[plugin_dir]
    module, name = registry.split(":")
    failures = run_python(
        repo,
        f"import importlib; from mosare.core.plugins import PluginImportError; "
        f"registry = getattr(importlib.import_module({module!r}), {name!r})\n"
        "for attempt in range(2):\n"
        "    try:\n        registry.names()\n    except PluginImportError as error:\n        print(error)\n",
    ).splitlines()
    assert len(failures) == 2 and all(".broken" in line and "weights server unreachable" in line for line in failures)

    workdir = make_workdir(tmp_path / "work", tiny_demo_config())
    with pytest.raises(AssertionError, match=r"broken.*weights server unreachable"):
        snakemake(workdir, "--dry-run", repo=repo)
