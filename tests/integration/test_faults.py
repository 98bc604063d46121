"""Faults during a study: nothing lost, every error clear (issue #9).

Real studies (tiny MLPs on digits, 2 folds, 1-2 epochs), real SQLite storage and
MLflow stores in tmp_path. Faults are real where the machine allows it (a user
plug-in that raises, a stopped MLflow server, a storage path that cannot be
written, SIGTERM to a running ``tune``) and injected at the library boundary
where it does not (an MLflow store going away mid-study, a disk filling up).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tests.conftest import tiny_study
from tuner.cli import main

FAILING_FACTORY = """
import torch

def build(params, input_shape, n_classes):
    if params.get("fail") == "yes":
        raise RuntimeError("boom in user code")
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, n_classes))
"""


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _tune(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _trials(tmp_path: Path, name: str = "tiny") -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / f'{name}.db'}")
    return study.get_trials()


def _runs(tmp_path: Path) -> list[Any]:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exps = client.search_experiments()
    return client.search_runs([e.experiment_id for e in exps], max_results=1000)


def _trial_runs(tmp_path: Path) -> dict[int, Any]:
    return {
        int(r.data.tags["tuner.trial"]): r
        for r in _runs(tmp_path)
        if r.data.tags.get("tuner.role") == "trial"
    }


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("TUNER_STORAGE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)


def _plugin_study(tmp_path: Path, **overrides: Any) -> Path:
    pytest.importorskip("objectives.plugins")
    (tmp_path / "failing_model.py").write_text(FAILING_FACTORY)
    doc = tiny_study(**{"training.max_epochs": 1, "budget.n_trials": 5, **overrides})
    doc["model"] = {"factory": "failing_model:build"}
    doc["search_space"] = {"lr": {"float": [1e-3, 1e-2], "log": True}, "fail": {"categorical": ["yes", "no"]}}
    return _write(tmp_path, doc)


# ----------------------------------------------------------------- user code raises


def test_user_code_exception_fails_only_that_trial_with_its_traceback(tmp_path, capsys):
    _plugin_study(tmp_path, **{"budget.max_consecutive_failures": 5})
    code, out, err = _tune(capsys, "study.yaml", "--no-refit")
    assert code == 0, err
    trials = _trials(tmp_path)
    failed = [t for t in trials if t.params["fail"] == "yes"]
    ok = [t for t in trials if t.params["fail"] == "no"]
    assert failed and ok, "the seed should draw both kinds of trial"
    assert len(ok) == 5  # the study went on after the failures; they do not use the budget
    assert all(t.state.name == "FAIL" for t in failed)
    assert all(t.state.name == "COMPLETE" for t in ok)
    assert all("boom in user code" in t.user_attrs["error"] for t in failed)
    runs = _trial_runs(tmp_path)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    for t in failed:
        run = runs[t.number]
        assert run.info.status == "FAILED" and run.data.tags["tuner.state"] == "failed"
        local = client.download_artifacts(run.info.run_id, "traceback.txt", str(tmp_path))
        text = Path(local).read_text()
        assert "RuntimeError: boom in user code" in text and "failing_model.py" in text
    for t in ok:
        assert runs[t.number].info.status == "FINISHED"
    assert "failed" in out and "boom in user code" in out  # the progress line says why


def test_consecutive_failures_stop_the_study_with_a_message(tmp_path, capsys):
    path = _plugin_study(tmp_path, **{"budget.max_consecutive_failures": 2, "budget.n_trials": 8})
    doc = yaml.safe_load(path.read_text())
    doc["search_space"]["fail"] = {"fixed": "yes"}
    _write(tmp_path, doc)
    code, out, err = _tune(capsys, "study.yaml")
    assert code == 2
    assert err.startswith("tune: error: 2 trials in a row failed") and err.count("\n") == 1
    assert "boom in user code" in err and "Traceback" not in err
    trials = _trials(tmp_path)
    assert [t.state.name for t in trials] == ["FAIL", "FAIL"]  # not the 8 of the budget
    runs = _runs(tmp_path)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    parent = [r for r in runs if r.data.tags.get("tuner.role") == "study"]
    assert [r.info.status for r in parent] == ["FAILED"]


# ---------------------------------------------------------------- MLflow unreachable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_unreachable_at_start_is_a_clear_error_and_creates_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    port = _free_port()  # nothing listens there
    _write(tmp_path, tiny_study(**{"mlflow.tracking_uri": f"http://127.0.0.1:{port}"}))
    code, out, err = _tune(capsys, "study.yaml")
    assert code == 2 and out == ""
    assert err.startswith(f"tune: error: cannot reach MLflow tracking at http://127.0.0.1:{port}")
    assert "mlflow.tracking_uri" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]  # no study storage


class _Outage:
    """MLflow's client raising like a stopped server, for the trials in ``down``."""

    METHODS = (
        "create_run",
        "log_batch",
        "log_text",
        "log_dict",
        "update_run",
        "set_terminated",
        "set_tag",
        "log_figure",
    )

    def __init__(self, monkeypatch, down: set[int] | None, from_trial: int | None = None) -> None:
        self.down_trials, self.from_trial = down or set(), from_trial
        self.is_down = False
        self.seen: set[int] = set()
        self.failed_calls = 0
        # The outage is staged on this process's MlflowClient: keep the trial runs' writes
        # here too (tuner.tracking.writer's child process would not see the patch).
        monkeypatch.setenv("TUNER_MLFLOW_WRITER", "inline")
        for name in self.METHODS:
            original = getattr(MlflowClient, name)
            monkeypatch.setattr(MlflowClient, name, self._wrap(name, original))
        import tuner.tracking.outage as r

        monkeypatch.setattr(r, "COOLDOWN", 0.0)  # try every write: the outage ends on cue
        monkeypatch.setattr(r, "BACKOFF", 0.0)

    def _wrap(self, name: str, original: Any) -> Any:
        outage = self

        def call(client: Any, *args: Any, **kwargs: Any) -> Any:
            tags = kwargs.get("tags") or {}
            if name == "create_run" and tags.get("tuner.role") == "trial":
                n = int(tags["tuner.trial"])
                if outage.from_trial is not None:
                    outage.is_down = outage.is_down or n >= outage.from_trial
                elif n not in outage.seen:
                    outage.is_down = n in outage.down_trials
                outage.seen.add(n)
            if outage.is_down:
                outage.failed_calls += 1
                raise MlflowException("API request to http://mlflow:5000 failed: Connection refused")
            return original(client, *args, **kwargs)

        return call


def test_mlflow_down_mid_study_training_continues_and_writes_are_retried(tmp_path, capsys, monkeypatch):
    outage = _Outage(monkeypatch, down={1, 2})
    _write(tmp_path, tiny_study(**{"budget.n_trials": 4, "training.max_epochs": 1}))
    code, out, err = _tune(capsys, "study.yaml", "--no-refit")
    assert code == 0, err
    assert outage.failed_calls > 0  # the outage really happened
    trials = _trials(tmp_path)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4  # no trial lost
    runs = _trial_runs(tmp_path)
    assert sorted(runs) == [0, 1, 2, 3]  # the runs of trials 1 and 2 were made once it was back
    for n, run in runs.items():
        assert run.info.status == "FINISHED", n
        assert run.data.metrics["cv_balanced_accuracy"] == pytest.approx(trials[n].value)
        assert "fold_balanced_accuracy" in run.data.metrics
    assert "incomplete" not in out


def test_mlflow_down_until_the_end_names_the_incomplete_runs(tmp_path, capsys, monkeypatch):
    outage = _Outage(monkeypatch, down=None, from_trial=1)
    _write(tmp_path, tiny_study(**{"budget.n_trials": 3, "training.max_epochs": 1}))
    code, out, err = _tune(capsys, "study.yaml")
    assert code == 0, err
    assert outage.failed_calls > 0
    trials = _trials(tmp_path)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert "warning: MLflow tracking" in out and "incomplete" in out
    line = next(ln for ln in out.splitlines() if "incomplete (metrics" in ln)
    assert "trial 1" in line and "trial 2" in line and "trial 0" not in line
    assert "the study's parent run" in line and "Connection refused" in line
    assert "held-out test" in out  # the refit and test score do not depend on tracking
    runs = _trial_runs(tmp_path)
    assert list(runs) == [0] and runs[0].info.status == "FINISHED"


# ------------------------------------------------------------------ storage failures


def test_storage_folder_not_writable_is_a_clear_error_before_anything_is_made(tmp_path, capsys):
    (tmp_path / "blocker").write_text("a file where the storage folder should be")
    _write(tmp_path, tiny_study(storage="sqlite:///blocker/tiny.db"))
    code, out, err = _tune(capsys, "study.yaml")
    assert code == 2 and out == ""
    assert err.startswith("tune: error: cannot create the study storage") and err.count("\n") == 1
    assert "blocker" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "study.yaml"]  # no MLflow store


def test_disk_full_mid_study_is_a_clear_error_and_finished_trials_remain(tmp_path, capsys, monkeypatch):
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    import tuner.views.progress

    _write(tmp_path, tiny_study(**{"budget.n_trials": 6, "training.max_epochs": 1}))
    db = str(tmp_path / "tiny.db")
    full = {"on": False}

    def writes_fail(conn, cursor, statement, *args: Any) -> None:
        if (
            full["on"]
            and db in str(conn.engine.url)
            and statement.lstrip().upper().startswith(("INSERT", "UPDATE"))
        ):
            raise sqlite3.OperationalError("database or disk is full")

    trial_done = tuner.views.progress.Progress.trial

    def after_two(self, number, *args: Any, **kwargs: Any) -> None:
        trial_done(self, number, *args, **kwargs)
        full["on"] = full["on"] or number >= 1  # the disk fills up after trial 1

    monkeypatch.setattr(tuner.views.progress.Progress, "trial", after_two)
    event.listen(Engine, "before_cursor_execute", writes_fail)
    try:
        code, out, err = _tune(capsys, "study.yaml")
    finally:
        event.remove(Engine, "before_cursor_execute", writes_fail)
    assert code == 2, err
    assert err.startswith("tune: error: the study storage (sqlite file") and err.count("\n") == 1
    assert "database or disk is full" in err and "resume" in err and "Traceback" not in err
    trials = _trials(tmp_path)
    assert [t.state.name for t in trials if t.state.name == "COMPLETE"] == ["COMPLETE"] * 2
    assert [t.number for t in trials if t.state.name == "COMPLETE"] == [0, 1]
    parent = [r for r in _runs(tmp_path) if r.data.tags.get("tuner.role") == "study"]
    assert [r.info.status for r in parent] == ["FAILED"]


# ------------------------------------------------------------------------- SIGTERM


def test_sigterm_stops_cleanly_and_the_study_resumes(tmp_path):
    doc = tiny_study(**{"budget.n_trials": 40, "training.max_epochs": 3})
    _write(tmp_path, doc)
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}
    env.pop("TUNER_STORAGE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuner.cli", "study.yaml"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    deadline = time.monotonic() + 240
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until a trial finished and the next one is training
        lines.append(line)
        if line.startswith("trial   0 ") or time.monotonic() > deadline:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    rest, err = proc.communicate(timeout=120)
    out = "".join(lines) + rest
    assert proc.returncode == 130, (out, err)
    assert "interrupted after" in out and "run the same command to resume" in out
    assert "Traceback" not in err
    trials = _trials(tmp_path)
    assert trials and not [t for t in trials if t.state.name == "RUNNING"]
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) >= 1
    runs = _runs(tmp_path)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert [r.info.status for r in runs if r.data.tags.get("tuner.role") == "study"] == ["KILLED"]
    # resumable: the same command continues the same study
    again = subprocess.run(
        [sys.executable, "-m", "tuner.cli", "study.yaml", "--n-trials", str(len(finished) + 1), "--no-refit"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr
    assert "resuming study 'tiny'" in again.stdout
    after = _trials(tmp_path)
    assert len([t for t in after if t.state.name in ("COMPLETE", "PRUNED")]) == len(finished) + 1
    assert [t.number for t in after[: len(trials)]] == [t.number for t in trials]


# ------------------------------------------------------------------ data files that lie


def _data_case(tmp_path: Path, capsys, source: str, **extra: Any) -> str:
    _write(tmp_path, tiny_study(**{"data.source": source, **extra}))
    before = {p.name for p in tmp_path.iterdir()}
    code, out, err = _tune(capsys, "study.yaml")
    assert code == 2 and out == "", err
    assert err.startswith("tune: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert {p.name for p in tmp_path.iterdir()} == before  # no storage, no MLflow store
    return err


def test_csv_with_ragged_rows_names_the_file(tmp_path, capsys):
    (tmp_path / "ragged.csv").write_text("a,b,y\n1,2,0\n3,4,1,7,7\n5,6,0\n")
    err = _data_case(tmp_path, capsys, "ragged.csv", **{"data.target": "y"})
    assert "ragged.csv" in err and "ragged rows" in err


def test_csv_with_text_in_a_numeric_column_names_the_file_column_and_row(tmp_path, capsys):
    rows = "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40))
    (tmp_path / "lies.csv").write_text("a,b,y\n" + rows + "n/a!,1,0\n")
    err = _data_case(tmp_path, capsys, "lies.csv", **{"data.target": "y"})
    assert "lies.csv" in err and "column 'a'" in err and "row 42" in err and "'n/a!'" in err


def test_npz_without_y_names_the_file_and_the_missing_array(tmp_path, capsys):
    np.savez(tmp_path / "nolabels.npz", X=np.zeros((30, 4), np.float32), labels=np.zeros(30))
    err = _data_case(tmp_path, capsys, "nolabels.npz")
    assert "nolabels.npz" in err and "no array 'y'" in err and "labels" in err


def test_image_folder_with_a_corrupt_image_names_the_image(tmp_path, capsys):
    pytest.importorskip("objectives.images")
    Image = pytest.importorskip("PIL.Image")
    for cls in ("cats", "dogs"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(6):
            Image.new("L", (8, 8), color=i * 20).save(tmp_path / "imgs" / cls / f"{i}.png")
    (tmp_path / "imgs" / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    err = _data_case(tmp_path, capsys, "imagefolder:imgs", **{"model.family": "cnn"})
    assert "broken.png" in err


def test_image_folder_with_an_empty_class_names_the_folder(tmp_path, capsys):
    pytest.importorskip("objectives.images")
    Image = pytest.importorskip("PIL.Image")
    (tmp_path / "imgs" / "cats").mkdir(parents=True)
    (tmp_path / "imgs" / "empty_class").mkdir(parents=True)
    (tmp_path / "imgs" / "dogs").mkdir(parents=True)
    for cls in ("cats", "dogs"):
        for i in range(6):
            Image.new("L", (8, 8), color=i * 20).save(tmp_path / "imgs" / cls / f"{i}.png")
    err = _data_case(tmp_path, capsys, "imagefolder:imgs", **{"model.family": "cnn"})
    assert "empty_class" in err


@pytest.mark.slow
def test_real_mlflow_server_stopped_mid_study(tmp_path):
    """The same as the injected outage, against a real ``mlflow server`` that is killed."""
    import urllib.request

    port = _free_port()
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("TUNER_STORAGE", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'srv.db'}",
            "--artifacts-destination",
            str(tmp_path / "srv-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "mlflow server did not start"
                time.sleep(1)
        _write(
            tmp_path,
            tiny_study(
                **{
                    "budget.n_trials": 4,
                    "training.max_epochs": 2,
                    "mlflow.tracking_uri": f"http://127.0.0.1:{port}",
                }
            ),
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "tuner.cli", "study.yaml", "--no-refit"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("trial   0 "):
                os.killpg(server.pid, signal.SIGKILL)  # the tracking server dies mid-study
                server.wait(timeout=30)
                break
        rest, err = proc.communicate(timeout=900)
        out = "".join(lines) + rest
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    assert proc.returncode == 0, (out, err)
    trials = _trials(tmp_path)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4  # no trial lost
    line = next(ln for ln in out.splitlines() if "incomplete (metrics" in ln)
    assert f"http://127.0.0.1:{port}" in line and "trial 1" in line and "trial 3" in line
    assert "Traceback" not in err
