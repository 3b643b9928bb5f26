"""config.yaml validation: defaults filled, unknown keys and wrong types fail naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mosare.config import ConfigError, cohort_train_config, load_config, validate_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def shipped_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_shipped_config_validates_and_gets_the_papers_defaults(shipped_config: dict) -> None:
    config = validate_config(shipped_config)
    assert set(config["cohorts"]) == {"nsclc", "rcc", "brca"}
    assert config["cohorts"]["nsclc"]["classes"] == ["LUAD", "LUSC"]
    assert config["cohorts"]["rcc"]["classes"] == ["CCRCC", "PRCC"]
    assert config["cohorts"]["brca"]["classes"] == ["IDC", "ILC"]
    assert config["tiling"]["patch_px"] == 256 and config["tiling"]["target_mpp"] == 0.5
    assert config["gmm"]["components"] == 16
    assert config["train"]["folds"] == 5 and config["train"]["missing_rates"] == [0.3, 0.5]
    # Not written in config.yaml, so it comes from the schema: the paper's 100 epochs, batch 32.
    assert config["train"]["epochs"] == 100 and config["train"]["batch_size"] == 32
    assert config["train"]["contrastive_warmup_epochs"] == 10


def test_cohort_train_override_changes_only_the_keys_it_names(shipped_config: dict) -> None:
    config = validate_config(shipped_config)
    nsclc = cohort_train_config(config, "nsclc")
    assert nsclc["epochs"] == 20  # the demo's override
    assert nsclc["batch_size"] == 32 and nsclc["folds"] == 5  # untouched global values


def test_user_cohort_gets_paper_training_settings(tmp_path: Path) -> None:
    config = validate_config({"cohorts": {"mine": {"classes": ["A", "B"], "samples": "s.tsv"}}})
    assert cohort_train_config(config, "mine")["epochs"] == 100
    assert config["encoder"]["name"] == "uni"


def test_unknown_key_fails_naming_the_key(shipped_config: dict) -> None:
    broken = copy.deepcopy(shipped_config)
    broken["gmm"]["componets"] = 8
    with pytest.raises(ConfigError, match=r"at 'gmm'.*'componets' was unexpected"):
        validate_config(broken)


def test_wrong_type_fails_naming_the_key(shipped_config: dict) -> None:
    broken = copy.deepcopy(shipped_config)
    broken["tiling"]["patch_px"] = "256"
    with pytest.raises(ConfigError, match=r"at 'tiling/patch_px'.*not of type 'integer'"):
        validate_config(broken)


def test_every_error_is_reported_at_once(shipped_config: dict) -> None:
    broken = copy.deepcopy(shipped_config)
    broken["tiling"]["patch_px"] = "256"
    broken["train"]["folds"] = 1
    with pytest.raises(ConfigError) as error:
        validate_config(broken)
    assert "tiling/patch_px" in str(error.value) and "train/folds" in str(error.value)


def test_cohort_needs_exactly_one_of_samples_or_demo() -> None:
    with pytest.raises(ConfigError, match="exactly one of 'samples:'"):
        validate_config({"cohorts": {"x": {"classes": ["A", "B"], "samples": "s.tsv", "demo": {}}}})
    with pytest.raises(ConfigError, match="exactly one of 'samples:'"):
        validate_config({"cohorts": {"x": {"classes": ["A", "B"]}}})


def test_cohort_name_must_be_usable_as_a_path_component() -> None:
    with pytest.raises(ConfigError, match="cohorts"):
        validate_config({"cohorts": {"my cohort": {"classes": ["A", "B"], "samples": "s.tsv"}}})


def test_load_config_reports_broken_yaml(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("cohorts: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
