"""Several processes conclude one study at once (workers on several machines that reach
the budget together): the test split is scored once, by one of them; the others wait
and reuse its record; a refit whose process died is taken over. Real `tune` processes
on one SQLite storage."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import tiny_study
from tuner.config import load_config
from tuner.run.refit_claim import claim_name
from tuner.run.runner import run_study
from tuner.storage.records import LOCKBOX_ATTR, scorings

ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONWARNINGS": "ignore", "PYTHONUNBUFFERED": "1"}
# A refit of a few seconds (16-row batches), so that concluding processes overlap.
DOC = tiny_study(**{"budget.n_trials": 2, "training.max_epochs": 6, "training.batch_size": 16})


def _study_at_budget(tmp_path: Path) -> optuna.Study:
    """The search done, the test split not scored yet (in this process: it is quicker)."""
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(DOC))
    run_study(load_config(tmp_path / "study.yaml"), refit=False, say=lambda _: None, live=False)
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'tiny.db'}")


def _conclude(tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tuner.cli", "study.yaml"],
        cwd=tmp_path,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _refit_runs(tmp_path: Path) -> list[str]:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiny")
    return [
        r.info.run_name
        for r in client.search_runs([exp.experiment_id])
        if r.info.run_name.startswith("refit")
    ]


def _no_claim_left(tmp_path: Path) -> bool:
    return optuna.get_all_study_names(f"sqlite:///{tmp_path / 'tiny.db'}") == ["tiny"]


def test_processes_concluding_together_refit_and_score_once(tmp_path: Path) -> None:
    study = _study_at_budget(tmp_path)
    procs = [_conclude(tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sum(out.count("refit: training trial") for out in outs) == 1, outs
    (look,) = scorings(study)
    assert look["trial_number"] == study.best_trial.number
    assert all(f"balanced_accuracy {look['score']:.4f}" in out for out in outs)  # both report it
    assert _refit_runs(tmp_path) == [f"refit trial-{look['trial_number']:03d}"]
    assert _no_claim_left(tmp_path)


def _claim(tmp_path: Path, worker: str) -> None:
    """A claim as another process holds it: created, named, just beaten."""
    claim = optuna.create_study(study_name=claim_name("tiny"), storage=f"sqlite:///{tmp_path / 'tiny.db'}")
    claim.set_user_attr("worker", worker)
    claim.set_user_attr("at", time.time())


def test_a_live_holders_refit_is_waited_for_and_its_record_reused(tmp_path: Path, monkeypatch) -> None:
    study = _study_at_budget(tmp_path)
    _claim(tmp_path, f"{socket.gethostname()}:{os.getpid()}")  # this process: alive
    monkeypatch.chdir(tmp_path)

    def holder_finishes() -> None:  # what the holder does at the end of its refit
        record = {
            "trial_number": study.best_trial.number,
            "params": study.best_params,
            "metric": "balanced_accuracy",
            "score": 0.4321,
            "metrics": {"balanced_accuracy": 0.4321},
            "scored_at": "2026-12-02T00:00:00",
            "split_fingerprint": study.user_attrs["tuner_split_fingerprint"],
            "n_test": 360,
        }
        study.set_user_attr(LOCKBOX_ATTR, [record])
        optuna.delete_study(study_name=claim_name("tiny"), storage=f"sqlite:///{tmp_path / 'tiny.db'}")

    said: list[str] = []

    def say(line: str) -> None:
        said.append(line)
        if "waiting for it to score the test split" in line:
            threading.Timer(1.5, holder_finishes).start()  # while this one waits

    summary = run_study(load_config(tmp_path / "study.yaml"), optimize=False, say=say, live=False)
    assert any(line.startswith("the refit is running on ") for line in said), said
    assert not any(line.startswith("refit: training trial") for line in said), said
    assert summary["test"]["score"] == 0.4321 and summary.get("test_reused") is True
    assert len(scorings(study)) == 1 and _refit_runs(tmp_path) == []


def test_a_refit_whose_process_died_is_taken_over(tmp_path: Path, monkeypatch) -> None:
    study = _study_at_budget(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _claim(tmp_path, f"{socket.gethostname()}:{gone.pid}")
    monkeypatch.chdir(tmp_path)

    said: list[str] = []
    run_study(load_config(tmp_path / "study.yaml"), optimize=False, say=said.append, live=False)
    assert f"the refit claimed by {socket.gethostname()}:{gone.pid} was abandoned" in said[0], said
    assert sum(line.startswith("refit: training trial") for line in said) == 1
    assert len(scorings(study)) == 1 and _no_claim_left(tmp_path)
