"""Code fingerprints follow what Python runs: comment, docstring and formatting edits change none of them, any
change to the code itself changes exactly the stages that import it."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from mosare.core import provenance
from mosare.core.provenance import code_fingerprint

SOURCE = '''"""Module docstring."""

import math

SCALE = 2.0  # a comment


class Grid:
    """Class docstring."""

    step: int = 4

    def cells(self, n):
        """Method docstring."""
        return [math.floor(i * SCALE) for i in range(n)]


async def fetch():
    "single-quoted docstring"
    return "not a docstring"
'''


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


class _DocstringEveryDefinition(ast.NodeTransformer):
    """Puts a new docstring on the module and every class and function, replacing any it had."""

    def _redocument(self, node):
        self.generic_visit(node)
        body = node.body[1:] if ast.get_docstring(node, clean=False) is not None else node.body
        node.body = [ast.Expr(ast.Constant(f"Rewritten docstring of {getattr(node, 'name', 'module')}.")), *body]
        return node

    visit_Module = visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _redocument


def redocumented_and_reformatted(source: str) -> str:
    """``source`` with every docstring rewritten, every comment gone and every line laid out anew by ast.unparse."""
    return ast.unparse(ast.fix_missing_locations(_DocstringEveryDefinition().visit(ast.parse(source))))


@pytest.mark.parametrize(
    "edited",
    [
        SOURCE + "\n# a comment appended\n",
        SOURCE.replace("SCALE = 2.0  # a comment", "SCALE = (\n    2.0\n)"),
        SOURCE.replace('"""Method docstring."""', '"""Method docstring,\n        now on two lines."""'),
        SOURCE.replace('    "single-quoted docstring"\n', ""),
        SOURCE.replace('"""Module docstring."""\n', ""),
        redocumented_and_reformatted(SOURCE),
    ],
    ids=["comment", "layout", "docstring", "docstring-removed", "module-docstring-removed", "all-at-once"],
)
def test_comment_docstring_and_layout_edits_keep_the_code_fingerprint(edited):
    assert edited != SOURCE
    assert code_fingerprint(edited) == code_fingerprint(SOURCE)


@pytest.mark.parametrize(
    "edited",
    [
        SOURCE.replace("SCALE = 2.0", "SCALE = 2.5"),
        SOURCE.replace('return "not a docstring"', 'return "changed"'),
        SOURCE.replace("step: int = 4", "step: float = 4"),
        SOURCE.replace("math.floor", "math.ceil"),
        SOURCE.replace("range(n)", "range(n + 1)"),
        SOURCE.replace("    def cells", "    @staticmethod\n    def cells"),
    ],
    ids=["constant", "string-value", "annotation", "call", "expression", "decorator"],
)
def test_any_change_to_the_code_changes_the_code_fingerprint(edited):
    assert code_fingerprint(edited) != code_fingerprint(SOURCE)


def test_every_module_redocumented_and_reformatted_changes_no_stage_fingerprint(package_copy):
    before = fingerprints()
    for module in package_copy.rglob("*.py"):
        module.write_text(redocumented_and_reformatted(module.read_text(encoding="utf-8")), encoding="utf-8")

    assert fingerprints() == before


def test_editing_a_module_changes_the_fingerprint_of_exactly_the_stages_that_import_it(package_copy):
    before = fingerprints()
    with (package_copy / "features" / "gmm.py").open("a") as source:
        source.write("\nEDITED = True\n")
    after = fingerprints()

    changed = {stage for stage in before if before[stage] != after[stage]}
    # text imports the GMM fit for its local tokens; training, deploy and attention read slide mixtures through the
    # GMM store contract, whose token type (GMMResult) lives in gmm.py. Nothing else changes.
    assert changed == {"gmm", "text", "training", "deploy", "attention"}


def test_a_new_helper_module_is_fingerprinted_as_soon_as_a_stage_imports_it(package_copy):
    (package_copy / "slides" / "tiling_helpers.py").write_text("BORDER_PX = 2\n")
    with (package_copy / "slides" / "tiling.py").open("a") as source:
        source.write("\nfrom mosare.slides.tiling_helpers import BORDER_PX  # noqa: E402\n")
    before = fingerprints()
    (package_copy / "slides" / "tiling_helpers.py").write_text("BORDER_PX = 3\n")

    assert fingerprints()["tiling"] != before["tiling"]


def test_log_plumbing_edits_change_no_fingerprint(package_copy):
    before = fingerprints()
    with (package_copy / "core" / "logs.py").open("a") as source:
        source.write("\nEDITED = True\n")

    assert fingerprints() == before


def test_a_comment_appended_to_tiling_changes_no_stage_fingerprint(package_copy):
    before = fingerprints()
    with (package_copy / "slides" / "tiling.py").open("a") as source:
        source.write("\n# an edit\n")

    assert fingerprints() == before


def test_a_code_edit_in_tiling_changes_the_stages_that_import_it(package_copy):
    before = fingerprints()
    with (package_copy / "slides" / "tiling.py").open("a") as source:
        source.write("\nEDITED = True\n")
    after = fingerprints()

    changed = {stage for stage in before if before[stage] != after[stage]}
    importing = {
        stage
        for stage in provenance.STAGE_SOURCES
        if package_copy / "slides" / "tiling.py" in provenance.stage_source_files(stage)
    }
    assert "tiling" in changed
    assert changed == importing
