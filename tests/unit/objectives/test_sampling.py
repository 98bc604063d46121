"""``sampling: none | oversample | undersample`` (issue 16): the resampling of training
rows, its validation at load, and that train_fold and fine_tune resample the training
rows only. No training: the training loop and the plug-in objective are spies."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from objectives.sampling import resample, resample_index
from search_spaces.params import SAMPLINGS, HParams
from tuner.config import load_config
from tuner.errors import ConfigError


def _imbalanced(n0: int = 90, n1: int = 10, n2: int = 0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows whose first feature is the row's own number, so a resampled row says where it came from."""
    y = torch.tensor([0] * n0 + [1] * n1 + [2] * n2)
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))]
    X = torch.randn(len(y), 3, generator=torch.Generator().manual_seed(seed + 1))
    X[:, 0] = torch.arange(len(y), dtype=torch.float32)
    return X, y


def _origin(X_out: torch.Tensor) -> list[int]:
    return [int(v) for v in X_out[:, 0]]


def test_oversample_equalizes_to_the_largest_class_with_real_rows() -> None:
    X, y = _imbalanced(90, 10, 25)
    Xo, yo = resample(X, y, "oversample", seed=3)
    assert torch.bincount(yo).tolist() == [90, 90, 90]
    origin = _origin(Xo)
    assert torch.equal(Xo, X[origin]) and torch.equal(yo, y[origin])  # whole real rows, labels kept
    assert set(origin) == set(range(len(y)))  # every original row is kept...
    repeats = Counter(origin)
    assert all(y[i] != 0 for i, k in repeats.items() if k > 1)  # ...and only minority rows repeat
    assert sum(k - 1 for k in repeats.values()) == 80 + 65


def test_undersample_keeps_as_many_rows_of_each_class_as_the_smallest() -> None:
    X, y = _imbalanced(90, 10, 25)
    Xu, yu = resample(X, y, "undersample", seed=3)
    assert torch.bincount(yu).tolist() == [10, 10, 10]
    origin = _origin(Xu)
    assert len(set(origin)) == len(origin)  # without replacement
    assert torch.equal(Xu, X[origin]) and torch.equal(yu, y[origin])
    assert {i for i in range(len(y)) if y[i] == 1} <= set(origin)  # the smallest class whole


@pytest.mark.parametrize("mode", ["oversample", "undersample"])
def test_deterministic_per_seed_and_different_across_seeds(mode: str) -> None:
    _, y = _imbalanced(90, 10)
    first = resample_index(y, mode, seed=7)
    assert first is not None
    assert torch.equal(first, resample_index(y, mode, seed=7))  # type: ignore[arg-type]
    assert not torch.equal(first, resample_index(y, mode, seed=8))  # type: ignore[arg-type]
    assert torch.equal(first, first.sort().values)  # ascending: the rows keep their order


def test_nothing_changes_for_none_one_class_or_equal_classes() -> None:
    X, y = _imbalanced(90, 10)
    assert resample(X, y, "none", 0)[0] is X
    balanced = torch.tensor([0, 1, 2] * 5)
    assert resample_index(balanced, "oversample", 0) is None
    assert resample_index(balanced, "undersample", 0) is None
    assert resample_index(torch.zeros(7, dtype=torch.int64), "oversample", 0) is None


def test_a_class_absent_from_the_rows_stays_absent() -> None:
    y = torch.tensor([0] * 12 + [2] * 4)  # class 1 of 3 is not in this fold
    over = resample_index(y, "oversample", 0)
    under = resample_index(y, "undersample", 0)
    assert over is not None and under is not None
    assert torch.bincount(y[over], minlength=3).tolist() == [12, 0, 12]
    assert torch.bincount(y[under], minlength=3).tolist() == [4, 0, 4]


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="sampling must be one of"):
        resample_index(torch.tensor([0, 1, 1]), "smote", 0)


# ------------------------------------------------------------------ config


@pytest.mark.parametrize("value", ["smote", {"categorical": ["none", "oversampling"]}])
def test_a_bad_sampling_value_fails_at_load_naming_the_field_and_choices(write_study, value: Any) -> None:
    path = write_study(search_space={"lr": 0.01, "sampling": value})
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert "search_space.sampling" in msg
    assert str(list(SAMPLINGS)) in msg


def test_sampling_searched_or_fixed_loads(write_study) -> None:
    space = {"lr": 0.01, "sampling": {"categorical": list(SAMPLINGS)}, "class_weight": "balanced"}
    cfg = load_config(write_study(search_space=space))
    assert cfg.search_space.params["sampling"].choices() == SAMPLINGS
    fixed = load_config(
        write_study(filename="fixed.yaml", search_space={"lr": 0.01, "sampling": "oversample"})
    )
    assert (
        HParams.resolve({"sampling": fixed.search_space.params["sampling"].fixed}, 32).sampling
        == "oversample"
    )


# ------------------------------------------------------------------ train_fold and fine_tune


class _Spy:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def record(self, **seen: Any) -> str:
        self.calls.append(seen)
        return "model"


def _train_fold(write_study, monkeypatch, sampling: str, function: str | None) -> dict[str, Any]:
    import objectives.plugins
    import objectives.training
    from objectives.fold import train_fold
    from objectives.guard import DivergenceGuard
    from objectives.models import ModelSpec

    cfg = load_config(write_study(search_space={"lr": 0.01, "sampling": sampling}))
    if function:  # a plug-in objective, without importing one: the spy stands in for it
        cfg = cfg.model_copy(update={"objective": cfg.objective.model_copy(update={"function": function})})
    spy = _Spy()
    monkeypatch.setattr(objectives.training, "fit", lambda model, hp, X, y, **kw: spy.record(X=X, y=y, **kw))
    monkeypatch.setattr(
        objectives.plugins,
        "run_objective",
        lambda fn, trial, data, guard, on_epoch: spy.record(
            X=data.X_train, y=data.y_train, X_val=data.X_val, y_val=data.y_val
        ),
    )
    X, y = _imbalanced(90, 10)
    X_val, y_val = _imbalanced(45, 5, seed=1)
    params = {"lr": 0.01, "sampling": sampling}
    train_fold(
        cfg, ModelSpec("mlp", (3,), 2, None), params, HParams.resolve(params, 32), X, y,
        mean=torch.zeros(3), std=torch.ones(3), guard=DivergenceGuard(cfg.divergence),
        fold=0, seed=11, X_val=X_val, y_val=y_val,
    )  # fmt: skip
    (seen,) = spy.calls
    assert seen["X_val"] is X_val and seen["y_val"] is y_val  # validation rows untouched
    return seen


@pytest.mark.parametrize("function", [None, "my_plugin:objective"], ids=["built-in loop", "plug-in"])
@pytest.mark.parametrize(
    ("sampling", "counts"), [("none", [90, 10]), ("oversample", [90, 90]), ("undersample", [10, 10])]
)
def test_train_fold_resamples_the_training_rows_only(
    write_study, monkeypatch, sampling: str, counts: list[int], function: str | None
) -> None:
    seen = _train_fold(write_study, monkeypatch, sampling, function)
    assert torch.bincount(seen["y"]).tolist() == counts
    assert len(seen["X"]) == sum(counts)


def test_fine_tune_applies_the_recipes_sampling(monkeypatch, tmp_path: Path) -> None:
    import objectives.training
    from objectives.export import FORMAT, RefitModel, save
    from objectives.models import ModelSpec, build_model

    params = {"lr": 0.01, "width": 8, "sampling": "undersample"}
    hp = HParams.resolve(params, 16)
    module = build_model(ModelSpec("mlp", (3,), 2, None), hp, torch.zeros(3), torch.ones(3), params)
    recipe = {
        "format": FORMAT, "family": "mlp", "factory": None, "objective_function": None,
        "params": params, "batch_size": 16, "sample_shape": [3], "n_classes": 2, "metric": "accuracy",
    }  # fmt: skip
    save(tmp_path, module, recipe)
    loaded = RefitModel.load(tmp_path)  # a recipe naming sampling loads
    assert loaded.recipe["params"]["sampling"] == "undersample"
    spy = _Spy()
    monkeypatch.setattr(objectives.training, "fit", lambda model, hp, X, y, **kw: spy.record(X=X, y=y))
    X, y = _imbalanced(90, 10)
    loaded.fine_tune(X.numpy(), y.numpy().astype(np.int64), epochs=1)
    assert torch.bincount(spy.calls[0]["y"]).tolist() == [10, 10]
