"""docker/ for real: the worker image built, and a distributed study run in containers.

The README's compose commands with the test override (docker/compose.test.yaml): the
image built from a local Debian base and wheelhouse, PostgreSQL + the MLflow server + 2
workers started by ``docker compose up``, the refit service run once; then a worker
SIGKILLed mid-trial on a second study, ``docker compose down`` half-way through it and the
same ``up`` resuming it. Everything is asserted from the host, on the storage and the
MLflow server the containers wrote to. Needs ``docker/test/prepare.sh`` (``.ci/run`` runs
it); a few minutes once the images are cached. Run with ``pytest -m docker``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import check_retried_once, check_study_runs
from tuner.storage.records import scorings

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
COMPOSE = ["docker", "compose", "-f", "docker/compose.yaml", "-f", "docker/compose.test.yaml"]
PASSWORD = secrets.token_hex(16)
STORAGE = f"postgresql://tuner:{PASSWORD}@127.0.0.1:55432/tuner"
MLFLOW = "http://127.0.0.1:55000"
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def _env(study: str) -> dict[str, str]:
    return {**os.environ, "TUNER_DB_PASSWORD": PASSWORD, "TUNER_TEST_STUDY": study, "DOCKER_BUILDKIT": "1"}


def _compose(*args: str, study: str = "a", timeout: float = 900, check: bool = True) -> str:
    out = subprocess.run(
        [*COMPOSE, *args], cwd=REPO, env=_env(study), capture_output=True, text=True, timeout=timeout
    )
    if check and out.returncode != 0:
        pytest.fail(
            f"docker compose {' '.join(args)} exited {out.returncode}:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
        )
    return out.stdout + out.stderr


def _ready() -> str | None:
    """Why the docker test cannot run here, or None."""
    for cmd in (["docker", "info"], ["docker", "compose", "version"]):
        try:
            if subprocess.run(cmd, capture_output=True, timeout=60).returncode != 0:
                return f"`{' '.join(cmd)}` fails"
        except (OSError, subprocess.TimeoutExpired):
            return f"`{' '.join(cmd)}` fails"
    base = os.environ.get("TUNER_BASE_IMAGE", "tuner-base:bookworm")
    if subprocess.run(["docker", "image", "inspect", base], capture_output=True).returncode != 0:
        return f"no base image {base}"
    if not list((REPO / "docker" / "wheels").glob("torch-*.whl")):
        return "docker/wheels holds no wheelhouse"
    return None


@pytest.fixture(scope="module")
def stack() -> Iterator[None]:
    why = _ready()
    if why is not None:
        message = f"{why}: run docker/test/prepare.sh (as root) first"
        if os.environ.get("TUNER_REQUIRE_DOCKER"):
            pytest.fail(message)  # CI prepared it: not being able to run is a failure
        pytest.skip(message)
    _compose("down", "--volumes", "--remove-orphans", check=False)  # a failed earlier run's
    try:
        yield
    finally:
        print(_compose("logs", "--no-color", "--tail", "60", check=False)[-12000:])
        _compose("down", "--volumes", "--remove-orphans", check=False)


def _workers() -> list[dict[str, Any]]:
    out = _compose("ps", "--all", "--format", "json", "worker")
    text = out.strip()
    rows = (
        json.loads(text)
        if text.startswith("[")
        else [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    )
    return rows


def _wait_workers_exit(study: str, timeout: float = 400) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _workers()
        if rows and all(r["State"] == "exited" for r in rows):
            return rows
        time.sleep(2)
    pytest.fail(f"the workers of study {study} did not finish in {timeout} s: {_workers()}")


def _study(name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=STORAGE)


def _runs(study_name: str) -> list[Any]:
    client = MlflowClient(tracking_uri=MLFLOW)
    exp = client.get_experiment_by_name(study_name)
    assert exp is not None, f"no MLflow experiment {study_name}"
    return client.search_runs([exp.experiment_id], max_results=5000)


def _check_mlflow(study: optuna.Study) -> list[Any]:
    """One parent run; one child per finished trial, under it; nothing RUNNING; no password."""
    runs = _runs(study.study_name)
    check_study_runs(runs, study)
    for r in runs:
        assert PASSWORD not in json.dumps([r.data.params, r.data.tags])
    return runs


def _pid_namespace(container: str) -> int:
    pid = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Pid}}", container], capture_output=True, text=True, check=True
    ).stdout.strip()
    return os.stat(f"/proc/{pid}/ns/pid").st_ino


def test_compose_study_refit_kill_and_resume(stack: None) -> None:
    # 1. Study a: the image built, PostgreSQL, MLflow and 2 workers up; the budget shared.
    started = time.monotonic()
    _compose("up", "--build", "--detach", timeout=1800)
    print(f"build and up: {time.monotonic() - started:.0f} s")
    rows = _wait_workers_exit("a")
    assert [r["ExitCode"] for r in rows] == [0, 0], rows
    study = _study("docker-a")
    finished = study.get_trials(states=FINISHED)
    # Two workers that pass for the last slot at the same instant both create a trial; the
    # later-numbered one fails as surplus before it trains or logs anything (tuner.run.budget).
    surplus = [t for t in study.trials if t.user_attrs.get("surplus")]
    assert len(surplus) <= 1 and all(t.state.name == "FAIL" and not t.params for t in surplus), surplus
    # exact; nothing else failed, nothing RUNNING
    assert len(finished) == 6 == len(study.trials) - len(surplus)
    workers = {t.user_attrs["worker"] for t in finished}
    assert len(workers) == 2 and all("/pidns-" in w for w in workers), workers  # both worked
    assert scorings(study) == []  # --no-refit: the test split is untouched by the workers

    # The refit service: the best configuration trained again and the test split scored once.
    out = _compose("run", "--rm", "refit")
    assert "held-out test" in out, out[-3000:]
    (look,) = scorings(_study("docker-a"))
    assert look["trial_number"] == study.best_trial.number
    runs = _check_mlflow(_study("docker-a"))
    refits = [r for r in runs if r.data.tags.get("tuner.role") == "refit"]
    assert len(refits) == 1 and refits[0].info.status == "FINISHED"
    assert any(k.startswith("test_") for k in refits[0].data.metrics), refits[0].data.metrics
    logs = _compose("logs", "--no-color")
    assert PASSWORD not in logs and "Traceback" not in logs

    # 2. Study b: a worker SIGKILLed in the middle of a trial.
    _compose("up", "--detach", "worker", study="b")
    victim = _watch("docker-b", _early_running_trial)
    namespace = int(victim.user_attrs["worker"].split("/pidns-")[1].split(":")[0])
    (container,) = [r["Name"] for r in _workers() if _pid_namespace(r["ID"]) == namespace]
    subprocess.run(["docker", "kill", container], check=True, capture_output=True)

    # 3. `down` half-way (volumes kept), then the same `up`: the study resumes to its budget.
    _watch("docker-b", lambda s: len(s.get_trials(states=FINISHED)) >= 3)
    _compose("down", study="b")
    _compose("up", "--detach", "--wait", "db", study="b")  # to look at the stopped study
    before = _study("docker-b")
    assert 3 <= len(before.get_trials(states=FINISHED)) < 10
    assert before.get_trials(states=(optuna.trial.TrialState.RUNNING,)) in (
        [],
        [before.trials[victim.number]],
    )
    _compose("up", "--detach", "worker", study="b")
    rows = _wait_workers_exit("b")
    assert [r["ExitCode"] for r in rows] == [0, 0], rows
    assert "resuming study 'docker-b'" in _compose("logs", "--no-color", "worker", study="b")

    study = _study("docker-b")
    assert len(study.get_trials(states=FINISHED)) == 10  # exact, despite the kill and the stop
    assert study.get_trials(states=(optuna.trial.TrialState.RUNNING,)) == []
    assert study.get_trials(states=(optuna.trial.TrialState.WAITING,)) == []
    dead = check_retried_once(study, victim.number)
    runs = _check_mlflow(study)
    killed = [r for r in runs if r.info.run_id == dead.user_attrs["mlflow_run_id"]]
    assert [r.info.status for r in killed] == ["KILLED"]


def _early_running_trial(study: optuna.Study) -> Any:
    """A trial early in its first fold, with its MLflow run made: killed there, it is
    certainly mid-trial."""
    running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    return next(
        (t for t in running if "mlflow_run_id" in t.user_attrs and len(t.intermediate_values) <= 8), None
    )


def _watch(name: str, seen: Any, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    study = None
    while time.monotonic() < deadline:
        try:
            study = study or _study(name)
            found = seen(study)
        except Exception:  # the study or its tables are not created yet
            found = None
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(f"study {name}: what was waited for did not happen in {timeout} s")
