"""The workflow's config schema (``workflow/schemas/config.schema.yaml``): where it is, and the one source of every
config default. Needs only PyYAML, so any stage may read a default without importing the config checks.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

CONFIG_SCHEMA_IN_CHECKOUT = Path("workflow", "schemas", "config.schema.yaml")


def find_checkout(start: Path) -> Path:
    """The nearest folder above ``start`` holding the workflow's config schema: the checkout mosare belongs to.

    From ``<checkout>/src/mosare/config.py``, in place or installed editable, that is ``<checkout>``.
    """
    for folder in Path(start).resolve().parents:
        if (folder / CONFIG_SCHEMA_IN_CHECKOUT).is_file():
            return folder
    raise FileNotFoundError(
        f"no {CONFIG_SCHEMA_IN_CHECKOUT} above {start}: mosare runs from a checkout of the workflow; install it "
        "from the checkout with `pip install -e .` (a copied or wheel-installed package has no workflow/ folder)"
    )


@functools.cache
def config_schema_path() -> Path:
    """``workflow/schemas/config.schema.yaml`` of the checkout this mosare runs from."""
    return find_checkout(Path(__file__)) / CONFIG_SCHEMA_IN_CHECKOUT


@functools.cache
def _parsed_schema() -> dict[str, Any]:
    # Parsed once per process: PyYAML's pure-Python parser takes 0.1-0.3 s, and training asks once per unit.
    return yaml.safe_load(config_schema_path().read_text(encoding="utf-8"))


def config_schema() -> dict[str, Any]:
    """The config schema, parsed (a fresh copy: callers may change it)."""
    return copy.deepcopy(_parsed_schema())


def schema_defaults(*section: str) -> dict[str, Any]:
    """The schema's default of every key of a config section that has one: ``schema_defaults("tiling")``,
    ``schema_defaults("tiling", "tissue")``; ``"*"`` steps into a cohort: ``schema_defaults("cohorts", "*", "demo")``.

    Code that takes partial settings (tests, library callers) fills them from here, never from a literal.
    """
    schema = config_schema()
    node = schema
    for key in section:
        node = _resolved(schema, node)
        node = node["additionalProperties"] if key == "*" else node["properties"][key]
    return _filled_defaults(schema, node)


def _resolved(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node`` with its local ``$ref`` and ``allOf`` parts merged in (the forms the config schema uses)."""
    if "$ref" in node:
        target: Any = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**_resolved(schema, target), **{k: v for k, v in node.items() if k != "$ref"}}
    for part in node.get("allOf", ()):
        part = _resolved(schema, part)
        node = {**part, **{k: v for k, v in node.items() if k != "allOf"}}
    return node


def _filled_defaults(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Defaults of an object schema's keys, nested sections filled as validation fills them."""
    defaults = {}
    for key, spec in _resolved(schema, node).get("properties", {}).items():
        spec = _resolved(schema, spec)
        if "properties" in spec and isinstance(spec.get("default"), dict):
            defaults[key] = {**_filled_defaults(schema, spec), **spec["default"]}
        elif "default" in spec:
            defaults[key] = spec["default"]
    return defaults
