"""Config validation: complete, at load time, with messages that name path, value and fix."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import REPO, tiny_study
from tuner.config import load_config
from tuner.errors import ConfigError


def _err(write_study, **kw) -> str:
    path = write_study(**kw)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    return str(e.value)


def test_quickstart_example_is_valid():
    cfg = load_config(REPO / "examples" / "digits.yaml")
    assert cfg.name == "digits-regularization"
    assert cfg.model.family == "cnn"
    assert cfg.direction == "maximize"
    assert cfg.budget.timeout == 20 * 60
    # it searches at least the regularization parameters
    assert {"lr", "weight_decay", "dropout", "batchnorm"} <= set(cfg.search_space.names)
    assert cfg.search_space.params["lr"].log
    assert cfg.search_space.params["batchnorm"].categorical == (
        "none",
        "before_activation",
        "after_activation",
    )
    # relative sqlite files live beside the study file
    assert cfg.storage_url == f"sqlite:///{REPO / 'examples' / 'digits-regularization.db'}"
    assert cfg.tracking_uri == f"sqlite:///{REPO / 'examples' / 'mlflow.db'}"


def test_heavier_cnn_example_is_valid_and_stores_apart():
    cfg = load_config(REPO / "examples" / "digits_cnn.yaml")
    assert cfg.name == "digits-cnn" and cfg.model.family == "cnn" and cfg.data.folds == 5
    assert cfg.storage_url == f"sqlite:///{REPO / 'examples' / 'digits-cnn.db'}"


def test_init_template_is_the_quickstart():
    assert (REPO / "tuner" / "templates" / "study.yaml").read_text() == (
        REPO / "examples" / "digits.yaml"
    ).read_text()


def test_folds_below_two_names_path_value_and_file(write_study):
    msg = _err(write_study, **{"data.folds": 1})
    assert "data.folds" in msg and "got 1" in msg and "study.yaml" in msg and ">= 2" in msg


def test_unknown_key_suggests_the_right_one(write_study):
    doc = tiny_study()
    doc["data"]["fold"] = 3
    msg = _err(write_study, **{"data.fold": 3})
    assert "unknown key data.fold" in msg and "did you mean folds" in msg


def test_missing_required_key(write_study):
    doc = tiny_study()
    del doc["data"]
    path = write_study(doc)
    with pytest.raises(ConfigError, match="data is required"):
        load_config(path)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("sampler", {"name": "TPESamplr"}, "did you mean TPESampler"),
        ("sampler", {"name": "TPESampler", "n_startup_trial": 3}, "did you mean 'n_startup_trials'"),
        ("pruner", {"name": "MedianPruner", "warmup": 3}, "MedianPruner takes no argument 'warmup'"),
        ("pruner", {"name": "SuccessiveHalving"}, "did you mean SuccessiveHalvingPruner"),
        ("sampler", {"name": "os.system"}, "unknown sampler"),
        ("budget.n_trials", -3, "budget.n_trials"),
        ("budget.timeout", "20 minutes", "budget.timeout"),
        ("objective.metric", "auc", "objective.metric"),
        ("data.test_size", 1.5, "data.test_size"),
        ("data.source", "sklearn:mnist", "unknown built-in dataset"),
        ("data.source", "data.parquet", ".npz"),
        ("model.family", "transformer", "model.family"),
        ("training.device", "gpu", "training.device"),
        ("name", "has spaces", "name"),
    ],
)
def test_bad_values_are_named(write_study, key, value, expected):
    msg = _err(write_study, **{key: value})
    assert expected in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({}, "search space is empty"),
        ({"lr": {"float": [0.1, 0.01]}}, "low must be <= high"),
        ({"lr": {"float": [0.0, 0.1], "log": True}}, "log: true needs low > 0"),
        (
            {"momentum": {"float": [0.8, 0.9], "when": {"optimizer": "sgd"}}},
            "not a parameter of this search space",
        ),
        (
            {
                "optimizer": {"categorical": ["adamw", "sgd"]},
                "momentum": {"float": [0.8, 0.9], "when": {"optimizer": "sdg"}},
            },
            "can never be 'sdg'",
        ),
        ({"dropout": [0.1, 0.2]}, "ambiguous"),
        ({"dropuot": {"float": [0, 0.5]}}, "did you mean 'dropout'"),
        ({"batchnorm": {"categorical": ["none", "bofore"]}}, "batchnorm must be one of"),
        ({"dropout": {"float": [0.0, 1.5]}}, "dropout must lie in"),
        ({"lr": {"float": [0.1, 0.2], "int": [1, 2]}}, "exactly one of"),
    ],
)
def test_bad_search_spaces(write_study, space, expected):
    msg = _err(write_study, search_space=space)
    assert expected in msg
    assert "search_space" in msg


def test_unknown_preset(write_study):
    assert "unknown search space 'regularisation'" in _err(write_study, search_space="regularisation")


def test_space_file_relative_to_study(tmp_path, write_study):
    (tmp_path / "space.yaml").write_text("lr: {float: [0.001, 0.1], log: true}\n")
    cfg = load_config(write_study(search_space="space.yaml"))
    assert cfg.search_space.names == ["lr"]


def test_python_tags_are_rejected(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="no !!python tags"):
        load_config(path)


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", ""])
def test_document_must_be_a_mapping(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_config(path)


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: x\ndata: {source: [\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(path)


def test_env_interpolation(write_study, monkeypatch):
    monkeypatch.setenv("TUNER_TEST_DB", "sqlite:///from-env.db")
    cfg = load_config(write_study(storage="${TUNER_TEST_DB}"))
    assert cfg.storage_url.endswith("/from-env.db")
    cfg = load_config(write_study(storage="${TUNER_UNSET_VAR:-sqlite:///default.db}"))
    assert cfg.storage_url.endswith("/default.db")
    monkeypatch.delenv("TUNER_TEST_DB")
    with pytest.raises(ConfigError, match="TUNER_TEST_DB is not set"):
        load_config(write_study(storage="${TUNER_TEST_DB}"))


def test_overrides_are_validated_like_the_file(write_study):
    path = write_study()
    assert load_config(path, {"budget.n_trials": 7}).budget.n_trials == 7
    with pytest.raises(ConfigError, match="budget.n_trials"):
        load_config(path, {"budget.n_trials": 0})


def test_config_is_frozen(write_study):
    cfg = load_config(write_study())
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        cfg.seed = 3  # type: ignore[misc]


def test_storage_password_never_in_messages(write_study):
    msg = _err(write_study, storage="ftp://user:hunter2@host/db")
    assert "hunter2" not in msg and "***" in msg


def test_schema_is_json(capsys):
    from tuner.cli import main

    assert main(["schema"]) == 0
    import json

    schema = json.loads(capsys.readouterr().out)
    assert "data" in schema["properties"] and "base_dir" not in schema["properties"]


def test_durations():
    from tuner.config.durations import parse_duration

    assert parse_duration("1h30m") == 5400
    assert parse_duration(90) == 90
    assert parse_duration("90s") == 90
    for bad in ("-5", "0", "abc", "5x", True):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_yaml_roundtrip_of_tiny_study_is_valid(write_study):
    cfg = load_config(write_study())
    assert yaml.safe_dump(cfg.search_space.model_dump(by_alias=True, exclude_defaults=True))


def test_pruner_arguments_checked_against_their_annotation(write_study):
    # min_resource is "str | int" ("auto" or a number): both must load
    for args in ({"min_resource": 1}, {"min_resource": "auto"}):
        cfg = load_config(write_study(pruner={"name": "SuccessiveHalvingPruner", **args}))
        assert cfg.pruner.args == args
    cfg = load_config(write_study(pruner={"name": "HyperbandPruner", "max_resource": 24}))
    assert cfg.pruner.args["max_resource"] == 24
    msg = _err(write_study, sampler={"name": "TPESampler", "n_startup_trials": "many"})
    assert "n_startup_trials" in msg and "must be int" in msg
