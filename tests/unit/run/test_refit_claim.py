"""When a refit claim counts as abandoned: its holder's process is gone from this host,
it has not beaten for longer than a trial's heartbeat may, or it never named itself."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import optuna

import tuner.run.refit_claim as rc
from tuner.storage.backends import GRACE_PERIOD, HEARTBEAT_INTERVAL

LIMIT = GRACE_PERIOD + HEARTBEAT_INTERVAL


def test_a_claim_is_stale_when_its_holder_is_gone_or_silent() -> None:
    here = socket.gethostname()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    now = time.time()
    assert rc._stale({"worker": f"{here}:{gone.pid}", "at": now}, None)  # dead on this host
    assert not rc._stale({"worker": f"{here}:{os.getpid()}", "at": now}, None)  # alive here
    # another host: only its beat can tell
    assert not rc._stale({"worker": "elsewhere:1", "at": now - LIMIT + 5}, None)
    assert rc._stale({"worker": "elsewhere:1", "at": now - LIMIT - 5}, None)
    # created, not beaten yet: give it the same time to write its first beat
    assert not rc._stale({}, time.monotonic() - 1)
    assert rc._stale({}, time.monotonic() - LIMIT - 1)
    assert rc._stale({"worker": "elsewhere:1"}, time.monotonic() - LIMIT - 1)


def test_the_holder_beats_and_releases_its_claim(tmp_path, monkeypatch) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=storage)
    monkeypatch.setattr(rc, "HEARTBEAT_INTERVAL", 0.05)
    said: list[str] = []
    with rc.refit_turn(study, storage, said.append):
        first = rc._holder(rc.claim_name("s"), storage)
        assert first is not None and first["worker"] == f"{socket.gethostname()}:{os.getpid()}"
        time.sleep(0.3)
        later = rc._holder(rc.claim_name("s"), storage)
        assert later is not None and later["at"] > first["at"]  # beaten while held
    assert rc._holder(rc.claim_name("s"), storage) is None  # released
    assert said == []  # nobody held it: nothing to wait for, nothing said
