"""Whose turn it is to refit: one process at a time scores a study's held-out test split.

Workers on several machines reach the study's budget together, and each of them
concludes the study. Without a claim each would refit the best configuration and
score the test split, and their records would overwrite each other (seen: two refits,
one record). The claim is a second Optuna study in the same storage, named
``<study>::refit-claim``: creating a study is atomic in every Optuna storage (a unique
name in the database, one entry in the journal), so exactly one process creates it.
The holder beats it while it refits and deletes it once its scoring is recorded; the
others wait for it, then find the record and reuse it. A claim whose holder died (its
process is gone from this host, or its beat is older than the heartbeat grace period)
is taken over, so a crash during the refit blocks nothing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from tuner.run.identity import certainly_dead, worker_name
from tuner.storage.backends import GRACE_PERIOD, HEARTBEAT_INTERVAL
from tuner.views.progress import Heartbeat

__all__ = ["CLAIM_SUFFIX", "claim_name", "refit_turn"]

CLAIM_SUFFIX = "::refit-claim"


def claim_name(study_name: str) -> str:
    """The name of the claim study that stands for ``study_name``'s refit in progress."""
    return study_name + CLAIM_SUFFIX


@contextlib.contextmanager
def refit_turn(study: Any, storage: Any, say: Callable[[str], None], poll: float = 1.0) -> Iterator[None]:
    """Wait until this process holds the study's refit claim, hold it (beating it) for
    the block, and release it after, however the block ends.

    While another live process holds it, this one waits (a line when it starts, then a
    heartbeat line now and then); Ctrl-C stops the wait like any other.
    """
    name = claim_name(study.study_name)
    claim = _wait_for_claim(name, storage, say, poll)
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(claim, stop), name="tuner-refit-claim", daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join(timeout=5)
        _release(name, storage)


def _wait_for_claim(name: str, storage: Any, say: Callable[[str], None], poll: float) -> Any:
    """Create the claim study (ours), or wait for the holder of the existing one."""
    import optuna

    me = worker_name()
    heartbeat = Heartbeat(say)
    unnamed_since: float | None = None  # when we first saw a claim not beaten even once
    told = False
    while True:
        try:
            claim = optuna.create_study(study_name=name, storage=storage)
        except optuna.exceptions.DuplicatedStudyError:
            pass
        else:
            claim.set_user_attr("at", time.time())  # first: a holder that dies now still ages
            claim.set_user_attr("worker", me)
            return claim
        holder = _holder(name, storage)
        if holder is None:
            time.sleep(0.05)
            continue  # released since we tried: try again
        worker = holder.get("worker")
        if holder.get("at") is None:
            unnamed_since = unnamed_since or time.monotonic()
        if _stale(holder, unnamed_since):
            say(
                f"the refit claimed by {worker or 'a worker'} was abandoned (gone, or silent); taking it over"
            )
            _release(name, storage)
            unnamed_since = None
            continue
        if not told:
            say(
                f"the refit is running on {worker or 'another worker'}: waiting for it to score the test split"
            )
            told = True
        heartbeat(f"waiting for the refit on {worker or 'another worker'}")
        time.sleep(poll)


def _holder(name: str, storage: Any) -> dict[str, Any] | None:
    """The claim's record (``worker``, ``at``), or None when there is no claim."""
    import optuna

    try:
        return dict(optuna.load_study(study_name=name, storage=storage).user_attrs)
    except KeyError:
        return None


def _stale(holder: dict[str, Any], unnamed_since: float | None) -> bool:
    """Whether the claim's holder is gone: its process is not on this host any more, or
    it has not beaten for longer than a trial's heartbeat would be allowed to."""
    worker = holder.get("worker")
    if worker is not None and certainly_dead(str(worker)):
        return True
    limit = GRACE_PERIOD + HEARTBEAT_INTERVAL
    at = holder.get("at")
    if at is not None:
        return time.time() - float(at) > limit
    # created and not beaten yet: give it as long to write its first beat
    return unnamed_since is not None and time.monotonic() - unnamed_since > limit


def _beat(claim: Any, stop: threading.Event) -> None:
    """Keep the claim fresh while the refit trains (an epoch may outlast the grace
    period, so this is a thread, not a per-epoch call)."""
    while not stop.wait(HEARTBEAT_INTERVAL):
        with contextlib.suppress(Exception):  # the storage is down: the refit goes on
            claim.set_user_attr("at", time.time())


def _release(name: str, storage: Any) -> None:
    """Delete the claim; never raises (a claim left behind is taken over as abandoned)."""
    import optuna

    with contextlib.suppress(Exception):
        optuna.delete_study(study_name=name, storage=storage)
