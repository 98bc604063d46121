"""Ctrl-C and SIGTERM during a search, raised only where a trial can still close
cleanly; and Optuna's log kept quiet about surplus trials."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Interrupted", "Interrupts", "quiet_surplus"]


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so both close the study cleanly."""


class Interrupts:
    """Ctrl-C and SIGTERM during the search, raised only where that is safe.

    Inside training and the budget wait they raise at once. Elsewhere (Optuna creating
    or telling a trial, MLflow opening or closing its run) they are held until the next
    of those points, the next trial's start or the end of the trial's callback: an
    interrupt raised inside Optuna's own bookkeeping left a trial RUNNING that no one
    would ever finish.
    """

    def __init__(self) -> None:
        self.pending = False
        self.safe = False

    def _handle(self, signum: int, frame: Any) -> None:
        self.pending = True  # kept, should the raise below be swallowed
        if self.safe and not _in_finalizer(frame):
            raise Interrupted()

    def check(self) -> None:
        if self.pending:
            raise Interrupted()

    @contextlib.contextmanager
    def allowed(self) -> Iterator[None]:
        self.check()
        self.safe = True
        try:
            yield
        finally:
            self.safe = False

    def install(self) -> Callable[[], None]:
        """Handle SIGINT and SIGTERM; returns what puts the previous handlers back."""
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        hook = sys.unraisablehook
        sys.unraisablehook = _quiet_interrupts(hook)

        def restore() -> None:
            for s, handler in previous.items():
                signal.signal(s, handler)
            sys.unraisablehook = hook

        return restore


def _quiet_interrupts(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """An unraisable-exception hook that drops ``Interrupted``: raised in a finalizer that
    ``_in_finalizer`` cannot recognise (a library's weakref callback, e.g. SQLAlchemy's
    ``InstanceState._cleanup``), Python would print it with a traceback and drop it. The
    interrupt is still pending, and the next check raises it where it can be handled."""

    def quiet(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, Interrupted):
            return
        hook(unraisable)

    return quiet


def _in_finalizer(frame: Any) -> bool:
    """Whether the signal landed in a finalizer (a weakref callback or ``__del__`` run by
    the garbage collector): Python prints an exception raised there and drops it, so the
    interrupt is left pending for the next check instead."""
    code = getattr(frame, "f_code", None)
    return code is not None and (code.co_filename.endswith("weakref.py") or code.co_name == "__del__")


@contextlib.contextmanager
def quiet_surplus() -> Iterator[None]:
    """Keep Optuna from logging a surplus trial (see ``Budget.claim``) as a failure."""

    def keep(record: logging.LogRecord) -> bool:
        return "BudgetReached" not in record.getMessage()

    logger = logging.getLogger("optuna")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)
