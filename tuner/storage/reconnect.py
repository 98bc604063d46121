"""A database server that goes away mid-study (a restart, a fail-over): wait for it.

SQLAlchemy's ``pool_pre_ping`` replaces a pooled connection the server dropped, but
opening the new one fails at once while the server is still down, and Optuna's trial
loop does not survive a failed write (it ends in ``UnboundLocalError`` inside Optuna).
So every new connection to a server tuner has already reached once is retried, with
backoff, for up to ``$TUNER_STORAGE_RETRY`` seconds (default 120), saying so once: a
restart of a few seconds costs the study nothing. A server never reached fails at
once, as before (a wrong port must not hang for two minutes).

``storage_failure`` tells a storage fault apart from any other error, wherever in
Optuna's loop it surfaced (Optuna may wrap it in its own ``UnboundLocalError`` or
``AssertionError``).
"""

from __future__ import annotations

import errno
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["RETRY_WINDOW", "enable_reconnect", "storage_failure"]

RETRY_WINDOW = float(os.environ.get("TUNER_STORAGE_RETRY", "120"))

# Servers reached at least once in this process: (dialect, host, port, database).
_reached: set[tuple[Any, ...]] = set()
_down: dict[tuple[Any, ...], float] = {}  # server -> when it was first found down (and said so)
_lock = threading.Lock()
_notify: list[Callable[[str], None]] = [lambda text: print(text, file=sys.stderr, flush=True)]


def _key(dialect: Any, cparams: dict[str, Any]) -> tuple[Any, ...]:
    return (
        dialect.name,
        cparams.get("host"),
        cparams.get("port"),
        cparams.get("dbname") or cparams.get("database") or cparams.get("db"),
    )


def _where(key: tuple[Any, ...]) -> str:
    name, host, port, db = key
    return f"{name} at {host or 'localhost'}{f':{port}' if port else ''}/{db or ''}"


def _do_connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
    if dialect.name == "sqlite":
        return None  # SQLAlchemy connects as usual
    key = _key(dialect, cparams)
    if key not in _reached:
        conn = dialect.connect(*cargs, **cparams)  # first contact: fail fast
        _reached.add(key)
        return conn
    delay = 0.25
    while True:
        try:
            conn = dialect.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.OperationalError as e:
            # One window per outage, shared by every connection (the trial's, the
            # heartbeat's): "up to 120 s" is 120 s, not 120 s per attempt.
            with _lock:
                since = _down.get(key)
                if since is None:  # the first connection to find it down says so
                    since = _down[key] = time.monotonic()
                    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    _notify[0](
                        f"the study database ({_where(key)}) is unreachable ({_clean(first)}): "
                        f"waiting up to {RETRY_WINDOW:.0f} s for it to come back"
                    )
            if time.monotonic() + delay > since + RETRY_WINDOW:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            continue
        with _lock:
            since = _down.pop(key, None)
            if since is not None:
                _notify[0](f"the study database is back after {time.monotonic() - since:.1f} s; carrying on")
        return conn


def _clean(text: str) -> str:
    from tuner.secrets import mask_secrets

    return mask_secrets(text).replace("connection failed: ", "")


def enable_reconnect(notify: Callable[[str], None] | None = None) -> None:
    """Retry new connections to a server already reached (once per process; idempotent).

    Args:
        notify: where the one-line "waiting" and "back" messages go (stderr by default).
    """
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if notify is not None:
        _notify[0] = notify
    if not event.contains(Engine, "do_connect", _do_connect):
        event.listen(Engine, "do_connect", _do_connect)


_STORAGE_MODULES = ("sqlalchemy", "psycopg", "psycopg2", "pymysql", "sqlite3", "redis", "grpc")
_DISK_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EIO)


def storage_failure(exc: BaseException) -> BaseException | None:
    """The storage fault behind ``exc`` (itself, its cause or its context), or None.

    Optuna's trial loop can turn a failed write into ``UnboundLocalError`` or
    ``AssertionError("Should not reach.")``; the real fault is in their context.
    """
    import optuna

    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        module = type(e).__module__.split(".", 1)[0]
        if isinstance(e, optuna.exceptions.StorageInternalError) or module in _STORAGE_MODULES:
            return _root(e)
        if isinstance(e, OSError) and e.errno in _DISK_ERRNOS:
            return e
        e = e.__cause__ or e.__context__
    return None


def _root(e: BaseException) -> BaseException:
    """The driver's own error under Optuna's and SQLAlchemy's wrappers (its message says
    what happened: "database or disk is full", "the database system is shutting down")."""
    while (e.__cause__ or e.__context__) is not None:
        nxt = e.__cause__ or e.__context__
        assert nxt is not None
        if type(nxt).__module__.split(".", 1)[0] not in _STORAGE_MODULES + ("optuna",):
            break
        e = nxt
    return e
