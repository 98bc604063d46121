"""A trial whose worker died without a heartbeat row is failed, not waited for forever."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

import tuner.storage.backends as backends
from tuner.run.study import fail_dead_trials


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_dead_local_and_unnamed_trials_are_failed_live_ones_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s")
    host = socket.gethostname()
    dead = study.ask()
    dead.suggest_float("lr", 1e-4, 1e-1, log=True)
    dead.set_user_attr("worker", f"{host}:{_dead_pid()}")
    dead.set_user_attr("mlflow_run_id", "run-of-the-dead-trial")
    dead.set_user_attr("fold", 1)
    live = study.ask()
    live.set_user_attr("worker", f"{host}:{os.getpid()}")
    elsewhere = study.ask()
    elsewhere.set_user_attr("worker", f"another-host-{host}:{_dead_pid()}")  # its heartbeat decides
    unnamed = study.ask()  # died before it could record its worker

    assert fail_dead_trials(study) == 1  # the unnamed one is too young to call dead
    states = {t.number: t.state.name for t in study.get_trials()}
    assert states.pop(4) == "WAITING"  # the dead trial, queued again with its params
    assert states == {
        dead.number: "FAIL",
        live.number: "RUNNING",
        elsewhere.number: "RUNNING",
        unnamed.number: "RUNNING",
    }
    retry = study.trials[4]
    assert retry.system_attrs["failed_trial"] == dead.number and retry.params == dead.params
    assert retry.user_attrs == {"fold": 1}  # not the dead worker's name, nor its MLflow run

    monkeypatch.setattr(backends, "GRACE_PERIOD", -3600)  # as if started long ago
    assert fail_dead_trials(study) == 1
    assert study.trials[unnamed.number].state.name == "FAIL"
    assert study.trials[5].system_attrs["failed_trial"] == unnamed.number
    assert study.trials[live.number].state.name == "RUNNING"
