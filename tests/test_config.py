"""config.yaml validation: defaults filled, unknown keys and wrong types fail naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mosare.config import (
    ConfigError,
    check_encoder_weights_configured,
    cohort_task,
    cohort_train_config,
    deploy_pairs,
    load_config,
    validate_config,
)
from mosare.core import config_schema
from mosare.core.config_schema import CONFIG_SCHEMA_IN_CHECKOUT, config_schema_path, find_checkout, schema_defaults

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def shipped_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_shipped_config_validates_and_gets_the_papers_defaults(shipped_config: dict) -> None:
    config = validate_config(shipped_config)
    assert set(config["cohorts"]) == {"nsclc", "nsclc_external", "rcc", "brca", "kirc", "kirc_external"}
    assert config["cohorts"]["nsclc"]["classes"] == config["cohorts"]["nsclc_external"]["classes"] == ["LUAD", "LUSC"]
    assert deploy_pairs(config) == [("nsclc", "nsclc_external"), ("kirc", "kirc_external")]
    assert cohort_task(config, "kirc") == cohort_task(config, "kirc_external") == "survival"
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
    broken["gmm"] = {"componets": 8}
    with pytest.raises(ConfigError, match=r"at 'gmm': unknown key 'componets': did you mean 'components'\?"):
        validate_config(broken)


def test_unknown_keys_get_a_suggestion_from_the_keys_allowed_at_their_place(shipped_config: dict) -> None:
    broken = copy.deepcopy(shipped_config)
    broken["train"]["epoch"] = 3  # the global train section (a $ref in the schema)
    broken["cohorts"]["nsclc"]["train"]["foldz"] = 3
    broken["cohorts"]["nsclc"]["clases"] = ["LUAD", "LUSC"]
    broken["tilling"] = {}
    with pytest.raises(ConfigError) as error:
        validate_config(broken)
    message = str(error.value)
    assert message.startswith(
        "the workflow configuration (config.yaml and any --configfile) is invalid (schema: "
        "workflow/schemas/config.schema.yaml):"
    )
    assert "at '(top level)': unknown key 'tilling': did you mean 'tiling'?" in message
    assert "at 'train': unknown key 'epoch': did you mean 'epochs'?" in message
    assert "at 'cohorts/nsclc/train': unknown key 'foldz': did you mean 'folds'?" in message
    assert "at 'cohorts/nsclc': unknown key 'clases': did you mean 'classes'?" in message


def test_unknown_key_without_a_close_match_lists_the_allowed_keys(shipped_config: dict) -> None:
    broken = copy.deepcopy(shipped_config)
    broken["gmm"] = {"xyz": 1}
    with pytest.raises(
        ConfigError, match=r"unknown key 'xyz': check the spelling \(allowed here: components, max_iter"
    ):
        validate_config(broken)


@pytest.mark.parametrize("name", ["uni", "uni2-h", "timm:resnet18"])
def test_encoder_that_needs_weights_without_a_checkpoint_fails_at_planning_saying_where_they_come_from(
    shipped_config: dict, name: str
) -> None:
    config = validate_config(shipped_config | {"encoder": {"name": name}})
    with pytest.raises(ConfigError, match=rf"encoder '{name}' needs a local weights file but none is set") as error:
        check_encoder_weights_configured(config)
    assert "set 'encoder.checkpoint" in str(error.value)
    if name == "uni2-h":
        assert "request access at https://huggingface.co/MahmoodLab/UNI2-h" in str(error.value)


def test_encoder_weights_file_need_not_exist_at_planning_and_efficientnet_lite0_needs_none(
    shipped_config: dict, tmp_path: Path
) -> None:
    check_encoder_weights_configured(validate_config(copy.deepcopy(shipped_config)))
    moved_away = {"name": "uni", "checkpoint": str(tmp_path / "moved-away.bin")}
    check_encoder_weights_configured(validate_config(shipped_config | {"encoder": moved_away}))


def test_efficientnet_lite0_with_a_checkpoint_and_unknown_encoders_fail_at_planning(shipped_config: dict) -> None:
    with_checkpoint = validate_config(
        shipped_config | {"encoder": {"name": "efficientnet-lite0", "checkpoint": "w.bin"}}
    )
    with pytest.raises(ConfigError, match="remove 'encoder.checkpoint'"):
        check_encoder_weights_configured(with_checkpoint)
    with pytest.raises(ConfigError, match=r"at 'encoder/name': unknown encoder.name 'unii'; choose one of .*'uni'"):
        validate_config(copy.deepcopy(shipped_config) | {"encoder": {"name": "unii", "checkpoint": "w.bin"}})


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


def test_load_config_names_the_file_it_read(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("cohorts: {x: {classes: [A, B], samples: s.tsv}}\ngmm: {componets: 8}\n")
    with pytest.raises(ConfigError, match=rf"(?s)^{path} is invalid .*did you mean 'components'\?"):
        load_config(path)


def test_the_schema_is_found_in_the_checkout_mosare_runs_from() -> None:
    assert config_schema_path() == REPO / "workflow" / "schemas" / "config.schema.yaml"
    assert find_checkout(Path(config_schema.__file__)) == REPO


@pytest.mark.parametrize(
    "depth", [("src", "mosare"), ("src", "mosare", "plots"), ("lib", "python3.11", "site-packages", "mosare")]
)
def test_the_checkout_is_the_nearest_folder_above_the_module_holding_the_schema(tmp_path, depth) -> None:
    checkout = tmp_path / "checkout"
    (checkout / CONFIG_SCHEMA_IN_CHECKOUT).parent.mkdir(parents=True)
    (checkout / CONFIG_SCHEMA_IN_CHECKOUT).write_text("{}")
    module = checkout.joinpath(*depth, "config.py")
    module.parent.mkdir(parents=True)
    module.write_text("")

    assert find_checkout(module) == checkout


def test_a_package_copied_away_from_its_workflow_says_how_to_install_it(tmp_path) -> None:
    module = tmp_path / "site-packages" / "mosare" / "config.py"
    module.parent.mkdir(parents=True)
    module.write_text("")
    with pytest.raises(FileNotFoundError, match=r"no workflow/schemas/config\.schema\.yaml above .*pip install -e \."):
        find_checkout(module)


def test_schema_defaults_are_the_values_validation_fills_in() -> None:
    filled = validate_config({"cohorts": {"c": {"classes": ["A", "B"], "demo": {}}}})
    for section in ("tiling", "encoder", "gmm", "text", "rna", "train"):
        assert schema_defaults(section) == {key: filled[section][key] for key in schema_defaults(section)}, section
    assert schema_defaults("tiling", "tissue") == filled["tiling"]["tissue"]
    assert schema_defaults("cohorts", "*", "demo") == filled["cohorts"]["c"]["demo"]
    assert schema_defaults("tiling")["target_mpp"] == 0.5 and schema_defaults("gmm")["components"] == 16
