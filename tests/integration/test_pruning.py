"""The divergence guard and fold-aware pruning on real (tiny) training runs.

- lr=10 SGD without batch norm on raw pixels is PRUNED by the guard within 2 epochs,
  with the reason on the trial and on its MLflow run (which ends FINISHED), and nothing
  non-finite reaches the storage (read with sqlite3, not through Optuna);
- healthy trials (batch norm, high momentum, a CNN, clipping) are never stopped by it;
- a trial clearly worse than the best after fold 0 stops before fold 1 and keeps the
  score of the fold it finished.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import tiny_study
from tuner.config import load_config

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class _Quiet:
    """A reporter that keeps the epoch records (stands in for the MLflow run)."""

    def __init__(self) -> None:
        self.records: list[Any] = []

    def epoch(self, record: Any, step: int) -> None:
        self.records.append(record)

    def fold_done(self, fold: int, score: float) -> None:
        pass


def _config(tmp_path: Path, **overrides: Any):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(tiny_study(**overrides)))
    return load_config(path)


def _objective(cfg, study: optuna.Study):
    from objectives.cv import CrossValidatedObjective, Reference
    from tuner.run.runner import prepare

    prep = prepare(cfg)

    def reference() -> Reference | None:  # what the runner passes: the best finished trial
        try:
            best = study.best_trial
        except ValueError:
            return None
        return Reference(best.number, list(best.user_attrs["fold_scores"]))

    import torch

    return CrossValidatedObjective(cfg, prep.dataset, prep.splits, torch.device("cpu"), reference)


def _run(cfg, params_per_trial: list[dict[str, Any]], pruner: Any = None) -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=pruner or optuna.pruners.NopPruner())
    objective = _objective(cfg, study)
    for params in params_per_trial:
        study.optimize(lambda t, p=params: objective(t, p, _Quiet()), n_trials=1, catch=())
    return study


DIVERGING = {
    "lr": 10.0,
    "optimizer": "sgd",
    "momentum": 0.0,
    "batchnorm": "none",
    "width": 16,
}


@pytest.fixture(scope="module")
def diverged(tmp_path_factory):
    """One lr=10 trial through the whole runner: SQLite storage, MLflow SQLite store."""
    from tuner.run.runner import run_study

    tmp = tmp_path_factory.mktemp("diverge")
    path = tmp / "study.yaml"
    doc = tiny_study(
        **{
            "name": "diverge",
            "data.normalize": False,
            "training.max_epochs": 4,
            "search_space": dict(DIVERGING),
            "budget.n_trials": 1,
            "pruner": {"name": "MedianPruner"},
        }
    )
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(path)
    run_study(cfg, say=lambda s: None, live=False)
    return cfg


def test_lr10_sgd_without_bn_is_pruned_by_the_guard_within_two_epochs(diverged) -> None:
    study = optuna.load_study(study_name="diverge", storage=diverged.storage_url)
    (trial,) = study.get_trials()
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["pruned_by"] == "divergence"
    reason = trial.user_attrs["pruned_reason"]
    assert "(fold 0, epoch 0, step" in reason or "(fold 0, epoch 1, step" in reason, reason
    assert trial.user_attrs["epochs_trained"] <= 2
    assert trial.user_attrs["fold_scores"] == []


def test_nothing_non_finite_reaches_the_storage(diverged) -> None:
    db = sqlite3.connect(diverged.base_dir / "diverge.db")
    try:
        kinds = db.execute("SELECT intermediate_value_type FROM trial_intermediate_values").fetchall()
        values = db.execute("SELECT value, value_type FROM trial_values").fetchall()
        attrs = db.execute("SELECT value_json FROM trial_user_attributes").fetchall()
        states = db.execute("SELECT state FROM trials").fetchall()
    finally:
        db.close()
    assert states == [("PRUNED",)]
    assert all(k == "FINITE" for (k,) in kinds)
    assert all(t == "FINITE" and v is not None and math.isfinite(v) for v, t in values)
    for (raw,) in attrs:
        assert "NaN" not in raw and "Infinity" not in raw, raw
        json.loads(raw)  # strict JSON: Python's json would write NaN for a float nan


def test_pruned_run_ends_finished_with_the_reason_tag(diverged) -> None:
    study = optuna.load_study(study_name="diverge", storage=diverged.storage_url)
    (trial,) = study.get_trials()
    client = MlflowClient(diverged.tracking_uri)
    run = client.get_run(trial.user_attrs["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["tuner.state"] == "pruned"
    assert run.data.tags["tuner.pruned_by"] == "divergence"
    assert run.data.tags["tuner.pruned_reason"] == trial.user_attrs["pruned_reason"]
    assert all(math.isfinite(v) for v in run.data.metrics.values())
    # the unfinished epoch it diverged in is logged too: the explosion is visible
    assert run.data.metrics["grad_norm_max"] > 1e3
    assert "grad_norm_mean" in run.data.metrics


@pytest.mark.parametrize(
    "family, params",
    [
        ("mlp", {"lr": 0.03, "optimizer": "adamw", "batchnorm": "before_activation", "width": 16}),
        ("mlp", {"lr": 0.03, "optimizer": "sgd", "momentum": 0.99, "batchnorm": "none", "width": 16}),
        ("mlp", {"lr": 1.0, "optimizer": "sgd", "momentum": 0.0, "batchnorm": "after_activation"}),
        ("cnn", {"lr": 0.004, "optimizer": "sgd", "momentum": 0.98, "batchnorm": "after_activation"}),
        ("cnn", {"lr": 0.01, "optimizer": "adamw", "batchnorm": "none", "max_norm": 0.1}),
    ],
    ids=["mlp-bn-adamw", "mlp-sgd-momentum.99", "mlp-bn-sgd-lr1", "cnn-quickstart-like", "cnn-clipped"],
)
def test_healthy_training_is_never_stopped_by_the_guard(tmp_path, family, params) -> None:
    cfg = _config(tmp_path, **{"model.family": family, "training.max_epochs": 3})
    width = {"width": 8} if family == "cnn" else {"width": 16}
    study = _run(cfg, [{**width, **params}])
    (trial,) = study.get_trials()
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs.get("pruned_reason")
    assert "pruned_by" not in trial.user_attrs
    assert trial.value > 0.25  # it learns: 10 classes, chance is 0.1
    assert trial.user_attrs["epochs_trained"] == 6


def test_divergence_in_a_cnn_and_in_a_later_fold_records_the_finished_folds(tmp_path) -> None:
    cfg = _config(tmp_path, **{"model.family": "cnn", "data.normalize": False, "training.max_epochs": 2})
    objective_params = {**DIVERGING, "width": 8}
    study = _run(cfg, [objective_params])
    (trial,) = study.get_trials()
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["pruned_by"] == "divergence"
    assert "(fold 0, epoch 0," in trial.user_attrs["pruned_reason"]
    assert trial.intermediate_values == {}  # nothing was reported before it diverged


def test_clearly_worse_trial_stops_after_fold_zero_and_keeps_its_fold_score(tmp_path) -> None:
    cfg = _config(
        tmp_path,
        **{"data.folds": 3, "fold_pruning": {"enabled": True, "min_folds": 1, "margin": 2.0}},
    )
    good = {"lr": 0.01, "optimizer": "adamw", "batchnorm": "none", "width": 16}
    bad = {"lr": 1e-5, "optimizer": "sgd", "momentum": 0.0, "batchnorm": "none", "width": 16}
    study = _run(cfg, [good, bad])
    first, second = study.get_trials()
    assert first.state == optuna.trial.TrialState.COMPLETE
    assert len(first.user_attrs["fold_scores"]) == 3
    assert second.state == optuna.trial.TrialState.PRUNED
    assert second.user_attrs["pruned_by"] == "fold"
    assert f"best trial #{first.number}" in second.user_attrs["pruned_reason"]
    scores = second.user_attrs["fold_scores"]
    assert len(scores) == 1 and scores[0] < first.user_attrs["fold_scores"][0]
    assert second.user_attrs["epochs_trained"] == 2  # one fold of two epochs, not three folds
    assert sorted(second.intermediate_values) == [0, 1]


def test_fold_pruning_switched_off_trains_every_fold(tmp_path) -> None:
    cfg = _config(tmp_path, **{"data.folds": 3, "fold_pruning": {"enabled": False}})
    good = {"lr": 0.01, "optimizer": "adamw", "batchnorm": "none", "width": 16}
    bad = {"lr": 1e-5, "optimizer": "sgd", "momentum": 0.0, "batchnorm": "none", "width": 16}
    study = _run(cfg, [good, bad])
    assert [t.state for t in study.get_trials()] == [optuna.trial.TrialState.COMPLETE] * 2
    assert study.get_trials()[1].user_attrs["epochs_trained"] == 6


def test_epoch_pruner_sees_fold_offset_steps(tmp_path) -> None:
    """Step k*max_epochs+e: a pruner compares fold 1's epochs with other trials' fold 1."""
    cfg = _config(tmp_path, **{"training.max_epochs": 2})
    good = {"lr": 0.01, "optimizer": "adamw", "batchnorm": "none", "width": 16}
    bad = {"lr": 1e-5, "optimizer": "sgd", "momentum": 0.0, "batchnorm": "none", "width": 16}
    pruner = optuna.pruners.ThresholdPruner(lower=0.3)
    study = _run(cfg, [good, bad], pruner=pruner)
    first, second = study.get_trials()
    assert sorted(first.intermediate_values) == [0, 1, 2, 3]
    assert second.state == optuna.trial.TrialState.PRUNED
    assert second.user_attrs["pruned_by"] == "pruner"
    assert "ThresholdPruner" in second.user_attrs["pruned_reason"]
    assert second.user_attrs["epochs_trained"] == 1


def test_the_guard_and_the_logs_see_the_norm_before_clipping(tmp_path) -> None:
    cfg = _config(tmp_path, **{"training.max_epochs": 1})
    study = optuna.create_study(direction="maximize")
    objective = _objective(cfg, study)
    reporter = _Quiet()
    params = {"lr": 0.01, "optimizer": "adamw", "width": 16, "max_norm": 0.01}
    study.optimize(lambda t: objective(t, params, reporter), n_trials=1, catch=())
    assert study.get_trials()[0].state == optuna.trial.TrialState.COMPLETE
    # clipped to 0.01, yet the recorded norms are the unclipped ones, far above it
    assert min(r.grad_norm_mean for r in reporter.records) > 0.1
