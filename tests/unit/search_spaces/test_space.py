"""Search space → trial.suggest_*: ranges, log scale, conditions, fixed values."""

from __future__ import annotations

import optuna
import pytest

from search_spaces import SearchSpace, preset_names


def _space(doc):
    return SearchSpace.model_validate(doc)


def test_conditional_parameter_only_when_parent_matches():
    space = _space(
        {
            "optimizer": {"categorical": ["adamw", "sgd"]},
            "momentum": {"float": [0.8, 0.99], "when": {"optimizer": "sgd"}},
            "lr": {"float": [1e-4, 1e-1], "log": True},
        }
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {"adamw": 0, "sgd": 0}
    for _ in range(40):
        trial = study.ask()
        params = space.suggest(trial)
        seen[params["optimizer"]] += 1
        assert ("momentum" in params) == (params["optimizer"] == "sgd")
        assert 1e-4 <= params["lr"] <= 1e-1
        assert set(trial.params) == set(params)  # what was asked is what Optuna recorded
        study.tell(trial, 0.0)
    assert seen["adamw"] and seen["sgd"]


def test_parent_declared_after_child_is_ordered():
    space = _space(
        {
            "momentum": {"float": [0.8, 0.99], "when": {"optimizer": ["sgd"]}},
            "optimizer": {"fixed": "sgd"},
        }
    )
    params = space.suggest(optuna.trial.FixedTrial({"momentum": 0.9}))
    assert params == {"optimizer": "sgd", "momentum": 0.9}


def test_fixed_and_scalar_values_are_not_searched():
    space = _space({"width": 32, "depth": {"fixed": 2}, "lr": {"float": [0.01, 0.1]}})
    trial = optuna.trial.FixedTrial({"lr": 0.05})
    assert space.suggest(trial) == {"width": 32, "depth": 2, "lr": 0.05}
    assert set(space.distributions()) == {"lr"}


def test_complete_adds_the_fixed_values_a_trial_trained_with():
    """Optuna stores only the searched params; the refit must train the fixed ones too."""
    space = _space(
        {
            "optimizer": {"categorical": ["adamw", "sgd"]},
            "momentum": {"fixed": 0.8, "when": {"optimizer": "sgd"}},
            "width": 16,
            "lr": {"float": [0.01, 0.1]},
        }
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(10):
        trial = study.ask()
        trained = space.suggest(trial)
        assert "width" not in trial.params  # what Optuna keeps ...
        assert space.complete(trial.params) == trained  # ... completed to what was trained
        study.tell(trial, 0.0)
    assert space.complete({"optimizer": "adamw", "lr": 0.05}) == {
        "optimizer": "adamw",
        "lr": 0.05,
        "width": 16,
    }


def test_int_and_step():
    space = _space({"width": {"int": [16, 64], "step": 16}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    values = set()
    for _ in range(30):
        t = study.ask()
        values.add(space.suggest(t)["width"])
        study.tell(t, 0.0)
    assert values <= {16, 32, 48, 64} and len(values) > 1


def test_cycle_is_rejected():
    with pytest.raises(ValueError, match="cycle"):
        _space(
            {
                "a": {"categorical": [1, 2], "when": {"b": 1}},
                "b": {"categorical": [1, 2], "when": {"a": 1}},
            }
        )


def test_presets_exist_and_validate():
    from search_spaces import preset_path

    assert "regularization" in preset_names()
    import yaml

    for name in preset_names():
        doc = yaml.safe_load(preset_path(name).read_text())
        assert _space(doc).names
