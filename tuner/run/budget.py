"""The study's global trial budget, exact across every worker that joins the study:
finished (complete or pruned) trials are counted in the storage, a worker waits for a
slot while the last trials run elsewhere, and a trial that started past the budget is
surplus and trains nothing."""

from __future__ import annotations

import time
from typing import Any

from tuner.errors import StorageError
from tuner.run.study import close_stale
from tuner.secrets import mask_secrets
from tuner.storage.backends import HEARTBEAT_INTERVAL

__all__ = ["FINISHED", "Budget", "BudgetReached", "budget_counts", "count_finished"]

FINISHED = ("COMPLETE", "PRUNED")


def count_finished(study: Any, storage: Any = None) -> int:
    """Finished (complete or pruned) trials of the study, across all workers."""
    return budget_counts(study, storage)[0]


def budget_counts(study: Any, storage: Any = None, below: int | None = None) -> tuple[int, int]:
    """``(finished, running)`` trials of the study across all workers; with ``below``,
    only trials numbered below it."""
    return _finished_running(_state_counts(study, storage, below))


def _finished_running(states: dict[str, int]) -> tuple[int, int]:
    return sum(states.get(s, 0) for s in FINISHED), states.get("RUNNING", 0)


def _state_counts(study: Any, storage: Any = None, below: int | None = None) -> dict[str, int]:
    """The study's trials by state name, across all workers; with ``below``, only
    trials numbered below it.

    Called around every trial, so its cost must not grow with the study: on an
    ``RDBStorage`` (passed as ``storage``) it is one grouped ``COUNT`` query; journal
    and gRPC storages keep the trials in memory and update them incrementally.
    """
    import optuna

    try:
        if isinstance(storage, optuna.storages.RDBStorage):
            return _count_sql(storage, study.study_name, below)
        counts: dict[str, int] = {}
        for t in study.get_trials(deepcopy=False):
            if below is None or t.number < below:
                counts[t.state.name] = counts.get(t.state.name, 0) + 1
        return counts
    except Exception as e:
        raise StorageError(f"cannot read the study storage: {mask_secrets(str(e))}") from None


def _count_sql(storage: Any, study_name: str, below: int | None) -> dict[str, int]:
    # Optuna's RDB schema (tables studies/trials, state stored as the enum's name) is
    # stable across its alembic versions; reading it avoids loading every trial.
    from sqlalchemy import text

    query = (
        "SELECT trials.state, COUNT(*) FROM trials JOIN studies ON trials.study_id = studies.study_id "
        "WHERE studies.study_name = :name"
    )
    args: dict[str, Any] = {"name": study_name}
    if below is not None:
        query += " AND trials.number < :below"
        args["below"] = below
    with storage.engine.connect() as conn:
        rows = conn.execute(text(query + " GROUP BY trials.state"), args).all()
    return {str(state): int(n) for state, n in rows}


class BudgetReached(Exception):
    """A trial started after other workers had claimed the rest of the budget."""


class Budget:
    """The study's global trial budget (finished = complete or pruned trials), shared
    by every worker that joins the study.

    On storages with a heartbeat (SQLite, PostgreSQL, MySQL) it is exact: a worker
    starts a trial only while finished + running trials are below the budget, and
    while the last trials run elsewhere it waits instead of stopping, since one of them
    may still fail or lose its worker (its heartbeat goes stale) and need replacing.
    Two workers that pass at the same instant both create a trial; the trial numbers
    decide (``claim``): the later one is surplus and fails before anything is trained
    or logged. Without a heartbeat (journal, Redis, gRPC) a dead worker's trial would
    stay RUNNING forever, so there running trials are not waited for and the total may
    overshoot by up to the number of workers.
    """

    def __init__(
        self,
        study: Any,
        storage: Any,
        total: int,
        tracker: Any,
        deadline: float | None = None,
        poll: float = 0.5,
    ) -> None:
        self.study, self.storage, self.total, self.tracker = study, storage, total, tracker
        self.deadline, self.poll = deadline, poll
        heartbeat = getattr(storage, "get_heartbeat_interval", None)
        self.exact = heartbeat is not None and heartbeat() is not None
        # the last count: (trials in the study, waiting, finished + running), for claim
        self._last: tuple[int, int, int] | None = None

    def finished(self) -> int:
        return self.counts()[0]

    def counts(self) -> tuple[int, int]:
        """``(finished, running)`` trials of the study, across all workers."""
        states = _state_counts(self.study, self.storage)
        finished, running = _finished_running(states)
        self._last = (sum(states.values()), states.get("WAITING", 0), finished + running)
        return finished, running

    def wait_for_slot(self, on_wait: Any = None, counts: tuple[int, int] | None = None) -> bool:
        """True when this worker should start a trial; False once the budget is reached
        (or the study's deadline passed while waiting). ``counts``: ``counts()`` just
        taken by the caller, so the first check needs no query of its own."""
        last_check = float("-inf")  # at once: a crashed run's trial may be stale already
        waited = False
        while True:
            finished, running = counts or self.counts()
            counts = None
            if finished >= self.total:
                return False
            if not self.exact or finished + running < self.total:
                return True
            now = time.monotonic()
            if self.deadline is not None and now >= self.deadline:
                return False
            if not waited and on_wait is not None:
                on_wait(finished, running)
            waited = True
            if now - last_check >= HEARTBEAT_INTERVAL:
                close_stale(self.study, self.tracker)  # a dead worker's trial frees its slot
                last_check = now
            time.sleep(self.poll)

    def claim(self, number: int) -> bool:
        """Whether trial ``number`` is within the budget: fewer than ``total`` trials
        numbered below it are finished or running.

        Answered from the last count, without a query, when that count let this worker
        start a trial, nothing was waiting, and ``number`` is the count's number of
        trials: trial numbers run on without gaps, so no worker created a trial in
        between, and with none waiting none could be resumed. The trials numbered below
        are then the ones counted, and since the count they could only finish or fail,
        which never adds to finished + running.
        """
        if not self.exact:
            return True
        last, self._last = self._last, None
        if last is not None and last[0] == number and last[1] == 0 and last[2] < self.total:
            return True
        finished, running = budget_counts(self.study, self.storage, below=number)
        return finished + running < self.total
