"""Reference tables in docs/, generated from their sources of truth: the config schema and the four plugin registries.

Each table sits in a docs page between ``<!-- generated: NAME -->`` and ``<!-- end generated: NAME -->``.
``python -m mosare.reference_docs`` rewrites every block; ``python -m mosare.reference_docs --check`` rewrites
nothing and exits 1 listing the blocks that differ from what the sources give (``tests/test_docs.py`` runs it).
Defaults are written once, in the schema: the docs show them only through these tables.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mosare.core.atomic_files import atomic_file
from mosare.core.config_schema import config_schema, find_checkout

NO_DEFAULT = "-"
COHORT = "<name>"  # stands for a cohort's name in dotted keys


@dataclass(frozen=True)
class ConfigKey:
    """One row of the config reference."""

    key: str  # dotted, e.g. "tiling.tissue.method"; a cohort's keys under "cohorts.<name>"
    type: str
    default: str
    description: str


@dataclass(frozen=True)
class GeneratedBlock:
    """A block of a docs page and the function that renders its content."""

    name: str
    page: str  # relative to the checkout
    render: Callable[[], str]


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """``node`` with a local ``$ref`` (directly or as its one ``allOf`` part) merged in, and the ref it used."""
    ref = node.get("$ref")
    parts = node.get("allOf", ())
    if ref is None and len(parts) == 1 and "$ref" in parts[0]:
        ref = parts[0]["$ref"]
    if ref is None:
        return node, None
    target: Any = schema
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    own = {key: value for key, value in node.items() if key not in ("$ref", "allOf")}
    return {**target, **own}, ref


@dataclass(frozen=True)
class _Node:
    key: str
    node: dict[str, Any]  # refs merged in
    ref: str | None
    required: bool


def _nodes(schema: dict[str, Any]) -> list[_Node]:
    """Every key of the schema, depth first in schema order, refs followed (a ref inside itself is not)."""
    found: list[_Node] = []

    def visit(properties: dict[str, Any], prefix: str, required: Sequence[str], refs: frozenset[str]) -> None:
        for name, node in properties.items():
            resolved, ref = _resolve(schema, node)
            found.append(_Node(f"{prefix}{name}", resolved, ref, name in required))
            if ref in refs:
                continue
            inside = refs | {ref} if ref else refs
            if "properties" in resolved:
                visit(resolved["properties"], f"{prefix}{name}.", resolved.get("required", ()), inside)
            elif isinstance(resolved.get("additionalProperties"), dict):  # a mapping keyed by name: cohorts
                entry = resolved["additionalProperties"]
                visit(entry.get("properties", {}), f"{prefix}{name}.{COHORT}.", entry.get("required", ()), inside)

    visit(schema.get("properties", {}), "", schema.get("required", ()), frozenset())
    return found


def _type_text(node: dict[str, Any]) -> str:
    """A node's type in words: ``integer or null``, ``array of number``, ``one of `a`, `b```."""
    if "enum" in node:
        return "one of " + ", ".join(f"`{_value_text(value)}`" for value in node["enum"])
    types = node.get("type", "any")
    words = []
    for name in [types] if isinstance(types, str) else types:
        if name == "array" and isinstance(node.get("items"), dict):
            words.append(f"array of {_type_text(node['items'])}")
        else:
            words.append(str(name))
    return " or ".join(words)


def _value_text(value: Any) -> str:
    """A default as it would be written in config.yaml (YAML flow style)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_value_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{name}: {_value_text(item)}" for name, item in value.items()) + "}"
    return str(value)


def _cell(text: str) -> str:
    """Text safe inside one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def config_keys(schema: dict[str, Any] | None = None) -> list[ConfigKey]:
    """Every config key of the schema, in schema order: dotted key, type, default and description.

    A ``$ref`` used in several places (``train`` and ``cohorts.<name>.train``) has its keys listed once, under the
    shortest key; the others get one row pointing there.
    """
    schema = config_schema() if schema is None else schema
    nodes = _nodes(schema)
    homes: dict[str, str] = {}
    for item in nodes:
        if item.ref is not None and (item.ref not in homes or item.key.count(".") < homes[item.ref].count(".")):
            homes[item.ref] = item.key
    pointers = [item.key for item in nodes if item.ref is not None and homes[item.ref] != item.key]
    rows = []
    for item in nodes:
        if any(item.key.startswith(f"{pointer}.") for pointer in pointers):
            continue
        description = item.node.get("description", "")
        if item.key in pointers:
            home = homes[item.ref or ""]
            description = f"{description} The keys of `{home}`, listed there.".strip()
            default = NO_DEFAULT
        elif "default" in item.node:
            default = f"`{_value_text(item.node['default'])}`"
        else:
            default = "required" if item.required else NO_DEFAULT
        rows.append(ConfigKey(item.key, _type_text(item.node), default, description))
    return rows


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table; cells are flattened to one line."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def config_reference(schema: dict[str, Any] | None = None) -> str:
    """The config reference table: every key of ``workflow/schemas/config.schema.yaml``."""
    rows = [(f"`{row.key}`", row.type, row.default, row.description) for row in config_keys(schema)]
    return table(("key", "type", "default", "description"), rows)


def encoder_table() -> str:
    """The registered patch encoders (``mosare.features.encoder_specs.ENCODERS``), by name: registration order
    depends on which plugin a process imported first (a test importing one directly registers it early)."""
    from mosare.features.encoder_specs import ENCODERS

    weights = {"checkpoint": "your file, `encoder.checkpoint`"}
    rows = [
        (f"`{name}`", str(spec.dim), weights.get(spec.weights, spec.weights_hint), spec.description)
        for name, spec in sorted(ENCODERS.entries().items())
    ]
    return table(("name", "dim", "weights", "description"), rows)


def model_table() -> str:
    """The registered models (``mosare.model.specs.MODELS``) and the modality each reads."""
    from mosare.model.specs import MODELS

    rows = [
        (f"`{name}`", f"`{spec.required_modality}` only" if spec.required_modality else "all", spec.description)
        for name, spec in MODELS.entries().items()
    ]
    return table(("name", "reads", "description"), rows)


def tissue_detector_table() -> str:
    """The registered tissue detectors (``mosare.slides.tissue.TISSUE_DETECTORS``): name and docstring's first line."""
    from mosare.slides.tissue import TISSUE_DETECTORS

    rows = [(f"`{name}`", _first_line(detector.__doc__)) for name, detector in TISSUE_DETECTORS.entries().items()]
    return table(("name", "description"), rows)


def _first_line(docstring: str | None) -> str:
    lines = (docstring or "").strip().splitlines()
    return lines[0] if lines else ""


def cohort_figure_table() -> str:
    """The registered cohort figures (``mosare.reporting.cohort_figures.FIGURES``)."""
    from mosare.reporting.cohort_figures import FIGURES

    rows = [(f"`{name}`", figure.task, figure.description) for name, figure in FIGURES.entries().items()]
    return table(("name", "task", "description"), rows)


BLOCKS: tuple[GeneratedBlock, ...] = (
    GeneratedBlock("config", "docs/usage.md", config_reference),
    GeneratedBlock("encoders", "docs/plugins.md", encoder_table),
    GeneratedBlock("tissue-detectors", "docs/plugins.md", tissue_detector_table),
    GeneratedBlock("models", "docs/plugins.md", model_table),
    GeneratedBlock("cohort-figures", "docs/plugins.md", cohort_figure_table),
)


def _block_pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- generated: {re.escape(name)} -->\n)(.*?)(<!-- end generated: {re.escape(name)} -->)", re.DOTALL
    )


def replace_block(text: str, name: str, content: str) -> str:
    """``text`` with the block ``name`` holding ``content``; a ValueError when the page lacks its markers."""
    pattern = _block_pattern(name)
    if not pattern.search(text):
        raise ValueError(
            f"no '<!-- generated: {name} -->' ... '<!-- end generated: {name} -->' block (each marker on its own line)"
        )
    return pattern.sub(lambda match: f"{match[1]}{content.rstrip()}\n{match[3]}", text, count=1)


def rendered_pages(root: Path, blocks: Sequence[GeneratedBlock] = BLOCKS) -> dict[Path, tuple[str, str, list[str]]]:
    """Page -> (current text, text with every block rendered, names of its blocks that change)."""
    pages: dict[Path, tuple[str, str, list[str]]] = {}
    for block in blocks:
        path = root / block.page
        if path not in pages:
            text = path.read_text(encoding="utf-8")
            pages[path] = (text, text, [])
        current, new, stale = pages[path]
        try:
            updated = replace_block(new, block.name, block.render())
        except ValueError as error:
            raise ValueError(f"{block.page}: {error}") from error
        if updated != new:
            stale.append(block.name)
        pages[path] = (current, updated, stale)
    return pages


def stale_blocks(root: Path, blocks: Sequence[GeneratedBlock] = BLOCKS) -> list[str]:
    """``page: block`` for every generated block whose text differs from what its source gives now."""
    return [
        f"{path.relative_to(root)}: {name}"
        for path, (_, _, stale) in rendered_pages(root, blocks).items()
        for name in stale
    ]


def write_blocks(root: Path, blocks: Sequence[GeneratedBlock] = BLOCKS) -> list[Path]:
    """Rewrite the pages whose blocks are stale (atomically); returns the pages written."""
    written = []
    for path, (current, new, _) in rendered_pages(root, blocks).items():
        if new != current:
            with atomic_file(path) as tmp:
                tmp.write_text(new, encoding="utf-8")
            written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mosare.reference_docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 listing the stale blocks")
    parser.add_argument("--root", type=Path, default=None, help="the checkout (default: the one mosare runs from)")
    args = parser.parse_args(argv)
    root = args.root if args.root is not None else find_checkout(Path(__file__))
    try:
        if args.check:
            stale = stale_blocks(root)
            for line in stale:
                print(f"stale: {line}", file=sys.stderr)
            if stale:
                print("run `python -m mosare.reference_docs` to regenerate them", file=sys.stderr)
            return 1 if stale else 0
        for path in write_blocks(root):
            print(f"rewrote {path.relative_to(root)}")
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
