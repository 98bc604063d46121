"""The retry/defer logic behind tracking that survives an MLflow outage (issue #9)."""

from __future__ import annotations

import pytest

import tuner.tracking.outage as r
from tuner.errors import StorageError
from tuner.storage.writable import check_storage_writable
from tuner.tracking.outage import Outage


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s

    def __call__(self) -> float:
        return self.now


class Flaky:
    """Fails ``n`` times, then works."""

    def __init__(self, n: int, error: Exception | None = None) -> None:
        self.n, self.calls = n, 0
        self.error = error or ConnectionError("connection refused to postgresql://u:hunter2@db/x")

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.n:
            raise self.error
        return "ok"


def test_a_write_is_retried_with_backoff_until_it_succeeds():
    clock = Clock()
    o = Outage(sleep=clock.sleep, clock=clock)
    f = Flaky(2)
    assert o.call(f) == (True, "ok")
    assert f.calls == 3 and clock.slept == [r.BACKOFF, 2 * r.BACKOFF]
    assert not o.down


def test_after_the_retries_tracking_is_down_for_the_cooldown_and_writes_are_skipped():
    clock = Clock()
    o = Outage(sleep=clock.sleep, clock=clock)
    f = Flaky(100)
    assert o.call(f) == (False, None) and f.calls == r.RETRIES
    assert o.down and "ConnectionError" in o.last_error
    assert "hunter2" not in o.last_error and "***" in o.last_error  # the password is masked
    assert o.call(f) == (False, None) and f.calls == r.RETRIES  # not even tried
    clock.now += r.COOLDOWN + 1
    assert o.call(f) == (False, None) and f.calls == 2 * r.RETRIES  # tried again after it


def test_a_permanent_mlflow_error_is_not_retried():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    o = Outage(sleep=lambda s: None)
    f = Flaky(100, MlflowException("bad param", error_code=INVALID_PARAMETER_VALUE))
    assert o.call(f) == (False, None) and f.calls == 1 and not o.down


def test_settle_retries_deferred_writes_and_names_what_still_fails():
    clock = Clock()
    o = Outage(sleep=clock.sleep, clock=clock)
    recovered, dead = Flaky(r.RETRIES), Flaky(10_000)
    for label, f in (("trial 1", recovered), ("trial 2", dead)):
        ok, _ = o.call(f, force=True)
        assert not ok
        o.defer(label, f)
    assert set(o.incomplete) == {"trial 1", "trial 2"}
    assert o.down  # settle tries anyway: it is the last chance
    assert o.settle() == {"trial 2": o.incomplete["trial 2"]}
    assert recovered.calls == r.RETRIES + 1


def test_settle_stops_at_the_first_failure_so_a_stopping_study_does_not_wait_on_each_run():
    o = Outage(sleep=lambda s: None)
    first, second = Flaky(10_000), Flaky(0)
    o.defer("trial 1", first)
    o.defer("trial 2", second)
    assert set(o.settle()) == {"trial 1", "trial 2"}
    assert first.calls == r.RETRIES and second.calls == 0


def test_storage_folder_that_is_a_file_is_refused_and_nothing_is_created(tmp_path):
    (tmp_path / "blocker").write_text("x")
    with pytest.raises(StorageError, match="blocker.*not a writable folder"):
        check_storage_writable(f"sqlite:///{tmp_path}/blocker/study.db")
    with pytest.raises(StorageError, match="missing"):
        check_storage_writable(f"journal:///{tmp_path}/missing/study.log")
    check_storage_writable(f"sqlite:///{tmp_path}/study.db")  # a writable folder: fine
    check_storage_writable("postgresql://u:p@127.0.0.1:1/x")  # servers are checked by connecting
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]
