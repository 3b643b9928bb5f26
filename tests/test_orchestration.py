"""Rerun only what changed: config sections and code fingerprints as params, checked with real dry runs."""

from __future__ import annotations

import ast
import re
import shutil
import time
from pathlib import Path

import pytest

from mosare import provenance
from workflow_runs import REPO, FinishedRun, planned_jobs, snapshot_workflow, tiny_demo_config, write_config
from workflow_runs import finished_tiny_run  # noqa: F401 (session fixture shared with test_report)

RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk"))


def rule_blocks() -> dict[str, str]:
    """{rule name: its source text} for every rule in workflow/rules/."""
    blocks = {}
    for path in RULE_FILES:
        text = path.read_text()
        starts = list(re.finditer(r"^rule (\w+):", text, re.M))
        for start, end in zip(starts, [*starts[1:], None]):
            blocks[start.group(1)] = text[start.start() : end.start() if end else len(text)]
    return blocks


def script_rules() -> dict[str, tuple[str, Path]]:
    """{rule: (fingerprinted stage, script path)} for every rule that runs a script."""
    rules = {}
    for name, block in rule_blocks().items():
        script = re.search(r'script:\s*\n\s*"([^"]+)"', block)
        if script is None:
            continue
        stage = re.search(r'code=code_hash\("(\w+)"\)', block)
        rules[name] = (stage.group(1) if stage else "", (REPO / "workflow" / "rules" / script.group(1)).resolve())
    return rules


@pytest.fixture
def package_copy(tmp_path, monkeypatch) -> Path:
    """A copy of src/mosare that provenance fingerprints instead of the real one (safe to edit)."""
    copy = tmp_path / "mosare"
    shutil.copytree(provenance.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE_DIR", copy)
    provenance.stage_code_hash.cache_clear()
    yield copy
    provenance.stage_code_hash.cache_clear()


def fingerprints() -> dict[str, str]:
    provenance.stage_code_hash.cache_clear()
    return {stage: provenance.stage_code_hash(stage) for stage in provenance.STAGE_SOURCES}


def test_editing_a_module_changes_the_fingerprint_of_exactly_the_stages_that_import_it(package_copy):
    before = fingerprints()
    with (package_copy / "gmm.py").open("a") as source:
        source.write("\n# an edit\n")
    after = fingerprints()

    changed = {stage for stage in before if before[stage] != after[stage]}
    # text imports the GMM fit for its local tokens, so it changes with gmm.py; nothing else does.
    assert changed == {"gmm", "text"}


def test_a_new_helper_module_is_fingerprinted_as_soon_as_a_stage_imports_it(package_copy):
    (package_copy / "tiling_helpers.py").write_text("BORDER_PX = 2\n")
    with (package_copy / "tiling.py").open("a") as source:
        source.write("\nfrom mosare.tiling_helpers import BORDER_PX  # noqa: E402\n")
    before = fingerprints()
    (package_copy / "tiling_helpers.py").write_text("BORDER_PX = 3\n")

    assert fingerprints()["tiling"] != before["tiling"]


def test_log_plumbing_edits_change_no_fingerprint(package_copy):
    before = fingerprints()
    with (package_copy / "logs.py").open("a") as source:
        source.write("\n# an edit\n")

    assert fingerprints() == before


def test_every_rule_that_runs_a_script_passes_its_stage_fingerprint_as_a_param():
    rules = script_rules()
    assert rules, "no script rules found in workflow/rules/"
    unfingerprinted = sorted(name for name, (stage, _) in rules.items() if stage not in provenance.STAGE_SOURCES)
    assert unfingerprinted == [], f"rules without params code=code_hash(<stage>): {unfingerprinted}"


def test_every_mosare_module_a_rule_script_imports_is_part_of_its_stage_fingerprint():
    missing = {}
    for name, (stage, script) in script_rules().items():
        if stage not in provenance.STAGE_SOURCES:
            continue
        covered = {str(p.relative_to(provenance.PACKAGE_DIR)) for p in provenance.stage_source_files(stage)}
        imported = {
            str(p.relative_to(provenance.PACKAGE_DIR))
            for p in _script_imports(script)
            if p.name not in provenance.OUTPUT_NEUTRAL
        }
        if imported - covered:
            missing[name] = sorted(imported - covered)
    assert missing == {}, f"add these modules to provenance.STAGE_SOURCES: {missing}"


def _script_imports(script: Path) -> set[Path]:
    modules = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mosare"):
            base = provenance.PACKAGE_DIR.joinpath(*node.module.split(".")[1:])
            modules.update(p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file())
    return modules


# ---------------------------------------------------------------- dry runs on a finished tiny demo cohort


@pytest.mark.slow  # the shared tiny run takes minutes on 2 cores
def test_a_finished_run_with_nothing_changed_plans_zero_jobs_within_seconds(finished_tiny_run):
    run = finished_tiny_run
    started = time.monotonic()

    assert planned_jobs(run.workdir, *run.targets, repo=run.repo) == {}
    # Generous bound for a busy 2-core CI machine; the point is "seconds, not a rerun".
    assert time.monotonic() - started < 60


@pytest.mark.slow  # the shared tiny run takes minutes on 2 cores
def test_changing_gmm_components_plans_the_gmm_stage_and_downstream_only(finished_tiny_run):
    run = finished_tiny_run
    config = tiny_demo_config()
    config["gmm"]["components"] = 3
    write_config(run.workdir, config)
    try:
        planned = planned_jobs(run.workdir, *run.targets, repo=run.repo)
    finally:
        write_config(run.workdir, tiny_demo_config())

    slides = planned_jobs(run.workdir, "--forceall", *run.targets, repo=run.repo)["demo_slide"]
    assert planned.get("fit_slide_gmm") == slides
    assert not {"demo_slide", "demo_cohort", "tile_slide", "embed_slide", "select_rna_genes"} & set(planned)
    # The report encoder fits its own GMM over sentence embeddings, so it follows gmm.components too.
    assert set(planned) == _expected_after(run, {"fit_slide_gmm", "encode_reports"})


@pytest.mark.slow  # the shared tiny run takes minutes on 2 cores
def test_editing_one_stages_source_plans_that_stage_and_downstream_only(finished_tiny_run, tmp_path):
    run = finished_tiny_run
    edited = snapshot_workflow(tmp_path / "workflow")
    with (edited / "src" / "mosare" / "tiling.py").open("a") as source:
        source.write("\n# an edit\n")

    planned = planned_jobs(run.workdir, *run.targets, repo=edited)

    slides = planned_jobs(run.workdir, "--forceall", *run.targets, repo=run.repo)["demo_slide"]
    assert planned.get("tile_slide") == slides
    assert "demo_slide" not in planned and "demo_cohort" not in planned
    assert set(planned) == _expected_after(run, {"tile_slide"})


def _expected_after(run: FinishedRun, changed_rules: set[str]) -> set[str]:
    """What forcing the changed rules reruns: they and everything downstream of them."""
    return set(planned_jobs(run.workdir, *run.targets, "--forcerun", *sorted(changed_rules), repo=run.repo))
