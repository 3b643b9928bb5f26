"""Load and validate config.yaml against workflow/schemas/config.schema.yaml."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "workflow" / "schemas"
CONFIG_SCHEMA = SCHEMA_DIR / "config.schema.yaml"
SAMPLES_SCHEMA = SCHEMA_DIR / "samples.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key and the fix."""


def _error_location(error: Any) -> str:
    path = "/".join(str(part) for part in error.absolute_path)
    return path or "(top level)"


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` in place, filling schema defaults; return it.

    Per-cohort ``train`` overrides are kept as written (not default-filled) so that a partial
    override such as ``{epochs: 20}`` only changes what it names; see :func:`cohort_train_config`.
    """
    import jsonschema
    from snakemake.utils import validate

    raw_overrides = {
        name: copy.deepcopy(cohort.get("train", {}))
        for name, cohort in (config.get("cohorts") or {}).items()
        if isinstance(cohort, dict)
    }
    schema = yaml.safe_load(CONFIG_SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  - at '{_error_location(e)}': {_explain(e)}" for e in errors]
        raise ConfigError(
            "config.yaml is invalid (schema: workflow/schemas/config.schema.yaml):\n" + "\n".join(lines)
        )
    validate(config, str(CONFIG_SCHEMA), set_default=True)
    for name, override in raw_overrides.items():
        config["cohorts"][name]["train"] = override
    return config


def _explain(error: Any) -> str:
    if error.validator == "oneOf" and error.absolute_path and len(error.absolute_path) == 2:
        return "a cohort needs exactly one of 'samples:' (your sample sheet, optionally with 'rna:') or 'demo:'"
    if error.validator == "additionalProperties":
        return f"{error.message}; check the spelling against the schema"
    return error.message


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    return validate_config(config)


def cohort_train_config(config: dict[str, Any], cohort: str) -> dict[str, Any]:
    """The global ``train`` section with the cohort's own overrides applied."""
    merged = dict(config["train"])
    merged.update(config["cohorts"][cohort].get("train", {}))
    return merged
