"""Several worker processes on one study, against real PostgreSQL and MLflow stores.

The workers are real ``tune --workers N`` processes (as a user starts them); a
throwaway PostgreSQL database per test is dropped afterwards.
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
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import check_retried_once, check_study_runs, tiny_study
from tests.integration import test_storages

pytestmark = pytest.mark.postgres
pg_database = test_storages.pg_database  # a fresh PostgreSQL database per test

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
# Trials a signal can land in the middle of: 2 folds x 8 epochs of digits in 16-row
# batches, ~50 ms an epoch here, so a trial seen 2 epochs in has ~0.7 s of training left.
SLOW_TRIALS = {"data.source": "sklearn:digits", "training.max_epochs": 8, "training.batch_size": 16}


def _write(tmp_path: Path, url: str, **overrides: Any) -> Path:
    doc = tiny_study(**{"data.source": "sklearn:iris", "training.max_epochs": 1, **overrides})
    doc["storage"] = url
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _env(**extra: str) -> dict[str, str]:
    # A killed worker's trial is declared dead after 3 s instead of 30 s.
    return {**os.environ, "TUNER_HEARTBEAT_INTERVAL": "1", "TUNER_GRACE_PERIOD": "3", **extra}


def _tune(study: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tuner.cli", "run", str(study), *args],
        cwd=study.parent,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _study(url: str) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=url)


def _watch(url: str, proc: subprocess.Popen[str], seen: Any, timeout: float = 240) -> Any:
    """Poll the study ``proc`` is running every 0.1 s until ``seen(study)`` returns
    something; one storage for all the polls, so each is one quick query."""
    study = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        try:
            study = study or _study(url)
            found = seen(study)
        except Exception:  # the study or its tables are not created yet
            continue
        if found:
            return found
    return None


def _runs(tmp_path: Path) -> list[Any]:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiny")
    assert exp is not None
    return client.search_runs([exp.experiment_id], max_results=5000)


def _check_mlflow(tmp_path: Path, study: optuna.Study) -> None:
    """One parent run; exactly one child per finished trial under it; none RUNNING."""
    check_study_runs(_runs(tmp_path), study)


@pytest.mark.slow  # 5 processes, ~75 s of CPU: run with -m slow
def test_four_workers_share_one_budget_and_one_parent_run(tmp_path: Path, pg_database: str) -> None:
    study_file = _write(tmp_path, pg_database, **{"budget.n_trials": 40})
    proc = _tune(study_file, "--workers", "4")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    study = _study(pg_database)
    finished = study.get_trials(states=FINISHED)
    assert len(finished) == 40  # the budget is global and exact
    numbers = [t.number for t in study.get_trials()]
    assert len(numbers) == len(set(numbers))
    assert len({t.user_attrs["worker"] for t in finished}) >= 2  # the work was shared
    # Distinct sampler seeds per worker: the first four trials are four different points.
    first = sorted(study.get_trials(), key=lambda t: t.number)[:4]
    assert len({t.params["lr"] for t in first}) == 4
    _check_mlflow(tmp_path, study)
    assert "held-out test" in out


def test_sigkilled_worker_trial_fails_is_retried_and_budget_is_reached(
    tmp_path: Path, pg_database: str
) -> None:
    # Trials long enough to be caught mid-way: the kill lands a poll (0.1 s) and a query
    # after the victim was seen, and with 128-row batches a digits epoch takes ~15 ms, so
    # a trial seen 2 epochs in had finished before it (victim COMPLETE, seen on main).
    study_file = _write(tmp_path, pg_database, **SLOW_TRIALS, **{"budget.n_trials": 8})
    proc = _tune(study_file, "--workers", "2", "--no-refit")

    def running_trial(study: optuna.Study) -> Any:
        # Early in its first fold (of 2 x 3 epochs), so that it is still running when the
        # kill lands: the run id is recorded once the MLflow writer process made the run.
        running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
        return next(
            (t for t in running if "mlflow_run_id" in t.user_attrs and len(t.intermediate_values) <= 2),
            None,
        )

    victim = _watch(pg_database, proc, running_trial)
    assert victim is not None, "no trial was ever seen running"
    os.kill(int(victim.user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert "killed by signal 9" in out
    # the study is announced once, by the parent; each worker says who it is
    assert out.count("created study 'tiny'") == 1 and "resuming study" not in out
    assert "worker 0: joined study 'tiny'" in out and "worker 1: joined study 'tiny'" in out

    study = _study(pg_database)
    dead = check_retried_once(study, victim.number)
    assert len(study.get_trials(states=FINISHED)) == 8  # exact, despite the kill and retry
    assert study.get_trials(states=(optuna.trial.TrialState.RUNNING,)) == []
    killed = [r for r in _runs(tmp_path) if r.info.run_id == dead.user_attrs["mlflow_run_id"]]
    assert killed[0].info.status == "KILLED"
    _check_mlflow(tmp_path, study)


def test_interrupt_then_rerun_resumes_to_the_exact_budget(tmp_path: Path, pg_database: str) -> None:
    # The SIGTERM must land mid-trial, well before the budget is reached (see SLOW_TRIALS).
    study_file = _write(tmp_path, pg_database, **SLOW_TRIALS, **{"budget.n_trials": 8})
    proc = _tune(study_file, "--workers", "2")

    def mid_training(study: optuna.Study) -> Any:
        # A trial early in its training, after another has finished: the SIGTERM lands
        # mid-trial, so that trial ends FAIL and the budget cannot be reached. (Sending
        # it on the first finished trial alone raced the last trials on a busy machine.)
        if not study.get_trials(states=FINISHED):
            return None
        running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
        return next((t for t in running if len(t.intermediate_values) <= 2), None)

    victim = _watch(pg_database, proc, mid_training)
    assert victim is not None, "no trial was seen early in its training after one finished"
    proc.send_signal(signal.SIGTERM)  # what docker stop / kubectl delete send
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 130, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    study = _study(pg_database)
    before = len(study.get_trials(states=FINISHED))
    assert 1 <= before < 8
    assert study.trials[victim.number].state == optuna.trial.TrialState.FAIL
    assert study.get_trials(states=(optuna.trial.TrialState.RUNNING,)) == []

    again = _tune(study_file)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out[-3000:]
    assert "resuming study" in out
    assert len(_study(pg_database).get_trials(states=FINISHED)) == 8
    _check_mlflow(tmp_path, _study(pg_database))
