"""A trial's Optuna writes, applied off the training thread.

Every ``trial.report`` and ``trial.set_user_attr`` is its own storage transaction
(Optuna 5 has no batching; on SQLite each costs a few ms), and a cross-validated
trial makes dozens of them: one per epoch and fold, and its scores, diagnosis and run
id at the end. Nothing needs them at once: the trial's own pruning decision reads its
values from memory here, the other trials' pruners read finished trials only, and
``tune status`` can wait a moment for a running trial's last epoch.

When torch's threads leave a core free (or with ``TUNER_STORAGE_WRITER=process``),
``WriteBehind`` sends those writes to a child process that applies them to the storage
in order, through its public ``BaseStorage`` methods, on that core while training goes
on; the reports go in batches. A thread would not do: SQLAlchemy's work is Python that
holds the GIL the training loop needs (measured: a thread took the writes' 95 ms per
trial off the training thread but added 39 ms of waiting for the GIL to it). When
torch's threads take every core (``inline``, or ``TUNER_STORAGE_WRITER=inline``) each
write is made at once, as Optuna's own trial would (see ``write_mode``).
``BufferedTrial`` is the trial as the objective sees it: it keeps its reported values
and user attributes, queues their writes, and asks the configured pruner with a
``FrozenTrial`` built from memory. ``flush`` waits until every queued write is in the
storage; the trial function calls it before Optuna is told the trial finished, so a
finished trial is never recorded without its values, and a kill before that leaves a
RUNNING trial that the next run fails, as before.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

from tuner.tracking.writer import send_whole, spawn_child, stop_child

__all__ = ["BufferedTrial", "WriteBehind", "write_mode"]

_Write = tuple[str, tuple[Any, ...]]
FLUSH_TIMEOUT = float(os.environ.get("TUNER_STORAGE_FLUSH_TIMEOUT", "600"))
BATCH = 4  # reports held before they go to the child in one message (see put)


def write_mode(threads: int | None = None, cores: int | None = None, busy: int = 0) -> str:
    """``inline`` or ``process``: ``$TUNER_STORAGE_WRITER`` when it names one, otherwise
    ``process`` when a core is left over after torch's ``threads`` (default: torch's
    current count) and the ``busy`` cores (other work found running when the threads
    were chosen, ``Session.busy``), and ``inline`` when they fill the ``cores`` this
    process may use.

    Measured with benchmarks/overhead.py on 2 idle cores (2026-12-04, 3 interleaved rounds):
    a worker training on 1 thread spent 18 % less per trial with the child than inline
    (child / inline 0.82 at 0.3 s trials, 0.83 at 1 s); the quickstart, whose torch threads take both cores, was
    4 % slower with it (38.5 and 40.7 s against 36.5 and 39.3 s). On a core already
    busy with other work the child competes for it (stop 29 measured b'/b 1.08 to 1.19 at
    0.3 s at a load of about 1 on 2 cores), hence ``busy``; ``TUNER_STORAGE_WRITER=inline``
    keeps every write on the training process."""
    value = os.environ.get("TUNER_STORAGE_WRITER", "auto").strip().lower()
    if value in ("inline", "process"):
        return value
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    from tuner.run.workers import usable_cores

    cores = cores or usable_cores()
    return "process" if cores - busy > threads else "inline"


class WriteBehind:
    """The trials' storage writes, made by a child process while training goes on.

    ``put`` sends a write to the child (``tuner.run.write_behind_process``); ``flush``
    waits until the child has applied everything sent, then applies here, in order,
    whatever it could not (a write that failed, and all after it), raising while the
    storage still refuses. If the child dies, the writes it may have missed are
    applied here and later writes are made at once, as the inline mode (see
    ``write_mode``) and a storage without a URL do from the start. Every write is
    an upsert (a trial's value at a step, an attribute by key), so applying one twice
    is harmless.
    """

    def __init__(self, storage: Any, url: str | None, mode: str | None = None) -> None:
        self.storage = storage
        self._sent: list[_Write] = []  # sent to the child since the last flush
        self._pending: list[_Write] = []  # to apply here, in order
        self._outbox: list[_Write] = []  # reports not yet sent to the child
        self._seq = 0
        self.alive = False
        if url and (mode or write_mode()) == "process":
            self._start(url)

    def _start(self, url: str) -> None:
        self.proc, self.conn, self._sock = spawn_child("tuner.run.write_behind_process")
        self.alive = True
        # The URL may hold a password: it travels over the pipe, never on a command line.
        self._send(("init", url))

    def _send(self, message: Any) -> bool:
        if not self.alive:
            return False
        try:
            send_whole(self.conn, message)
            return True
        except (OSError, EOFError):
            self._died()
            return False

    def _died(self) -> None:
        """The child is gone: what it may not have applied is applied here, first."""
        self.alive = False
        self._pending = self._sent + self._pending + self._outbox
        self._sent, self._outbox = [], []

    def put(self, method: str, *args: Any, batch: bool = False) -> None:
        """Queue ``storage.<method>(*args)``: a public ``BaseStorage`` write. With ``batch``
        (a report: one per epoch, read by nobody before the trial ends) it waits here
        until ``BATCH`` are queued and goes to the child in one message; anything else
        goes at once, with what waits before it. Small batches keep the trial's end from
        waiting on many reports (measured: 4 gave 64 ms added per 0.3 s trial, 16 gave
        72 ms, benchmarks/overhead.py)."""
        if self.alive:
            self._outbox.append((method, args))
            if not batch or len(self._outbox) >= BATCH:
                self._send_outbox()
        elif self._pending:  # writes handed back, or missed by a dead child, come first
            self._pending.append((method, args))
            self._apply_pending()
        else:  # inline: at once, as Optuna's own trial would (and raising as it would)
            getattr(self.storage, method)(*args)

    def _send_outbox(self) -> None:
        writes, self._outbox = self._outbox, []
        if self._send(("w", writes)):
            self._sent.extend(writes)
        else:  # the child is gone: these are made here, after what it may have missed
            self._pending.extend(writes)
            self._apply_pending()

    def flush(self) -> None:
        """Return once every write put so far is in the storage; raise the storage's
        error while a write still fails (it stays queued for the next flush)."""
        if self._outbox:
            self._send_outbox()
        if self._sent and self._send(("flush", self._seq + 1)):
            self._seq += 1
            reply = self._wait_flushed(self._seq)
            if reply is not None:  # ("flushed", seq, the writes the child could not make)
                self._pending = list(reply[2]) + self._pending
                self._sent = []
        self._apply_pending()

    def _wait_flushed(self, seq: int) -> Any:
        deadline = time.monotonic() + FLUSH_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if self.conn.poll(min(5.0, max(deadline - time.monotonic(), 0.0))):
                    reply = self.conn.recv()
                    if reply[0] == "flushed" and reply[1] == seq:
                        return reply
                    continue
            except (OSError, EOFError):
                break
            if self.proc.poll() is not None:
                break
        self.proc.kill()  # stuck or gone: this process makes the writes from here on
        self._died()
        return None

    def _apply_pending(self) -> None:
        while self._pending:
            method, args = self._pending[0]
            getattr(self.storage, method)(*args)  # raises while the storage fails
            self._pending.pop(0)

    def close(self) -> None:
        """Stop the child once it has applied what it was sent."""
        if not hasattr(self, "proc"):
            return  # inline: there is no child
        if self.alive:
            self._send(("close",))
        self.alive = False
        stop_child(self.proc, self.conn, self._sock)


class _StoredSystemAttrs(Mapping[str, Any]):
    """The trial's system attributes, read from the storage when a pruner looks
    (only SuccessiveHalving and Hyperband do): one read instead of one per epoch."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self._storage, self._trial_id = storage, trial_id
        self._attrs: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._attrs is None:
            self._attrs = dict(self._storage.get_trial_system_attrs(self._trial_id))
        return self._attrs

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


class BufferedTrial:
    """An ``optuna.Trial`` whose reports and user attributes are written behind.

    Everything else (``number``, ``params``, ``suggest_*``, ``study``) is the trial's
    own. ``should_prune`` asks the study's pruner, as Optuna's does, with the trial's
    values from memory.
    """

    def __init__(self, trial: Any, storage: Any, trial_id: int, writes: WriteBehind) -> None:
        self._trial, self._storage, self._id, self._writes = trial, storage, trial_id, writes
        self._values: dict[int, float] = {}
        self._attrs: dict[str, Any] = dict(trial.user_attrs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)

    @property
    def user_attrs(self) -> dict[str, Any]:
        return dict(self._attrs)

    @property
    def intermediate_values(self) -> dict[int, float]:
        return dict(self._values)

    def report(self, value: float, step: int) -> None:
        """Like ``optuna.Trial.report``: one value per step, the first one kept."""
        value, step = float(value), int(step)
        if step < 0:
            raise ValueError(f"step must be non-negative, got {step}")
        if step in self._values:
            return
        self._values[step] = value
        self._writes.put("set_trial_intermediate_value", self._id, step, value, batch=True)

    def set_user_attr(self, key: str, value: Any) -> None:
        self._attrs[key] = value
        self._writes.put("set_trial_user_attr", self._id, key, value)

    def should_prune(self) -> bool:
        import optuna

        trial = self._trial
        pruner = trial.study.pruner
        if isinstance(pruner, optuna.pruners.NopPruner):  # pruning off: no trial to build
            return False
        frozen = optuna.trial.FrozenTrial(
            number=trial.number,
            state=optuna.trial.TrialState.RUNNING,
            value=None,
            datetime_start=trial.datetime_start,
            datetime_complete=None,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs=self.user_attrs,
            system_attrs=_StoredSystemAttrs(self._storage, self._id),  # type: ignore[arg-type]
            intermediate_values=dict(self._values),
            trial_id=self._id,
        )
        return bool(pruner.prune(trial.study, frozen))

    def flush(self) -> None:
        """Wait until this trial's writes are in the storage (see ``WriteBehind.flush``)."""
        self._writes.flush()
