"""Code fingerprints, so editing a stage's source reruns exactly the stages whose code changed.

Snakemake does not look inside imported packages; every rule passes ``stage_code_hash(stage)`` as a param,
and Snakemake's params-change trigger does the rest. A stage's fingerprint covers its entry modules below and
every ``mosare`` module they import, directly or not, so a new helper module is never missed.

Each module is fingerprinted by its syntax tree without docstrings (``code_fingerprint``), so comment, docstring
and formatting edits, which cannot change a result, rerun nothing; any change to what Python runs does.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]

# Stage -> entry modules (relative to src/mosare/; a directory means every module in it) that the stage's
# scripts call. Imported mosare modules are added automatically.
STAGE_SOURCES: dict[str, tuple[str, ...]] = {
    "demo": ("demo/writer.py", "reporting/plots/demo.py"),
    "tiling": (
        "slides/tiling.py",
        "slides/reader.py",
        "slides/tissue_plugins",
        "reporting/plots/tissue.py",
        "reporting/plots/exclusion.py",
    ),
    # Plus the encoder's own plugin module (mosare.features.encoder_specs.embedding_code_hash), so adding or editing
    # one encoder's plugin reruns that encoder's embedding only.
    "embedding": ("features/embedding.py", "features/encoders.py", "slides/reader.py"),
    "gmm": ("features/slide_gmm.py", "reporting/plots/gmm.py", "reporting/plots/exclusion.py"),
    "text": ("features/reports.py", "core/samples.py"),
    "rna": ("features/expression.py", "core/samples.py"),
    "slide_qc": ("cohort/slide_qc_table.py", "reporting/plots/slide_qc.py", "reporting/slide_qc_report.py"),
    "cohort": ("cohort/table.py", "reporting/plots/cohort.py", "core/samples.py", "cohort/slide_qc_table.py"),
    "figures": ("reporting/cohort_figures.py", "reporting/figure_plugins"),
    "training": ("training/stage.py", "reporting/plots/training.py", "model", "cohort/slide_qc_table.py"),
    "deploy": ("deploy/apply.py", "reporting/plots/training.py", "reporting/plots/survival.py", "model"),
    "attention": ("deploy/attention.py", "reporting/plots/attention.py", "model"),
    "attention_report": ("reporting/attention_report.py",),
    "encoder_comparison": (
        "evaluation/encoder_comparison.py",
        "reporting/plots/encoders.py",
        "features/feature_store.py",
    ),
}

# Modules that never change a stage's outputs (log plumbing, thread counts, this file); editing them reruns nothing.
OUTPUT_NEUTRAL = frozenset({"core/logs.py", "core/resources.py", "core/provenance.py"})


def _module_path(dotted: str) -> Path | None:
    """The file of a ``mosare.x.y`` module (a package resolves to its __init__.py), or None."""
    parts = dotted.split(".")
    if parts[0] != "mosare":
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(path: Path) -> set[Path]:
    """mosare modules imported anywhere in a file (top level or inside functions, absolute or relative)."""
    return set(_imported_modules_of_source(path, PACKAGE_DIR, path.read_text(encoding="utf-8")))


# Cached by the source text itself: every stage's hash walks the shared modules (stores, logs, ...) again, and
# parsing was 5.4 of a 13 s dry run; an edited file has another text, so it is parsed anew.
@functools.cache
def _imported_modules_of_source(path: Path, package_dir: Path, source: str) -> frozenset[Path]:
    own_package = ["mosare", *path.parent.relative_to(package_dir).parts]
    found: set[Path] = set()
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            package = own_package[: len(own_package) - node.level + 1] if node.level else []
            module = ".".join([*package, *(node.module.split(".") if node.module else [])])
            # `from mosare import stores` imports a module; `from mosare.x import f` imports x.
            names = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(p for p in map(_module_path, names) if p is not None)
    return frozenset(found)


def stage_source_files(stage: str, extra: Sequence[str] = ()) -> list[Path]:
    """Every source file whose edits change the stage's outputs (with ``extra``, relative to the package), sorted."""
    if stage not in STAGE_SOURCES:
        raise KeyError(f"unknown stage {stage!r}; known: {sorted(STAGE_SOURCES)}")
    pending: list[Path] = []
    for relative in (*STAGE_SOURCES[stage], *extra):
        path = PACKAGE_DIR / relative
        pending.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.is_file() else [])
    seen: set[Path] = set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        pending.extend(_imported_modules(path) - seen)
    return sorted(p for p in seen if str(p.relative_to(PACKAGE_DIR)) not in OUTPUT_NEUTRAL)


def _is_docstring(statement: ast.stmt) -> bool:
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _without_docstrings(tree: ast.Module) -> ast.Module:
    """``tree`` with the docstring of the module and of every class and function removed (in place)."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.body and _is_docstring(node.body[0]):
                node.body = node.body[1:]
    return tree


@functools.cache
def code_fingerprint(source: str) -> str:
    """What of a module's source can change a result: its syntax tree without docstrings, without positions.

    Comments and formatting never reach the tree; docstrings are dropped from it. (A change of Python version may
    print trees differently, and so rerun every stage once.)
    """
    return ast.dump(_without_docstrings(ast.parse(source)), annotate_fields=False, include_attributes=False)


@functools.cache
def stage_code_hash(stage: str, extra: tuple[str, ...] = ()) -> str:
    """A short sha256 over the stage's source files and ``extra`` ones (names relative to the package, and code
    fingerprints)."""
    digest = hashlib.sha256()
    for path in stage_source_files(stage, extra):
        digest.update(str(path.relative_to(PACKAGE_DIR)).encode())
        digest.update(b"\0")
        digest.update(code_fingerprint(path.read_text(encoding="utf-8")).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]
