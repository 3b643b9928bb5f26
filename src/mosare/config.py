"""Load and validate config.yaml against workflow/schemas/config.schema.yaml (found and read by
mosare.core.config_schema), with the names each plugin registry holds (encoders, tissue detectors, models) filled in
as the schema's enums, so the registries are the one list of what a name may be.

Sits above every layer (``pyproject.toml``'s import-linter contract): it reads every registry.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml

from mosare.core.config_schema import config_schema, config_schema_path
from mosare.core.paths import encoder_dir_name
from mosare.core.plugins import Registry
from mosare.features.encoder_specs import (
    ENCODERS,
    TIMM_PREFIX,
    EncoderWeightsError,
    check_checkpoint_setting,
    encoder_spec,
)
from mosare.model.specs import MODELS
from mosare.slides.tissue import TISSUE_DETECTORS

# Snakemake merges config.yaml with every --configfile before validation, so no single file can be blamed.
WORKFLOW_CONFIG = "the workflow configuration (config.yaml and any --configfile)"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the offending key and the fix."""


def _error_location(error: Any) -> str:
    path = "/".join(str(part) for part in error.absolute_path)
    return path or "(top level)"


def _plugin_names(registry: Registry[Any], **extra: Any) -> dict[str, Any]:
    """A schema fragment: one of ``registry``'s names (marked with its kind, for the error message)."""
    return {
        "x-plugin-kind": registry.kind,
        "x-plugin-dir": str(registry.plugin_dir()),
        "enum": registry.names(),
        **extra,
    }


def registry_schema() -> dict[str, Any]:
    """The config schema with the names of every plugin registry filled in as enums."""
    schema = config_schema()  # already a fresh copy
    encoder = schema["properties"]["encoder"]["properties"]["name"]
    encoder["anyOf"] = [_plugin_names(ENCODERS), {"pattern": f"^{TIMM_PREFIX}.+"}]
    encoder["x-plugin-kind"] = ENCODERS.kind
    schema["properties"]["tiling"]["properties"]["tissue"]["properties"]["method"].update(
        _plugin_names(TISSUE_DETECTORS)
    )
    schema["$defs"]["train"]["properties"]["models"]["items"].update(_plugin_names(MODELS))
    return schema


def validate_config(config: dict[str, Any], *, source: str = WORKFLOW_CONFIG) -> dict[str, Any]:
    """Validate ``config`` in place, filling schema defaults; return it. ``source`` names it in errors.

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
    schema = registry_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  - at '{_error_location(e)}': {_explain(e)}" for e in errors]
        raise ConfigError(f"{source} is invalid (schema: workflow/schemas/config.schema.yaml):\n" + "\n".join(lines))
    # No deploy section is written as null too; Snakemake's default-filling would step into a null object.
    if config.get("deploy") is None:
        config.pop("deploy", None)
    validate(config, str(config_schema_path()), set_default=True)
    config.setdefault("deploy", None)
    for name, override in raw_overrides.items():
        config["cohorts"][name]["train"] = override
    return config


def _explain(error: Any) -> str:
    kind = error.schema.get("x-plugin-kind")
    if kind == ENCODERS.kind:
        return (
            f"unknown encoder.name {error.instance!r}; choose one of {ENCODERS.names()} or '{TIMM_PREFIX}<architecture>' "
            f"(a new encoder is one module in {ENCODERS.plugin_dir()})"
        )
    if kind is not None:
        return f"unknown {kind} {error.instance!r}; registered: {', '.join(map(repr, error.schema['enum']))} " + (
            f"(a new one is one module in {error.schema['x-plugin-dir']})"
        )
    if error.validator == "not" and error.schema.get("x-task-rule") == "survival":
        return (
            "a survival cohort (task: survival) has no classes: its outcome is the sample sheet's time and event "
            "columns; remove classes"
        )
    if error.validator == "required" and error.validator_value == ["classes"]:
        return "a classification cohort needs classes (or task: survival, with time and event in its sample sheet)"
    if error.validator == "oneOf" and error.absolute_path and len(error.absolute_path) == 2:
        return "a cohort needs exactly one of 'samples:' (your sample sheet, optionally with 'rna:') or 'demo:'"
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        unknown = [key for key in error.instance if key not in allowed]
        return "; ".join(_unknown_key(str(key), allowed) for key in unknown)
    return error.message


def _unknown_key(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    suggestion = f"did you mean {close[0]!r}?" if close else "check the spelling"
    return f"unknown key {key!r}: {suggestion} (allowed here: {', '.join(allowed)})"


def check_encoder_weights_configured(config: dict[str, Any], *, source: str = WORKFLOW_CONFIG) -> None:
    """Fail at planning, not when the first embedding job runs, when an encoder cannot get its weights.

    Every encoder whose weights do not ship in a package (its ``EncoderSpec``) needs a checkpoint: ``encoder.checkpoint``,
    or the ``checkpoint`` of its ``compare_encoders`` entry. Only that it is set is checked: finished results plan
    without the file (see mosare.features.weights_fingerprint).
    """
    for index, settings in enumerate(run_encoders(config, source=source).values()):
        try:
            check_checkpoint_setting(settings["name"], settings.get("checkpoint"))
        except (EncoderWeightsError, ValueError) as error:
            entry = "" if index == 0 else (
                f" (in compare_encoders, give it as {{name: {settings['name']}, checkpoint: /path/to/weights}})"
            )  # fmt: skip
            raise ConfigError(f"{source} is invalid: {error}{entry}") from error


def run_encoders(config: dict[str, Any], *, source: str = WORKFLOW_CONFIG) -> dict[str, dict[str, Any]]:
    """Every encoder the run embeds with, by its directory name (``mosare.core.paths.encoder_dir_name``): ``encoder``
    first (the one behind ``metrics.tsv``), then each of ``compare_encoders``, with ``encoder``'s other settings
    (batch size, workers, ...) and its own name and checkpoint."""
    primary = config["encoder"]
    encoders = {encoder_dir_name(primary["name"]): dict(primary)}
    for entry in config.get("compare_encoders") or []:
        named: dict[str, Any] = {"name": entry, "checkpoint": None} if isinstance(entry, str) else {
            "checkpoint": None,
            **entry,
        }  # fmt: skip
        name = str(named["name"])
        try:
            encoder_spec(name)
        except (KeyError, ValueError) as error:
            raise ConfigError(f"{source}: compare_encoders: {error}") from error
        slug = encoder_dir_name(name)
        if slug in encoders:
            raise ConfigError(
                f"{source}: compare_encoders names {name!r} twice, or the encoder itself; each encoder once"
            )
        encoders[slug] = {**primary, **named}
    return encoders


def reads_slides(model: str) -> bool:
    """Whether a registered model reads slide features (fusion models and the slide-only ones do)."""
    return MODELS.get(model).required_modality in (None, "wsi")


def encoder_comparison_train_config(config: dict[str, Any], cohort: str) -> dict[str, Any]:
    """The cohort's training for a compared encoder: its models that read slides, the rest unchanged (the RNA-only
    and report-only models do not depend on the encoder, so they are trained once, for ``encoder``)."""
    train = cohort_train_config(config, cohort)
    return {**train, "models": [model for model in train["models"] if reads_slides(model)]}


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    return validate_config(config, source=str(path))


# Train settings only a survival cohort reads. A classification cohort's train section leaves them out, so its
# params, model cards and every output stay what they were before survival existed.
SURVIVAL_ONLY_SETTINGS = ("survival", "horizons")


def cohort_task(config: dict[str, Any], cohort: str) -> str:
    """``classification`` or ``survival``: the cohort's ``task`` (default classification)."""
    return str(config["cohorts"][cohort].get("task") or "classification")


def is_survival(config: dict[str, Any], cohort: str) -> bool:
    return cohort_task(config, cohort) == "survival"


def cohort_classes(config: dict[str, Any], cohort: str) -> list[str]:
    """A classification cohort's classes; none for a survival cohort."""
    return list(config["cohorts"][cohort].get("classes") or [])


def cohort_time_unit(config: dict[str, Any], cohort: str) -> str:
    return str(config["cohorts"][cohort].get("time_unit") or "months")


def cohort_train_config(config: dict[str, Any], cohort: str) -> dict[str, Any]:
    """The global ``train`` section with the cohort's own overrides applied. A survival cohort's also carries
    ``task: survival`` and the survival settings filled from the schema; a classification cohort's has neither."""
    from mosare.core.config_schema import schema_defaults

    merged = dict(config["train"])
    merged.update(config["cohorts"][cohort].get("train", {}))
    if is_survival(config, cohort):
        defaults = schema_defaults("train")
        merged["survival"] = {**defaults["survival"], **(merged.get("survival") or {})}
        merged.setdefault("horizons", defaults["horizons"])
        merged["task"] = "survival"
        merged["time_unit"] = cohort_time_unit(config, cohort)
    else:
        for key in SURVIVAL_ONLY_SETTINGS:
            merged.pop(key, None)
    return merged


def deploy_sections(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``deploy`` section as a list of ``{from, to, missing_genes}`` (it is one such mapping, or a list)."""
    deploy = config.get("deploy")
    if not deploy:
        return []
    return [{"missing_genes": "error", **section} for section in (deploy if isinstance(deploy, list) else [deploy])]


def deploy_pairs(config: dict[str, Any], *, source: str = WORKFLOW_CONFIG) -> list[tuple[str, str]]:
    """(from, to) cohort pairs of the ``deploy`` section(s); every cohort named must be configured, of the source's
    task and, for classification, with the source's classes in the same order (the saved models predict those)."""
    cohorts = config["cohorts"]
    pairs, problems = [], []
    for deploy in deploy_sections(config):
        named = [deploy["from"], *deploy["to"]]
        absent = [f"'{name}' is not under cohorts" for name in named if name not in cohorts]
        problems += absent
        if absent:
            continue
        task = cohort_task(config, deploy["from"])
        wrong_task = [
            f"'{name}' is a {cohort_task(config, name)} cohort, '{deploy['from']}' a {task} one"
            for name in deploy["to"]
            if cohort_task(config, name) != task
        ]
        problems += wrong_task
        if wrong_task:
            continue
        classes = cohort_classes(config, deploy["from"])
        problems += [
            f"'{name}' has classes {cohort_classes(config, name)}, the models of '{deploy['from']}' predict {classes}"
            for name in deploy["to"]
            if cohort_classes(config, name) != classes
        ]
        pairs += [(deploy["from"], target) for target in deploy["to"]]
    if problems:
        raise ConfigError(f"{source}: deploy: {'; '.join(problems)}; fix the deploy section or the cohorts")
    if len(set(pairs)) < len(pairs):
        raise ConfigError(f"{source}: deploy: a (from, to) pair is listed twice; list each once")
    return pairs


def deploy_missing_genes(config: dict[str, Any], source: str, target: str) -> str:
    """``missing_genes`` of the deploy section holding the pair (``error`` or ``zero``)."""
    for deploy in deploy_sections(config):
        if deploy["from"] == source and target in deploy["to"]:
            return str(deploy["missing_genes"])
    raise KeyError(f"no deploy section applies {source}'s models to {target}")


def slide_qc_min_patches(config: dict[str, Any]) -> int:
    """``qc.min_patches``, or ``gmm.components`` when it is null."""
    configured = config["qc"]["min_patches"]
    return int(config["gmm"]["components"] if configured is None else configured)
