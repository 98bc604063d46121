"""Ctrl-C / SIGTERM during a search raise only where a trial can be closed cleanly."""

from __future__ import annotations

import os
import signal

import pytest

from tuner.run.interrupts import Interrupted, Interrupts


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_held_outside_the_safe_points_and_raised_at_the_next_one(sig: int) -> None:
    interrupts = Interrupts()
    restore = interrupts.install()
    try:
        os.kill(os.getpid(), sig)  # as if inside Optuna's ask/tell: nothing raised here
        assert interrupts.pending
        with pytest.raises(Interrupted):
            interrupts.check()
        with pytest.raises(Interrupted), interrupts.allowed():
            pass  # a held interrupt also stops entry into training
    finally:
        restore()


def test_raised_at_once_inside_training() -> None:
    interrupts = Interrupts()
    restore = interrupts.install()
    reached = False
    try:
        with pytest.raises(Interrupted), interrupts.allowed():
            os.kill(os.getpid(), signal.SIGTERM)
            reached = True
        assert not reached and not interrupts.safe
    finally:
        restore()


def test_restore_puts_the_previous_handlers_back() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    Interrupts().install()()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_an_interrupt_dropped_in_a_library_finalizer_prints_no_traceback(monkeypatch):
    """SIGTERM landing in a weakref callback Python runs for the garbage collector (CI saw
    SQLAlchemy's InstanceState._cleanup): Python drops the exception and would print
    "Exception ignored … Traceback"; the interrupt stays pending for the next check, and
    any other unraisable exception still reaches the previous hook."""
    import gc
    import sys
    import weakref

    seen: list[BaseException] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_value))
    recorder = sys.unraisablehook

    class Thing:
        pass

    interrupts = Interrupts()
    restore = interrupts.install()
    try:

        def cleanup(ref: object) -> None:  # as a library's finalizer would be interrupted
            interrupts.pending = True
            raise Interrupted()

        thing = Thing()
        ref = weakref.ref(thing, cleanup)
        del thing
        gc.collect()
        assert ref() is None and seen == []  # nothing printed
        with pytest.raises(Interrupted):
            interrupts.check()  # still pending: raised where it can be handled

        class Other:
            def __del__(self) -> None:
                raise ValueError("a real bug in a finalizer")

        Other()
        gc.collect()
        assert [type(e) for e in seen] == [ValueError]  # others still reach the hook
    finally:
        restore()
    assert sys.unraisablehook is recorder  # restore() puts the previous hook back
