"""Tracking writes that survive an MLflow outage: retry, carry on, say what is missing.

Tracking observes; it must never lose a trial. A write that fails is retried a
few times with a short backoff (MLflow's HTTP client already retries each request
itself; this also covers a local store that is locked or on a full disk). If it
still fails, tracking is marked down for ``COOLDOWN`` seconds, so training goes on
at full speed instead of waiting on every write, and the write is kept to be
tried again later: at the trial's next write, at its close, and once more when the
study ends. What still fails then is reported as an incomplete run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from tuner.secrets import mask_secrets

__all__ = ["COOLDOWN", "RETRIES", "Outage", "bound_http_retries", "check_tracking_database"]

RETRIES = 3  # attempts per write while tracking looks up
BACKOFF = 0.5  # seconds before the 2nd attempt; doubles after that
COOLDOWN = 60.0  # seconds during which writes are not attempted after an outage

# MLflow error codes that no retry can fix: the write itself is wrong.
_PERMANENT = ("INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS", "RESOURCE_DOES_NOT_EXIST")


# MLflow's HTTP client retries each request 7 times with a doubling backoff and a 120 s
# timeout: a stopped server took 4.5 minutes to report. Tuner retries whole writes and
# then carries on, so a few quick tries per request are enough. Set these variables to
# override.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


def bound_http_retries() -> None:
    """Shorter MLflow HTTP retries, unless the user set their own."""
    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def _permanent(error: BaseException) -> bool:
    return getattr(error, "error_code", None) in _PERMANENT


class Outage:
    """Runs tracking writes with retries and remembers what could not be written."""

    def __init__(
        self,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sleep, self.clock = sleep, clock
        self.down_until = 0.0
        self.last_error = ""
        self._deferred: dict[str, list[Callable[[], Any]]] = {}
        self.incomplete: dict[str, str] = {}

    @property
    def down(self) -> bool:
        return self.clock() < self.down_until

    def call(
        self, fn: Callable[..., Any], *args: Any, force: bool = False, **kwargs: Any
    ) -> tuple[bool, Any]:
        """``fn(*args, **kwargs)`` with retries; returns ``(ok, result)``, never raises.

        While tracking is down (within ``COOLDOWN`` of the last failure) the write is not
        attempted unless ``force``.
        """
        if self.down and not force:
            return False, None
        for attempt in range(RETRIES):
            try:
                result = fn(*args, **kwargs)
            except Exception as e:  # any transport or store error: tracking never steers
                self.last_error = mask_secrets(
                    f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
                )
                if _permanent(e):
                    return False, None
                if attempt + 1 < RETRIES:
                    self.sleep(BACKOFF * 2**attempt)
                continue
            self.down_until = 0.0
            return True, result
        self.down_until = self.clock() + COOLDOWN
        return False, None

    def defer(self, label: str, write: Callable[[], Any]) -> None:
        """Keep ``write`` (a closure that raises on failure) to be retried by ``settle``."""
        self._deferred.setdefault(label, []).append(write)
        self.incomplete[label] = self.last_error or "tracking unreachable"

    def settle(self) -> dict[str, str]:
        """Retry every deferred write once (even during a cooldown); returns what still failed."""
        for label, writes in list(self._deferred.items()):
            while writes:
                ok, _ = self.call(writes[0], force=True)
                if not ok:  # still down: do not make a stopping study wait on every run
                    return dict(self.incomplete)
                writes.pop(0)
            del self._deferred[label]
            self.incomplete.pop(label, None)
        return dict(self.incomplete)


def check_tracking_database(uri: str) -> None:
    """Connect once to a database tracking URI (``postgresql://``, ``mysql://``, ...).

    MLflow's own check retries with a doubling sleep for minutes and logs each try with
    the driver's message; a stopped database should be reported at once.
    """
    scheme = uri.split(":", 1)[0].lower()
    if "://" not in uri or scheme.split("+")[0] not in ("postgresql", "mysql", "mssql"):
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()
