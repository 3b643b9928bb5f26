"""The README and docs/ stay true to the code: generated tables current, every page linked, every link and every
`mosare.*` name or repository path they mention pointing at something that exists, and the README's set-up commands
unchanged (CI runs the test one). Cheap: no workflow runs."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

from mosare import reference_docs
from mosare.core.config_schema import schema_defaults

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
PACKAGE = REPO / "src" / "mosare"

INSTALL_AND_RUN = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.14.1 torchvision==0.29.1 && "
    "pip install -e . && snakemake --cores 16 results/nsclc/metrics.tsv"
)
INSTALL_AND_TEST = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.14.1 torchvision==0.29.1 && "
    "pip install -e '.[test]' && python -m pytest"
)

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)
DOTTED_NAME = re.compile(r"\bmosare(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
REPO_PATH = re.compile(r"`((?:src|workflow|tests|benchmarks|profiles|envs|docs|\.ci)/[^`\s{}<>*|:]*)")
BENCHMARK = re.compile(r"`((?:bench_[a-z_]+|training_speed)\.py)")


def text_of(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def prose(page: Path) -> str:
    """The page without its fenced code blocks (recipes and examples name files that do not exist yet)."""
    return FENCE.sub("", text_of(page))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose(page)):
        base = slug(heading)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


def quick_start_commands() -> list[str]:
    """The bash blocks of the README's "Quick start" section, in order."""
    section = text_of(README).split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"^```bash\n(.*?)^```", section, re.MULTILINE | re.DOTALL)]


def test_generated_blocks_are_current():
    stale = reference_docs.stale_blocks(REPO)
    assert not stale, f"stale generated blocks {stale}: run `python -m mosare.reference_docs`"


def test_reference_docs_check_finds_and_rewrites_a_stale_block(tmp_path, capsys):
    for block in reference_docs.BLOCKS:
        (tmp_path / block.page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / block.page, tmp_path / block.page)
    usage = tmp_path / "docs" / "usage.md"
    usage.write_text(usage.read_text(encoding="utf-8").replace("| `train.folds` |", "| `train.fold` |"), "utf-8")

    assert reference_docs.main(["--check", "--root", str(tmp_path)]) == 1
    assert "docs/usage.md: config" in capsys.readouterr().err
    assert reference_docs.main(["--root", str(tmp_path)]) == 0
    assert reference_docs.main(["--check", "--root", str(tmp_path)]) == 0
    assert usage.read_text(encoding="utf-8") == text_of(DOCS / "usage.md")


def test_a_page_without_its_markers_is_an_error(tmp_path):
    page = tmp_path / "docs" / "plugins.md"
    page.parent.mkdir()
    page.write_text("# Plugins\n", encoding="utf-8")
    block = reference_docs.GeneratedBlock("models", "docs/plugins.md", reference_docs.model_table)
    with pytest.raises(ValueError, match="generated: models"):
        reference_docs.stale_blocks(tmp_path, [block])


def test_config_reference_has_every_key_with_the_schema_default():
    rows = {row.key: row for row in reference_docs.config_keys()}
    for section in ("tiling", "qc", "report", "encoder", "gmm", "text", "rna", "train"):
        for key, default in schema_defaults(section).items():
            if not isinstance(default, dict):
                assert rows[f"{section}.{key}"].default == f"`{reference_docs._value_text(default)}`", key
    for key in ("cohorts.<name>.classes", "cohorts.<name>.demo.seed", "tiling.tissue.method", "train.mnar.delta"):
        assert key in rows
    # required for a classification cohort only (a survival cohort has none), so the schema cannot mark it required
    assert "required for a classification cohort" in rows["cohorts.<name>.classes"].description
    assert "The keys of `train`" in rows["cohorts.<name>.train"].description
    assert not any(key.startswith("cohorts.<name>.train.") for key in rows), "train's keys are listed once"


def test_readme_is_short():
    lines = text_of(README).count("\n")
    assert lines <= 300, f"README.md has {lines} lines; move detail to docs/"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / target.split("#")[0]).resolve() for target in LINK.findall(prose(README))}
    missing = [page.name for page in DOCS.glob("*.md") if page.resolve() not in linked]
    assert not missing, f"docs pages not linked from README.md: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(CODE_SPAN.sub("", prose(page))):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no such heading")
    assert not broken, f"{page.name}: {broken}"


def _top_level_names(module: Path) -> set[str]:
    names = set()
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def _missing_name(dotted: str) -> str | None:
    """Why ``mosare.a.b[.Attr]`` names nothing in src/mosare/, or None when it names a module or a module's
    top-level name."""
    parts = dotted.split(".")[1:]
    for cut in range(len(parts), -1, -1):
        base = PACKAGE.joinpath(*parts[:cut])
        module = base.with_suffix(".py") if cut else None
        if module is not None and module.is_file():
            pass
        elif (base / "__init__.py").is_file():
            module = base / "__init__.py"
        else:
            continue
        rest = parts[cut:]
        if not rest or rest[0] in _top_level_names(module):
            return None
        return f"{dotted}: {module.relative_to(REPO)} defines no {rest[0]}"
    return f"{dotted}: no such module"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_named_modules_and_paths_exist(page):
    text = prose(page)
    problems = [problem for name in sorted(set(DOTTED_NAME.findall(text))) if (problem := _missing_name(name))]
    for path in sorted(set(REPO_PATH.findall(text))):
        if not (REPO / path.rstrip(".,;")).exists():
            problems.append(f"{path}: no such file or folder")
    for script in sorted(set(BENCHMARK.findall(text))):
        if not (REPO / "benchmarks" / script).is_file():
            problems.append(f"{script}: not in benchmarks/")
    assert not problems, f"{page.name}: {problems}"


def test_readme_set_up_commands_are_unchanged_and_ci_runs_the_test_one():
    assert quick_start_commands() == [INSTALL_AND_RUN, INSTALL_AND_TEST]
    ci_lines = [line for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines() if line.strip()]
    assert ci_lines[-1].strip() == INSTALL_AND_TEST
