"""Trial runs written by the MLflow writer process (``tuner.tracking.writer``).

Real studies (tiny MLPs on digits) with a real MLflow SQLite store in tmp_path:
the runs the child writes are the runs the inline path wrote, the child is gone
when ``tune`` returns, a child that dies mid-study costs no trial and says so, and
a Ctrl-C on the whole process group (as a terminal sends it) leaves no run RUNNING.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import tiny_study
from tuner.cli import main


def _setup(tmp_path: Path, monkeypatch: Any, **overrides: Any) -> None:
    monkeypatch.delenv("TUNER_STORAGE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("TUNER_MLFLOW_WRITER", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(tiny_study(**overrides)))


def _runs(tmp_path: Path) -> dict[str, list[Any]]:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiny")
    by_role: dict[str, list[Any]] = {}
    for r in client.search_runs([exp.experiment_id], max_results=1000):
        by_role.setdefault(r.data.tags.get("tuner.role", ""), []).append(r)
    return by_role


def _trials(tmp_path: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'tiny.db'}").get_trials()


def _spy(monkeypatch: Any) -> list[Any]:
    """Record each Writer the study starts."""
    import tuner.tracking.writer

    made: list[Any] = []
    original = tuner.tracking.writer.Writer.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(tuner.tracking.writer.Writer, "__init__", init)
    return made


def test_trial_runs_are_written_by_a_child_process_and_complete(tmp_path, monkeypatch, capsys):
    _setup(tmp_path, monkeypatch, **{"budget.n_trials": 3, "training.max_epochs": 2})
    made = _spy(monkeypatch)
    assert main(["study.yaml", "--no-refit"]) == 0, capsys.readouterr().err
    assert len(made) == 1
    child = made[0].proc
    assert child.pid != os.getpid() and child.poll() == 0  # it ran apart, and has exited cleanly
    trials = _trials(tmp_path)
    runs = {int(r.data.tags["tuner.trial"]): r for r in _runs(tmp_path)["trial"]}
    assert sorted(runs) == [0, 1, 2]
    for t in trials:
        run = runs[t.number]
        assert run.info.run_id == t.user_attrs["mlflow_run_id"]  # recorded on the trial
        assert run.info.status == "FINISHED" and run.info.run_name == f"trial-{t.number:03d} complete"
        assert run.data.metrics["cv_balanced_accuracy"] == t.value
        assert run.data.params["lr"] == str(t.params["lr"])
        # every epoch of every fold, as the inline path logs them
        client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
        assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 4
        assert len(client.get_metric_history(run.info.run_id, "val_balanced_accuracy")) == 4
        # the folds overlaid, drawn by the writer process
        assert "fold_curves.png" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_inline_mode_starts_no_process(tmp_path, monkeypatch, capsys):
    _setup(tmp_path, monkeypatch, **{"budget.n_trials": 2, "training.max_epochs": 1})
    monkeypatch.setenv("TUNER_MLFLOW_WRITER", "inline")
    made = _spy(monkeypatch)
    assert main(["study.yaml", "--no-refit"]) == 0, capsys.readouterr().err
    assert made == []
    assert [r.info.status for r in _runs(tmp_path)["trial"]] == ["FINISHED"] * 2


def test_a_writer_that_dies_costs_no_trial_and_is_reported(tmp_path, monkeypatch, capsys):
    import tuner.views.progress

    _setup(tmp_path, monkeypatch, **{"budget.n_trials": 4, "training.max_epochs": 1})
    made = _spy(monkeypatch)
    trial_done = tuner.views.progress.Progress.trial

    def kill_after_first(self: Any, number: int, *args: Any, **kwargs: Any) -> None:
        trial_done(self, number, *args, **kwargs)
        if number == 0:
            made[0].proc.kill()
            made[0].proc.wait()

    monkeypatch.setattr(tuner.views.progress.Progress, "trial", kill_after_first)
    assert main(["study.yaml", "--no-refit"]) == 0
    out = capsys.readouterr().out
    assert [t.state.name for t in _trials(tmp_path)] == ["COMPLETE"] * 4  # nothing lost
    assert "MLflow writer process" in out and "trials themselves are safe" in out
    runs = {int(r.data.tags["tuner.trial"]): r for r in _runs(tmp_path)["trial"]}
    # the later trials were written inline, and whatever the child left open was closed
    assert {2, 3} <= set(runs)
    assert [n for n, r in runs.items() if r.info.status == "RUNNING"] == []


def test_ctrl_c_on_the_process_group_leaves_no_run_running(tmp_path):
    (tmp_path / "study.yaml").write_text(
        yaml.safe_dump(tiny_study(**{"budget.n_trials": 40, "training.max_epochs": 3}))
    )
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}
    for key in ("TUNER_STORAGE", "TUNER_MLFLOW_WRITER", "MLFLOW_TRACKING_URI"):
        env.pop(key, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuner.cli", "study.yaml"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 240
    lines = []
    for line in proc.stdout:  # the writer is running by the time a trial has finished
        lines.append(line)
        if line.startswith("trial   1 ") or time.monotonic() > deadline:
            break
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, ("".join(lines) + rest, err)
    assert "Traceback" not in err
    runs = _runs(tmp_path)
    assert [r.info.run_name for rs in runs.values() for r in rs if r.info.status == "RUNNING"] == []
    done = [t for t in _trials(tmp_path) if t.state.name == "COMPLETE"]
    assert len(done) >= 2
    finished = {int(r.data.tags["tuner.trial"]) for r in runs["trial"] if r.info.status == "FINISHED"}
    assert {t.number for t in done} <= finished  # the writer finished every completed trial's run


def test_a_runs_start_and_end_are_the_trials_not_the_writers(tmp_path, monkeypatch, capsys):
    """The child makes a run a moment (at first, seconds) after its trial started: the run
    still shows when the trial ran, so MLflow's Duration column is the trial's."""
    _setup(tmp_path, monkeypatch, **{"budget.n_trials": 2, "training.max_epochs": 2})
    assert main(["study.yaml", "--no-refit"]) == 0, capsys.readouterr().err
    runs = {int(r.data.tags["tuner.trial"]): r for r in _runs(tmp_path)["trial"]}
    for t in _trials(tmp_path):
        info = runs[t.number].info
        started = t.datetime_start.timestamp() * 1000
        ended = t.datetime_complete.timestamp() * 1000
        assert abs(info.start_time - started) < 500, (info.start_time, started)
        assert abs(info.end_time - ended) < 500, (info.end_time, ended)
