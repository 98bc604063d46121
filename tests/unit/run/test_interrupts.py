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
