"""Shared test setup: quiet libraries, one torch thread, tiny study files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    # Test processes share 2 cores; oversubscription made training ~30x slower here.
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def tiny_study(**overrides: Any) -> dict[str, Any]:
    """A study document that trains in about a second per trial."""
    doc: dict[str, Any] = {
        "name": "tiny",
        "seed": 0,
        "objective": {"metric": "balanced_accuracy"},
        "data": {"source": "sklearn:digits", "test_size": 0.2, "folds": 2},
        "model": {"family": "mlp"},
        "training": {"max_epochs": 2, "batch_size": 128, "threads": 1},
        "search_space": {
            "lr": {"float": [1e-3, 1e-2], "log": True},
            "dropout": {"float": [0.0, 0.3]},
            "batchnorm": {"categorical": ["none", "after_activation"]},
            "width": {"fixed": 16},
        },
        "budget": {"n_trials": 3},
        "sampler": {"name": "RandomSampler"},
        "pruner": None,
        "fold_pruning": {"enabled": False},
        "mlflow": {"log_model": False},
    }
    return with_overrides(doc, overrides)


def with_overrides(doc: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with each ``"a.b.c": value`` set at that key path (sections created as needed)."""
    for key, value in overrides.items():
        node = doc
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return doc


def regression_study(**overrides: Any) -> dict[str, Any]:
    """``tiny_study`` as a regression on sklearn:diabetes (rmse, a two-parameter space)."""
    doc = tiny_study(
        **{
            "task": "regression",
            "objective": {},
            "data.source": "sklearn:diabetes",
            "search_space": {"lr": {"float": [1e-3, 1e-2], "log": True}, "width": {"fixed": 16}},
        }
    )
    return with_overrides(doc, overrides)


@pytest.fixture
def write_study(tmp_path: Path):
    """Write a study document to tmp_path/study.yaml and return its path."""

    def write(doc: dict[str, Any] | None = None, filename: str = "study.yaml", **overrides: Any) -> Path:
        path = tmp_path / filename
        path.write_text(yaml.safe_dump(doc if doc is not None else tiny_study(**overrides)))
        return path

    return write


def check_study_runs(runs: list[Any], study: Any) -> None:
    """MLflow's side of a study: one parent run, exactly one child per finished trial
    under it (the run the trial names), none RUNNING."""
    import optuna

    parents = [r for r in runs if r.data.tags.get("tuner.role") == "study"]
    assert len(parents) == 1, [r.info.run_id for r in parents]
    assert study.user_attrs["tuner_mlflow_parent_run_id"] == parents[0].info.run_id
    children = [r for r in runs if r.data.tags.get("tuner.role") == "trial"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    for t in study.get_trials(states=finished):
        mine = [r for r in children if r.data.tags["tuner.trial"] == str(t.number)]
        assert len(mine) == 1, (t.number, len(mine))
        assert mine[0].info.run_id == t.user_attrs["mlflow_run_id"]
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []


def check_retried_once(study: Any, number: int) -> Any:
    """Trial ``number`` (its worker killed) failed and was re-run exactly once, with its
    parameters; returns the failed trial."""
    import optuna

    dead = study.trials[number]
    assert dead.state == optuna.trial.TrialState.FAIL
    retried = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number
    retries = [t for t in study.trials if retried(t) == number]
    assert len(retries) == 1 and retries[0].params == dead.params
    return dead
