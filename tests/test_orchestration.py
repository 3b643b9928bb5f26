"""Rerun only what changed: config sections and code fingerprints as params, checked with real dry runs; and
rule scripts that run their own checkout's mosare in conda envs holding only pyproject.toml's third-party pins."""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
from pathlib import Path

import pytest
import snakemake.script
import yaml
from snakemake.iocontainers import InputFiles, Log, Namedlist, OutputFiles, Params, Wildcards
from snakemake.script import PythonScript
from snakemake.sourcecache import LocalSourceFile
from workflow_runs import (
    COHORT,
    REPO,
    FinishedRun,
    chunk_jobs,
    finished_tiny_run,  # noqa: F401 (session fixture shared with test_report)
    make_workdir,
    planned_jobs,
    tiny_demo_config,
    write_config,
)
from workflow_runs import (
    snakemake as run_snakemake,
)

from mosare.core import provenance

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
        stage = re.search(r'code=(?:lambda wildcards: )?code_hash\("(\w+)"[,)]', block)
        rules[name] = (stage.group(1) if stage else "", (REPO / "workflow" / "rules" / script.group(1)).resolve())
    return rules


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
            if str(p.relative_to(provenance.PACKAGE_DIR)) not in provenance.OUTPUT_NEUTRAL
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


# ---------------------------------------------------------------- scripts run this checkout's mosare, in any conda env


def test_every_rule_script_imports_checkout_src_before_any_mosare_module():
    late_or_missing = []
    for name, (_, script) in script_rules().items():
        imported = []
        for node in ast.parse(script.read_text()).body:
            if isinstance(node, ast.Import):
                imported.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.append(node.module)
        first_mosare = next((i for i, module in enumerate(imported) if module.split(".")[0] == "mosare"), len(imported))
        if "checkout_src" not in imported[:first_mosare]:
            late_or_missing.append(f"{name} ({script.name})")
    assert late_or_missing == [], "add `import checkout_src  # noqa: F401` above the mosare imports"


def _script_job(script: Path, job_dir: Path, inputs: dict, outputs: dict, params: dict, log: str) -> Path:
    """The file Snakemake itself writes for a ``script:`` job: its preamble (pickled ``snakemake`` object, sys.path
    additions, ``__file__``) then the script, placed in ``job_dir`` as in .snakemake/scripts/; it also prints which
    mosare the script imported."""
    job = PythonScript(
        path=LocalSourceFile(str(script)),
        cache_path=None,
        source=script.read_text(),
        basedir=str(script.parent),
        input_=InputFiles(fromdict=inputs),
        output=OutputFiles(fromdict=outputs),
        params=Params(fromdict=params),
        wildcards=Wildcards(fromdict={"cohort": "demo"}),
        threads=1,
        resources=Namedlist(fromdict={}),
        log=Log(fromdict={"log": log}),
        config={},
        rulename=script.stem,
        conda_env=None,
        conda_base_path=None,
        container_img=None,
        singularity_args=None,
        env_modules=None,
        bench_record=None,
        jobid=1,
        bench_iteration=None,
        cleanup_scripts=True,
        shadow_dir=None,
        is_local=True,
        runtime_paths=None,
    )
    path = job_dir / f"tmp_job.{script.name}"
    with path.open("wb") as file:
        job.write_script(job.get_preamble(), file)
        file.write(b"\nimport mosare\nprint(mosare.__file__)\n")
    return path


@pytest.fixture
def other_checkout(tmp_path) -> Path:
    """A second checkout of the workflow's scripts and package, in a temporary directory."""
    checkout = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "workflow" / "scripts", checkout / "workflow" / "scripts", ignore=ignore)
    shutil.copytree(REPO / "src" / "mosare", checkout / "src" / "mosare", ignore=ignore)
    return checkout


def _run_select_rna_genes(checkout: Path, work: Path, python_args: list[str], env: dict) -> Path:
    """Run the checkout's select_rna_genes script as a Snakemake job would; returns the mosare file it imported."""
    for slide in ("s1", "s2"):
        (work / f"{slide}.svs").write_bytes(b"")
    (work / "samples.tsv").write_text("patient_id\tslide_id\tslide_path\tlabel\nP1\ts1\ts1.svs\tA\nP2\ts2\ts2.svs\tB\n")
    (work / "rna.tsv").write_text("gene\tP1\tP2\nG1\t1\t5\nG2\t3\t3\nG3\t0\t9\n")
    job_dir = work / ".snakemake" / "scripts"
    job_dir.mkdir(parents=True)
    job = _script_job(
        checkout / "workflow" / "scripts" / "select_rna_genes.py",
        job_dir,
        inputs={"samples": str(work / "samples.tsv"), "rna": str(work / "rna.tsv")},
        outputs={"store": str(work / "rna.zarr")},
        params={"classes": ["A", "B"], "rna": {"top_genes": 2}, "task": "classification"},
        log=str(work / "rna.log"),
    )
    result = subprocess.run(
        [sys.executable, *python_args, str(job)], cwd=work, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "3 genes stored" in (work / "rna.log").read_text()
    assert (work / "rna.zarr").is_dir()
    return Path(result.stdout.strip().splitlines()[-1])


def test_a_rule_script_imports_its_checkouts_mosare_in_an_env_without_the_package(
    other_checkout, tmp_path, monkeypatch
):
    # Third-party packages only, like a conda env from envs/: the venv's site-packages without its .pth files
    # (which make the editable install importable), and a Snakemake whose own sys.path, which the job's preamble
    # appends, holds no mosare either.
    third_party = sysconfig.get_paths()["purelib"]
    env = {"PYTHONPATH": third_party}
    monkeypatch.setattr(snakemake.script, "get_snakemake_searchpaths", lambda: [third_party])
    without_package = subprocess.run([sys.executable, "-S", "-c", "import mosare"], env=env, capture_output=True)
    assert without_package.returncode != 0

    imported = _run_select_rna_genes(other_checkout, tmp_path, ["-S"], env)

    assert imported == other_checkout / "src" / "mosare" / "__init__.py"


def test_a_rule_script_imports_its_own_checkouts_mosare_over_the_one_snakemake_runs_with(other_checkout, tmp_path):
    # This venv and this test process (whose sys.path Snakemake's preamble appends to the job's) import the
    # repository's mosare: for the copied checkout, that is another checkout's code, as in a shared env or venv.
    imported = _run_select_rna_genes(other_checkout, tmp_path, [], {**os.environ, "PYTHONPATH": ""})

    assert imported == other_checkout / "src" / "mosare" / "__init__.py"


def _normalised(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _pins(requirements: list[str]) -> dict[str, str]:
    """{normalised distribution name: version} of ``name==version`` requirements."""
    return {_normalised(name): version for name, version in (requirement.split("==") for requirement in requirements)}


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = [requirement for group in project["optional-dependencies"].values() for requirement in group]
    return _pins([*project["dependencies"], *extras])


def _env_pip_requirements(env_file: Path) -> list[str]:
    dependencies = yaml.safe_load(env_file.read_text())["dependencies"]
    return [requirement for entry in dependencies if isinstance(entry, dict) for requirement in entry.get("pip", [])]


ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))


def test_conda_envs_pin_third_party_packages_only_and_never_install_the_workflows_own_package():
    assert ENV_FILES, "no env files in envs/"
    project_name = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"]
    not_pinned = {
        env_file.name: [
            requirement
            for requirement in _env_pip_requirements(env_file)
            # -e/--editable, local paths and URLs all fail this; the project itself is refused by name.
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!]+", requirement)
            or requirement.split("==")[0] == project_name
        ]
        for env_file in ENV_FILES
    }
    assert not_pinned == {env_file.name: [] for env_file in ENV_FILES}


def test_every_conda_env_pin_equals_pyproject_tomls_pin():
    pyproject = _pyproject_pins()
    differing = {
        f"{env_file.name}: {name}": (version, pyproject.get(name, "not in pyproject.toml"))
        for env_file in ENV_FILES
        for name, version in _pins(_env_pip_requirements(env_file)).items()
        if pyproject.get(name) != version
    }
    assert differing == {}


def _third_party_imports(path: Path) -> set[str]:
    """Top-level names of the non-stdlib, non-mosare modules a file imports (anywhere in it)."""
    local = {script.stem for script in (REPO / "workflow" / "scripts").glob("*.py")}
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - local - {"__future__", "mosare"}


def _code_files(script: Path) -> set[Path]:
    """The script and every mosare module it imports, directly or not."""
    seen, pending = {script}, list(_script_imports(script))
    while pending:
        path = pending.pop()
        if path not in seen:
            seen.add(path)
            pending.extend(provenance._imported_modules(path))
    return seen


def test_every_pyproject_package_a_rules_code_imports_is_pinned_in_the_rules_conda_env():
    # The envs no longer get mosare's dependencies from installing it, so each must carry what its rules import.
    distributions = importlib.metadata.packages_distributions()
    pyproject = set(_pyproject_pins())
    rules_dir = REPO / "workflow" / "rules"
    missing = {}
    for name, block in rule_blocks().items():
        script = re.search(r'script:\s*\n\s*"([^"]+)"', block)
        conda = re.search(r'conda:\s*\n\s*"([^"]+)"', block)
        if script is None or conda is None:
            continue
        env_file = (rules_dir / conda.group(1)).resolve()
        imported = {
            _normalised(distribution)
            for path in _code_files((rules_dir / script.group(1)).resolve())
            for module in _third_party_imports(path)
            for distribution in distributions.get(module, [])
        }
        unpinned = sorted((imported & pyproject) - set(_pins(_env_pip_requirements(env_file))))
        if unpinned:
            missing[f"{name} ({env_file.name})"] = unpinned
    assert missing == {}


# ---------------------------------------------------------------- checks when the workflow is planned


def test_a_cohort_too_small_for_its_validation_split_fails_when_the_workflow_is_planned(tmp_path):
    config = tiny_demo_config()
    config["train"]["val_fraction"] = 0.2  # 8 patients, 2 folds: 4 training patients cannot spare one per class
    workdir = make_workdir(tmp_path / "work", config)

    with pytest.raises(AssertionError) as failed:
        run_snakemake(workdir, "--dry-run", timeout=300)

    message = str(failed.value)
    assert "cohort 'tiny', test fold 0 (train.folds 2, train.val_fraction 0.2, 8 patients" in message
    assert "raise train.val_fraction or add patients" in message
    assert not (workdir / "results").exists()


# ---------------------------------------------------------------- dry runs on a finished tiny demo cohort


@pytest.mark.slow  # the shared tiny run takes minutes on 2 cores
def test_a_finished_run_with_nothing_changed_plans_zero_jobs_within_seconds(finished_tiny_run):
    run = finished_tiny_run
    started = time.monotonic()

    assert planned_jobs(run.workdir, *run.targets, repo=run.repo) == {}
    # Generous bound for a busy 2-core CI machine; the point is "seconds, not a rerun".
    assert time.monotonic() - started < 60


def copy_of_runs_workflow(run: FinishedRun, tmp_path: Path) -> Path:
    """The workflow exactly as the finished run used it (not the repository now, which may have moved on)."""
    return Path(shutil.copytree(run.repo, tmp_path / "workflow"))  # copy2 keeps mtimes: no script looks newer


@pytest.mark.slow  # the shared tiny run takes minutes on 2 cores
def test_changing_an_evaluation_setting_plans_the_evaluation_and_its_figures_only(finished_tiny_run):
    run = finished_tiny_run
    config = tiny_demo_config()
    config["train"]["bootstrap_resamples"] = 1500
    write_config(run.workdir, config)
    try:
        planned = planned_jobs(run.workdir, *run.targets, repo=run.repo)
    finally:
        write_config(run.workdir, tiny_demo_config())
    assert planned.get("train_and_evaluate") == 1
    assert not {"train_fold", "train_final_models"} & set(planned)
    assert set(planned) == _expected_after(run, {"train_and_evaluate"})


def test_a_cohort_plans_one_training_job_per_fold_of_each_repeat_plus_final_models_and_evaluation(tmp_path):
    config = tiny_demo_config()
    config["train"].update(folds=2, repeats=3)
    workdir = make_workdir(tmp_path / "work", config)
    planned = planned_jobs(workdir, f"results/{COHORT}/metrics.tsv")
    assert (planned["train_fold"], planned["train_final_models"], planned["train_and_evaluate"]) == (6, 1, 1)


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

    every_job = planned_jobs(run.workdir, "--forceall", *run.targets, repo=run.repo)
    gmm_jobs = chunk_jobs(planned, "fit_slide_gmms")
    assert gmm_jobs and gmm_jobs == chunk_jobs(every_job, "fit_slide_gmms")  # every chunk's GMMs, one job a chunk
    assert not {"demo_slide", "demo_cohort", "tile_slide", "select_rna_genes"} & set(planned)
    assert not chunk_jobs(planned, "embed_slides")
    # The report encoder fits its own GMM over sentence embeddings, so it follows gmm.components too, and slide QC
    # flags slides with fewer patches than components (qc.min_patches unset).
    assert set(planned) == _expected_after(run, {*gmm_jobs, "encode_reports", "slide_qc"})


@pytest.mark.slow  # the shared tiny run takes minutes on 2 cores
def test_editing_one_stages_source_plans_that_stage_and_downstream_only(finished_tiny_run, tmp_path):
    run = finished_tiny_run
    edited = copy_of_runs_workflow(run, tmp_path)
    with (edited / "src" / "mosare" / "slides" / "tiling.py").open("a") as source:
        source.write("\nEDITED = True\n")

    planned = planned_jobs(run.workdir, *run.targets, repo=edited)

    slides = planned_jobs(run.workdir, "--forceall", *run.targets, repo=run.repo)["demo_slide"]
    assert planned.get("tile_slide") == slides
    assert "demo_slide" not in planned and "demo_cohort" not in planned
    assert set(planned) == _expected_after(run, {"tile_slide"})


@pytest.mark.slow  # the shared tiny run takes minutes on 2 cores
def test_comment_and_docstring_edits_plan_zero_jobs(finished_tiny_run, tmp_path):
    run = finished_tiny_run
    edited = copy_of_runs_workflow(run, tmp_path)
    tiling = edited / "src" / "mosare" / "slides" / "tiling.py"
    source = tiling.read_text()
    module_docstring = ast.get_docstring(ast.parse(source), clean=False)
    tiling.write_text(source.replace(module_docstring, module_docstring + " Edited.", 1) + "\n# an edit\n")

    assert planned_jobs(run.workdir, *run.targets, repo=edited) == {}


def _expected_after(run: FinishedRun, changed_rules: set[str]) -> set[str]:
    """What forcing the changed rules reruns: they and everything downstream of them."""
    return set(planned_jobs(run.workdir, *run.targets, "--forcerun", *sorted(changed_rules), repo=run.repo))


@pytest.mark.slow  # the shared tiny run takes minutes on 2 cores
def test_a_successful_run_ends_with_a_summary_of_each_cohorts_outputs(finished_tiny_run, tmp_path):
    run = finished_tiny_run
    workdir = tmp_path / "work"
    shutil.copytree(run.workdir, workdir)  # a copy: forcing a job here leaves the shared run up to date
    # The copy's demo slides have other absolute paths, which would rerun every slide job on the "input" trigger:
    # mtimes alone (kept by the copy) leave the forced job the only one.
    result = run_snakemake(
        workdir, "results/tiny/cohort.tsv", "--rerun-triggers", "mtime", "--forcerun", "assemble_cohort", repo=run.repo
    )

    output = result.stdout + result.stderr
    assert "Run summary (read from results/, nothing rerun):" in output
    assert re.search(r"^  tiny: 8 slides, 8 patients", output, re.M)


def test_patients_without_slides_plan_no_slide_jobs_and_reach_every_other_stage(tmp_path):
    config = tiny_demo_config()
    data = tmp_path / "cohort"
    (data / "slides").mkdir(parents=True)
    (data / "reports").mkdir()
    rows = ["patient_id\tslide_id\tslide_path\tlabel\treport_path"]
    for i in range(1, 9):
        label = "AB"[i % 2]
        (data / "reports" / f"P{i}.txt").write_text("Microscopic description: tumour cells.\n")
        if i in (1, 5, 8):  # first, middle and last rows without a slide
            rows.append(f"P{i}\t\t\t{label}\treports/P{i}.txt")
        else:
            (data / "slides" / f"S{i}.svs").write_bytes(b"")
            rows.append(f"P{i}\tS{i}\tslides/S{i}.svs\t{label}\treports/P{i}.txt")
    (data / "samples.tsv").write_text("\n".join(rows) + "\n")
    config["cohorts"] = {"mixed": {"classes": ["A", "B"], "samples": str(data / "samples.tsv")}}
    workdir = make_workdir(tmp_path / "work", config)
    jobs = planned_jobs(workdir, "results/mixed/metrics.tsv")
    assert jobs["tile_slide"] == 5 and sum(chunk_jobs(jobs, "fit_slide_gmms").values()) == 1  # 5 slides: one chunk
    assert jobs["encode_reports"] == 1 and jobs["assemble_cohort"] == 1 and jobs["train_and_evaluate"] == 1
