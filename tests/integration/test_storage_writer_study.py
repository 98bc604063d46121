"""A real study with its trials' storage writes made by the child process
(TUNER_STORAGE_WRITER=process): every finished trial holds all its reports and
attributes, the pruner still prunes, the budget is exact and the child is gone after."""

from __future__ import annotations

import subprocess

import optuna
import yaml

from tests.conftest import tiny_study
from tuner.config import load_config
from tuner.run.runner import run_study


def test_a_study_with_the_storage_writer_process(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNER_STORAGE_WRITER", "process")
    doc = tiny_study(
        **{
            "budget.n_trials": 6,
            "training.max_epochs": 4,
            "pruner": {"name": "ThresholdPruner", "lower": 0.6},
            "search_space.lr": {"float": [1e-5, 1e-2], "log": True},
        }
    )
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(path)
    before = _children()
    run_study(cfg, say=lambda s: None, live=False, refit=False)
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    trials = study.get_trials(deepcopy=False)
    assert len([t for t in trials if t.state.is_finished()]) == 6
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    for t in trials:
        epochs = t.user_attrs["epochs_trained"]
        assert len(t.intermediate_values) == epochs  # every report, before the trial was told
        assert {"worker", "mlflow_run_id", "fold_scores", "diagnosis"} <= set(t.user_attrs)
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.user_attrs["cv_mean"] == t.value
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    for t in pruned:  # the pruner decided from the values in memory: the last one is low
        assert t.intermediate_values[max(t.intermediate_values)] < 0.6
        assert t.user_attrs["pruned_by"] == "pruner"
    assert pruned  # lr down to 1e-5 in 4 epochs: some trials stay below 0.6
    assert not _children() - before  # the child stopped with the search


def _children() -> set[str]:
    found = subprocess.run(["pgrep", "-f", "tuner.run.write_behind_process"], capture_output=True, text=True)
    return set(found.stdout.split())
