"""Survival cohorts in the config (issue 22): task, time_unit, train.survival and train.horizons; classification
cohorts' train sections unchanged."""

from __future__ import annotations

import copy

import pytest

from mosare.config import ConfigError, cohort_classes, cohort_task, cohort_train_config, deploy_pairs, validate_config

SURVIVAL = {"task": "survival", "demo": {"patients": 12}}
CLASSIFICATION = {"classes": ["A", "B"], "demo": {}}


def test_survival_cohort_needs_no_classes_and_gets_survival_settings() -> None:
    config = validate_config({"cohorts": {"s": copy.deepcopy(SURVIVAL), "c": copy.deepcopy(CLASSIFICATION)}})
    assert cohort_task(config, "s") == "survival" and cohort_task(config, "c") == "classification"
    assert config["cohorts"]["s"]["time_unit"] == "months"
    assert cohort_classes(config, "s") == []
    train = cohort_train_config(config, "s")
    assert train["survival"] == {"head": "hazard", "bins": 4, "alpha": 0.0}
    assert train["horizons"] is None and train["task"] == "survival"


def test_classification_train_section_has_no_survival_keys() -> None:
    """A classification cohort's train section is what it was before survival existed (model cards unchanged)."""
    config = validate_config({"cohorts": {"c": copy.deepcopy(CLASSIFICATION)}, "train": {"survival": {"bins": 3}}})
    train = cohort_train_config(config, "c")
    assert not {"survival", "horizons", "task"} & set(train)


def test_cohort_survival_override_merges_with_defaults() -> None:
    cohort = {**copy.deepcopy(SURVIVAL), "train": {"survival": {"head": "cox"}, "horizons": [12, 24]}}
    config = validate_config({"cohorts": {"s": cohort}})
    train = cohort_train_config(config, "s")
    assert train["survival"] == {"head": "cox", "bins": 4, "alpha": 0.0}
    assert train["horizons"] == [12, 24]


@pytest.mark.parametrize(
    ("cohort", "message"),
    [
        ({**SURVIVAL, "classes": ["A", "B"]}, "has no classes"),
        ({"demo": {}}, "needs classes"),
        ({**SURVIVAL, "task": "regression"}, "regression"),
    ],
)
def test_bad_task_settings_are_named(cohort: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config({"cohorts": {"x": copy.deepcopy(cohort)}})


def test_deploy_refuses_mixed_tasks() -> None:
    config = validate_config(
        {
            "cohorts": {"s": copy.deepcopy(SURVIVAL), "c": copy.deepcopy(CLASSIFICATION)},
            "deploy": {"from": "s", "to": ["c"]},
        }
    )
    with pytest.raises(ConfigError, match="survival"):
        deploy_pairs(config)


def test_deploy_takes_a_list_of_sections_one_per_source() -> None:
    """A classification and a survival cohort each deploy their models, with their own missing_genes."""
    from mosare.config import deploy_missing_genes

    cohorts = {
        name: copy.deepcopy(SURVIVAL if name.startswith("s") else CLASSIFICATION) for name in ("s", "s2", "c", "c2")
    }
    config = validate_config(
        {
            "cohorts": cohorts,
            "deploy": [{"from": "c", "to": ["c2"]}, {"from": "s", "to": ["s2"], "missing_genes": "zero"}],
        }
    )
    assert deploy_pairs(config) == [("c", "c2"), ("s", "s2")]
    assert deploy_missing_genes(config, "c", "c2") == "error" and deploy_missing_genes(config, "s", "s2") == "zero"
    twice = {**config, "deploy": [{"from": "c", "to": ["c2"]}, {"from": "c", "to": ["c2"]}]}
    with pytest.raises(ConfigError, match="listed twice"):
        deploy_pairs(twice)
    with pytest.raises(ConfigError):
        validate_config({"cohorts": cohorts, "deploy": [{"from": "c"}]})  # a section without 'to'
