"""One storage suite, run over every storage mode (like Optuna's ``STORAGE_MODES``).

Real services: a throwaway PostgreSQL database per test on 127.0.0.1:5432 (dropped
after), a unique key prefix in the local Redis (deleted after), and ``tune
storage-proxy`` serving an SQLite file over gRPC.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from tests.conftest import tiny_study
from tuner.config import validate_config
from tuner.errors import StorageError
from tuner.run.budget import Budget, budget_counts, count_finished
from tuner.run.study import open_study
from tuner.storage.backends import build_storage
from tuner.storage.urls import describe, supports_heartbeat

PG = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/0"
STORAGE_MODES = [
    "sqlite",
    "journal",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    "redis",
    "grpc",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database; dropped (with its connections) after the test."""
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"tuner_test_{uuid.uuid4().hex[:12]}"
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    except psycopg2.OperationalError as e:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432: {e}")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    try:
        yield f"{PG}/{name}"
    finally:
        # a new connection: the test may have restarted the server meanwhile
        for _attempt in range(30):
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
                break
            except psycopg2.OperationalError:
                time.sleep(1)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as e:
        pytest.skip(f"no Redis on 127.0.0.1:6379: {e}")
    prefix = f"tuner-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture(scope="module")
def grpc_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``tune storage-proxy`` in front of an SQLite file, for the whole module."""
    pytest.importorskip("grpc")
    db = tmp_path_factory.mktemp("proxy") / "proxy.db"
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tuner.cli",
            "storage-proxy",
            "--storage",
            f"sqlite:///{db}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"storage proxy did not start: {proc.stdout.read().decode()}")  # type: ignore[union-attr]
            time.sleep(0.2)
    yield f"grpc://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(params=STORAGE_MODES)
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    mode = request.param
    if mode == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    if mode == "journal":
        return f"journal:///{tmp_path / 'study.log'}"
    if mode == "postgresql":
        return request.getfixturevalue("pg_database")
    if mode == "redis":
        return f"{REDIS}?prefix={request.getfixturevalue('redis_prefix')}"
    return request.getfixturevalue("grpc_proxy")


def _config(tmp_path: Path, url: str, **overrides: object):  # type: ignore[no-untyped-def]
    doc = tiny_study(**{"data.source": "sklearn:iris", "training.max_epochs": 1, **overrides})
    if "name" not in overrides:  # the gRPC proxy's file is shared by the module
        doc["name"] = f"s-{uuid.uuid4().hex[:8]}"
    doc["storage"] = url
    doc.setdefault("mlflow", {})["enabled"] = False
    return validate_config(doc, base_dir=tmp_path, source="study.yaml")


def _open(config, url: str, split_fp: str = "split-a", **kw: object):  # type: ignore[no-untyped-def]
    return open_study(config, build_storage(url), split_fp=split_fp, sampler=None, pruner=None, **kw)


def test_create_then_join_records_fingerprints(storage_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, storage_url)
    study, created = _open(config, storage_url)
    joined, created_again = _open(config, storage_url)
    assert (created, created_again) == (True, False)
    assert joined.user_attrs["tuner_split_fingerprint"] == "split-a"
    assert joined.user_attrs["tuner_space_fingerprint"] == study.user_attrs["tuner_space_fingerprint"]


def test_join_with_another_split_or_space_is_refused(storage_url: str, tmp_path: Path) -> None:
    name = f"s-{uuid.uuid4().hex[:8]}"
    base = _config(tmp_path, storage_url, name=name)
    _open(base, storage_url)
    with pytest.raises(StorageError, match="refusing to join.*held-out split"):
        _open(base, storage_url, split_fp="split-b")
    changed = _config(tmp_path, storage_url, name=name, **{"training.max_epochs": 2})
    with pytest.raises(StorageError, match="--allow-changes"):
        _open(changed, storage_url)
    study, created = _open(changed, storage_url, allow_changes=True)
    assert not created and study.user_attrs["tuner_space_changes"] == 1


def test_count_finished_counts_complete_and_pruned_only(storage_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, storage_url)
    storage = build_storage(storage_url)
    study, _ = open_study(config, storage, split_fp="s", sampler=None, pruner=None)
    for value in (0.5, 0.7):
        t = study.ask()
        study.tell(t, value)
    study.tell(study.ask(), state=optuna.trial.TrialState.PRUNED)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    study.ask()  # left RUNNING
    assert count_finished(study, storage) == 3
    # another process's view of the same storage agrees
    other = optuna.load_study(study_name=config.name, storage=build_storage(storage_url))
    assert count_finished(other, build_storage(storage_url)) == 3


def test_budget_claims_by_trial_number(storage_url: str, tmp_path: Path) -> None:
    S = optuna.trial.TrialState
    storage = build_storage(storage_url)
    study, _ = open_study(_config(tmp_path, storage_url), storage, split_fp="s", sampler=None, pruner=None)
    study.tell(study.ask(), 0.5)
    study.tell(study.ask(), state=S.PRUNED)
    study.tell(study.ask(), state=S.FAIL)  # does not count
    study.ask()  # trial 3, RUNNING
    assert budget_counts(study, storage) == (2, 1)
    assert budget_counts(study, storage, below=3) == (2, 0)
    budget = Budget(study, storage, 3, tracker=None)
    # Exact where a dead worker's running trial is eventually failed (heartbeat).
    assert budget.exact == supports_heartbeat(storage_url)
    assert budget.claim(3)
    assert budget.claim(4) is not budget.exact  # trial 3 holds the last slot


@pytest.mark.parametrize("outcome", ["COMPLETE", "FAIL"])
def test_budget_waits_for_the_last_running_trial(outcome: str, tmp_path: Path) -> None:
    """A worker does not stop while the last trial runs elsewhere: if it fails, the
    worker must replace it; if it completes, the budget is reached."""
    import threading

    url = f"sqlite:///{tmp_path / 'b.db'}"
    storage = build_storage(url)
    study, _ = open_study(_config(tmp_path, url), storage, split_fp="s", sampler=None, pruner=None)
    study.tell(study.ask(), 0.5)
    last = study.ask()
    budget = Budget(study, storage, 2, tracker=None, poll=0.05)
    waits: list[tuple[int, int]] = []
    timer = threading.Timer(
        0.5,
        lambda: study.tell(
            last, 0.6 if outcome == "COMPLETE" else None, state=getattr(optuna.trial.TrialState, outcome)
        ),
    )
    timer.start()
    started = time.monotonic()
    go = budget.wait_for_slot(lambda finished, running: waits.append((finished, running)))
    timer.join()
    assert time.monotonic() - started >= 0.4
    assert waits == [(1, 1)]  # said once, not once per poll
    assert go is (outcome == "FAIL")


def test_budget_stops_waiting_at_the_deadline(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    storage = build_storage(url)
    study, _ = open_study(_config(tmp_path, url), storage, split_fp="s", sampler=None, pruner=None)
    study.ask()  # runs forever
    budget = Budget(study, storage, 1, tracker=None, deadline=time.monotonic() + 0.3, poll=0.05)
    assert budget.wait_for_slot() is False


def test_run_study_replaces_failed_trials_to_reach_the_budget(tmp_path: Path) -> None:
    """Failed trials do not count: a study with a failure still ends with n_trials finished."""
    from tuner.run.runner import run_study

    url = f"sqlite:///{tmp_path / 'f.db'}"
    config = _config(tmp_path, url, **{"budget.n_trials": 3})
    calls = {"n": 0}
    from objectives import cv

    real = cv.CrossValidatedObjective.__call__

    def flaky(self: Any, trial: Any, params: Any, curves: Any) -> float:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("one bad trial")
        return real(self, trial, params, curves)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cv.CrossValidatedObjective, "__call__", flaky)
        run_study(config, refit=False, say=lambda s: None, live=False)
    study = optuna.load_study(study_name=config.name, storage=build_storage(url))
    states = [t.state.name for t in study.get_trials()]
    assert states == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]


def test_a_trial_started_past_the_budget_is_surplus_and_trains_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two workers that pass the budget check at the same instant both create a trial;
    the later-numbered one fails as surplus before training or logging anything."""
    from tuner.run.runner import prepare, run_study

    url = f"sqlite:///{tmp_path / 's.db'}"
    config = _config(tmp_path, url, **{"budget.n_trials": 1})
    split_fp = prepare(config).split_fp
    study, _ = open_study(config, build_storage(url), split_fp=split_fp, sampler=None, pruner=None)
    study.ask()  # trial 0: another worker's, running with the budget's last slot
    raced = iter([True])  # this worker passed the check just before trial 0 was created
    real = Budget.wait_for_slot

    def racing(self: Budget, on_wait: Any = None) -> bool:
        return next(raced, None) or real(self, on_wait)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Budget, "wait_for_slot", racing)
        mp.setattr(Budget, "__init__", _with_deadline(Budget.__init__))
        run_study(config, refit=False, say=lambda s: None, live=False)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["RUNNING", "FAIL"]
    assert trials[1].user_attrs["surplus"] is True and trials[1].params == {}
    assert "failed" not in capsys.readouterr().err  # not reported as a failure


def _with_deadline(init: Any) -> Any:
    # trial 0 never finishes here: stop waiting for it after a moment
    def wrapped(self: Budget, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **{**kwargs, "deadline": time.monotonic() + 1.0})

    return wrapped


def test_run_study_resumes_to_the_budget(storage_url: str, tmp_path: Path) -> None:
    from tuner.run.runner import run_study

    config = _config(tmp_path, storage_url, **{"budget.n_trials": 1})
    run_study(config, refit=False, say=lambda s: None, live=False)
    more = config.model_copy(update={"budget": config.budget.model_copy(update={"n_trials": 2})})
    summary = run_study(more, refit=False, say=lambda s: None, live=False)
    study = optuna.load_study(study_name=config.name, storage=build_storage(storage_url))
    numbers = [t.number for t in study.get_trials() if t.state.is_finished()]
    assert sorted(numbers) == [0, 1]
    assert summary is not None


def test_heartbeat_support_is_declared_per_storage(storage_url: str) -> None:
    # Crash recovery (a killed worker's trial failed and retried) needs a heartbeat,
    # which Optuna implements for RDB storages only.
    expected = storage_url.split(":", 1)[0] in ("sqlite", "postgresql")
    assert supports_heartbeat(storage_url) is expected


def test_errors_name_the_host_never_the_password(tmp_path: Path) -> None:
    url = "postgresql://tuner:s3cret-pw@127.0.0.1:1/tuner"
    with pytest.raises(StorageError) as err:
        build_storage(url)
    assert "127.0.0.1" in str(err.value) and "s3cret-pw" not in str(err.value)
    assert "s3cret-pw" not in describe(url)


def test_storage_proxy_refuses_a_journal(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tuner.cli", "storage-proxy", "--storage", f"journal:///{tmp_path}/x.log"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert out.returncode == 2 and "journal" in out.stderr
    assert not (tmp_path / "x.log").exists()
