"""Study storage: resolve the URL, build Optuna's storage, never leak a password.

Schemes (all Optuna's own storages):

- ``sqlite:///study.db`` (the embedded default, a file beside the study file) and
  ``postgresql://``/``mysql://``: ``RDBStorage`` with a heartbeat, so a worker that
  dies mid-trial has the trial failed and retried (``RetryHeartbeatStaleTrialCallback``).
- ``journal:///path/study.log``: ``JournalFileBackend`` (fast for many local
  processes, but Optuna has no heartbeat for journals: a killed trial stays RUNNING).
- ``redis://host:6379/0[?prefix=NAME]``: Optuna's journal over Redis (no heartbeat either).
- ``grpc://host:port``: a ``tune storage-proxy`` in front of a real database.
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from typing import Any
from urllib.parse import urlparse

from tuner.errors import StorageError
from tuner.secrets import mask_url
from tuner.storage.urls import describe, scheme

__all__ = [
    "GRACE_PERIOD",
    "HEARTBEAT_INTERVAL",
    "MAX_RETRY",
    "build_storage",
    "enable_fast_sqlite",
    "new_storage_file",
    "remove_storage_file",
    "retry_dead_trial",
]

# Seconds between heartbeats, and before a silent trial is declared dead. Short
# enough that a killed worker's trial is retried within a couple of minutes.
HEARTBEAT_INTERVAL = int(os.environ.get("TUNER_HEARTBEAT_INTERVAL", "10"))
GRACE_PERIOD = int(os.environ.get("TUNER_GRACE_PERIOD", str(3 * HEARTBEAT_INTERVAL)))
# How often a dead worker's trial is re-run, whoever finds it dead (the heartbeat or
# tuner's check that its process is gone).
MAX_RETRY = 2


# What a retry must not inherit from the dead trial: its worker (a dead process that
# tuner's own check would fail the retry for) and its MLflow run (the retry gets its own).
_NOT_INHERITED = ("worker", "mlflow_run_id")


def retry_dead_trial(max_retry: int = MAX_RETRY) -> Any:
    """Optuna's callback that re-queues a dead worker's trial with the same params,
    without the dead worker's name and MLflow run."""
    import copy

    import optuna

    class RetryDeadTrial(optuna.storages.RetryHeartbeatStaleTrialCallback):
        def __call__(self, study: Any, trial: Any) -> None:
            trial = copy.deepcopy(trial)  # Optuna appends to its retry history
            trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in _NOT_INHERITED}
            super().__call__(study, trial)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryDeadTrial(max_retry=max_retry)


def _sqlite_on_connect(dbapi_conn: Any, record: Any) -> None:
    import sqlite3

    if isinstance(dbapi_conn, sqlite3.Connection):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()


def enable_fast_sqlite() -> None:
    """WAL + ``synchronous=NORMAL`` for every SQLite file tuner opens (study and MLflow).

    With SQLite's default rollback journal every commit waits for an fsync: 17 ms here,
    and a trial makes dozens of commits. In WAL mode with synchronous=NORMAL a commit
    is ~0.01 ms and survives a crash or kill of the process (only a power cut can drop
    the last commits). WAL needs a local disk, not a network file system.
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not event.contains(Engine, "connect", _sqlite_on_connect):
        event.listen(Engine, "connect", _sqlite_on_connect)


@functools.cache
def _storage_class() -> type:
    import optuna

    class HeartbeatTolerantRDBStorage(optuna.storages.RDBStorage):
        """A heartbeat that fails (the database restarting) skips one beat instead of
        ending Optuna's heartbeat thread with a traceback: the trial lives on, and the
        next beat (after the reconnect) keeps it from being declared stale."""

        def record_heartbeat(self, trial_id: int) -> None:
            try:
                super().record_heartbeat(trial_id)
            except Exception:
                pass

    return HeartbeatTolerantRDBStorage


def build_storage(url: str, *, max_retry: int = MAX_RETRY, create: bool = True) -> Any:
    """Build the Optuna storage for ``url``.

    Args:
        url: a resolved storage URL (see the module docstring).
        max_retry: how often a trial of a dead worker is re-run (RDB storages).
        create: whether a missing file-backed storage may be created.

    Raises:
        StorageError: naming the host or file, never the password.
    """
    import optuna

    kind = scheme(url)
    made = new_storage_file(url)
    try:
        if kind == "journal":
            return _journal(url, create)
        if kind in ("redis", "rediss"):
            return _redis(url)
        if kind == "grpc":
            parsed = urlparse(url)
            return optuna.storages.GrpcStorageProxy(
                host=parsed.hostname or "localhost", port=parsed.port or 13000
            )
        return _rdb(url, kind, create, max_retry)
    except StorageError:
        remove_storage_file(made)
        raise
    except Exception as e:  # driver errors vary; none may carry the password out
        remove_storage_file(made)
        reason = mask_url(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        raise StorageError(
            f"cannot open the study storage ({describe(url)}): {reason}. Check that the "
            "server is running and reachable, and the database exists"
        ) from None


def _journal(url: str, create: bool) -> Any:
    import optuna
    from optuna.storages.journal import JournalFileBackend

    path = url.split(":///", 1)[1]
    if not create and not os.path.exists(path):
        raise StorageError(f"no study storage at {path}: run `tune STUDY.yaml` first")
    return optuna.storages.JournalStorage(JournalFileBackend(path))


def _redis(url: str) -> Any:
    from urllib.parse import parse_qsl, urlencode

    import optuna
    from optuna.storages.journal import JournalRedisBackend

    # ?prefix=NAME keeps several journals apart in one Redis database.
    parsed = urlparse(url)
    query = dict(parse_qsl(parsed.query))
    prefix = query.pop("prefix", "")
    plain = parsed._replace(query=urlencode(query)).geturl()
    return optuna.storages.JournalStorage(JournalRedisBackend(plain, prefix=prefix))


def _rdb(url: str, kind: str, create: bool, max_retry: int) -> Any:
    """Optuna's RDBStorage with a heartbeat: SQLite (WAL, a 60 s lock wait) or a server
    (connections checked before use, and waited for while it restarts)."""
    import optuna

    engine_kwargs: dict[str, Any] = {}
    if kind == "sqlite":
        enable_fast_sqlite()
        path = url.split(":///", 1)[1]
        if not create and not os.path.exists(path):
            raise StorageError(f"no study storage at {path}: run `tune STUDY.yaml` first")
        # Wait for a writer instead of failing at once when workers share the file.
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        from tuner.storage.reconnect import enable_reconnect

        engine_kwargs["pool_pre_ping"] = True  # survive a database restart...
        enable_reconnect()  # ...even while it is still down: wait for it
    with warnings.catch_warnings():
        # Optuna flags the heartbeat API as experimental; it is what crash recovery is.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for attempt in range(3):
            try:
                return _storage_class()(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=HEARTBEAT_INTERVAL,
                    grace_period=GRACE_PERIOD,
                    heartbeat_stale_trial_callback=retry_dead_trial(max_retry),
                )
            except Exception as e:
                # Workers starting together on an empty database race to create
                # Optuna's tables; the losers find them made on a second look.
                if "already exists" not in str(e) and "duplicate key" not in str(e) or attempt == 2:
                    raise
                time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")  # the loop returns or raises


def new_storage_file(url: str) -> str | None:
    """The SQLite file ``url`` names, when it does not exist yet (so that a storage
    that fails while being created leaves no empty file behind)."""
    if scheme(url) != "sqlite" or ":///" not in url:
        return None
    path = url.split(":///", 1)[1].split("?", 1)[0]
    return None if not path or path == ":memory:" or os.path.exists(path) else path


def remove_storage_file(path: str | None) -> None:
    for p in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal") if path else ():
        try:
            os.remove(p)
        except OSError:
            pass
