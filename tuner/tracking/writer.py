"""Trial runs' MLflow writes in a process of their own, off the training loop: the
study process's end of the pipe (the child is ``tuner.tracking.writer_process``).

An MLflow trial run costs ~45 ms of SQL work per trial on a local store (create the
run, one ``log_batch`` per fold, the final batch and state), all of it Python that
holds the GIL: a background thread slowed training by more than it saved (measured
in benchmarks/overhead.py's set-up). So the writes go to a child process, which
runs the same ``TrialRun`` code with the same retries and outage handling, on the
machine's other core while training goes on.

Nothing is lost that the inline path would have kept:

- the child reads its pipe to the end, so the writes sent before the study process
  exits, is interrupted, or is killed, are all made (it ignores SIGINT/SIGTERM, so a
  Ctrl-C on the terminal's process group does not cut it short);
- the study process waits for it (``flush``) before it closes the parent run, looks
  for orphan runs, or reports incomplete runs, so what it prints is what MLflow holds;
- if the child dies, the study falls back to writing inline and says which runs may
  be incomplete; a run left RUNNING is closed at the next start (``close_orphans``).

``TUNER_MLFLOW_WRITER=inline`` keeps every write in the study process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from tuner.tracking.rows import epoch_metrics, format_error, now_ms

__all__ = [
    "RemoteTrialRun",
    "Writer",
    "child_main",
    "mode",
    "reply",
    "send_whole",
    "spawn_child",
    "stop_child",
]

FLUSH_TIMEOUT = float(os.environ.get("TUNER_MLFLOW_FLUSH_TIMEOUT", "600"))


def mode() -> str:
    """``process`` (the default) or ``inline``."""
    value = os.environ.get("TUNER_MLFLOW_WRITER", "process").strip().lower()
    return "inline" if value == "inline" else "process"


class Writer:
    """The study process's end: sends each trial run's writes to the child."""

    def __init__(self, uri: str, experiment: str, study_name: str) -> None:
        self.proc, self.conn, self._sock = spawn_child("tuner.tracking.writer_process")
        # The URI may hold a password: it travels over the pipe, never on a command line.
        # The child imports MLflow and opens the store while the study is being set up.
        self.conn.send(("init", uri, experiment, study_name))
        # A Writer dropped without close() (a study that failed to start) still lets its
        # child see the end of the pipe and exit.
        weakref.finalize(self, _close_quietly, self.conn, self._sock)
        self.run_ids: dict[int, str | None] = {}
        self.alive = True
        self.lost: list[str] = []  # why the child went away, for the study's warnings

    def send(self, *message: Any) -> bool:
        if not self.alive:
            return False
        try:
            send_whole(self.conn, message)
            return True
        except (OSError, EOFError) as e:
            self._died(f"the MLflow writer process stopped ({type(e).__name__})")
            return False

    def _died(self, why: str) -> None:
        self.alive = False
        self.lost.append(why)

    def _read(self, timeout: float) -> Any:
        try:
            if not self.conn.poll(timeout):
                return None
            reply = self.conn.recv()
        except (OSError, EOFError):
            self._died("the MLflow writer process stopped")
            return None
        if reply[0] == "run_id":
            self.run_ids[reply[1]] = reply[2]
        return reply

    def drain(self) -> None:
        """Read the replies that have arrived, without waiting (the pipe must not fill)."""
        while self.alive and self._read(0.0) is not None:
            pass

    def run_id(self, number: int, wait: float = 0.0) -> str | None:
        """The run id of trial ``number`` once the child made it (None while unknown)."""
        deadline = time.monotonic() + wait
        while number not in self.run_ids and self.alive:
            left = deadline - time.monotonic()
            if self._read(max(left, 0.0)) is None and left <= 0:
                break
        return self.run_ids.get(number)

    def flush(self) -> tuple[dict[str, str], str]:
        """Wait until the child has made every write sent so far; returns the runs it
        could not complete (label → error) and its last error."""
        if not self.send("flush"):
            return {}, ""
        deadline = time.monotonic() + FLUSH_TIMEOUT
        while self.alive and time.monotonic() < deadline:
            reply = self._read(min(5.0, max(deadline - time.monotonic(), 0.0)))
            if reply is not None and reply[0] == "flushed":
                return reply[1], reply[2]
            if self.proc.poll() is not None:
                self._died(f"the MLflow writer process exited with code {self.proc.returncode}")
        if self.alive:
            self._died(f"the MLflow writer process did not finish within {FLUSH_TIMEOUT:g} s")
        return {}, ""

    def close(self) -> None:
        if self.alive:
            self.send("close")
        self.alive = False
        stop_child(self.proc, self.conn, self._sock)


def spawn_child(module: str) -> tuple[subprocess.Popen[bytes], Connection, socket.socket]:
    """Start ``python -m module FD`` with one end of a socket pair as its pipe; returns
    the process, this end as a ``Connection``, and the socket to close with it. Secrets
    (a store's URI) travel over the pipe, never on a command line."""
    ours, theirs = socket.socketpair()
    conn = Connection(os.dup(ours.fileno()))
    fd = theirs.fileno()
    proc = subprocess.Popen([sys.executable, "-m", module, str(fd)], pass_fds=(fd,), stdin=subprocess.DEVNULL)
    theirs.close()
    return proc, conn, ours


def stop_child(proc: subprocess.Popen[bytes], conn: Connection, sock: socket.socket) -> None:
    """Wait for a child told to close (killing it after 30 s), and close its pipe."""
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    conn.close()
    sock.close()


def send_whole(conn: Connection, message: Any) -> None:
    """Send ``message``; Ctrl-C and SIGTERM wait until it is whole (half a message would
    be garbage to the child), and their handlers run right after."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        conn.send(message)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def reply(conn: Connection, message: Any) -> None:
    """A child's reply to the study process; nothing if that process is gone (the
    child goes on with what it was sent)."""
    try:
        conn.send(message)
    except (OSError, EOFError):
        pass


def child_main(argv: list[str], serve: Callable[[Connection], None]) -> None:
    """A child's entry point: ``serve`` its pipe (the FD in ``argv``) until it ends.

    A Ctrl-C reaches the whole process group; the study process handles it and closes
    this pipe when it is done, which is when the child stops: so it ignores SIGINT and
    SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(int(argv[0]))
    try:
        serve(conn)
    finally:
        conn.close()


def _close_quietly(*closables: Any) -> None:
    for c in closables:
        try:
            c.close()
        except OSError:
            pass


class RemoteTrialRun:
    """A trial's MLflow run written by the child; the objective's reporter."""

    def __init__(
        self, writer: Writer, number: int, metric: str, on_run_id: Callable[[str], None] | None = None
    ) -> None:
        self.writer = writer
        self.number = number
        self.metric = metric
        self.ended = False
        self.on_run_id = on_run_id  # records the id on the trial once it is known
        self._told = False
        # a fold's epochs, sent with its end: the child writes a run's metrics once per
        # fold anyway, and one message per fold instead of one per epoch saves the
        # training process a pickle and a pipe write per epoch
        self._epochs: list[tuple[Any, tuple[int, int]]] = []

    @property
    def run_id(self) -> str | None:
        return self.writer.run_id(self.number)

    def _tell_id(self, wait: float = 0.0) -> None:
        if self._told or self.on_run_id is None:
            return
        run_id = self.writer.run_id(self.number, wait=wait)
        if run_id:
            self._told = True
            self.on_run_id(run_id)

    def epoch(self, record: Any, step: int) -> None:
        self._epochs.append((epoch_metrics(record, step, self.metric), (record.fold, record.epoch)))
        if not self._told:
            self.writer.drain()
            self._tell_id()  # as soon as the child has made the run

    def _send_epochs(self) -> None:
        if self._epochs:
            self.writer.send("metrics", self.number, self._epochs)
            self._epochs = []

    def fold_done(self, fold: int, score: float) -> None:
        self._send_epochs()
        self.writer.send("fold_done", self.number, fold, float(score))
        self.writer.drain()
        self._tell_id()  # without waiting: by now the child has usually made the run

    def record_id(self) -> None:
        """Put the run's id on the trial now, waiting only while the child is still
        starting (MLflow's import and store take seconds): before the trial's writes are
        flushed, so that ``end`` can come after them and carry the trial's end time."""
        self._tell_id(wait=60.0)

    def end(
        self, state: str, *, value: float | None = None, attrs: Any = None, error: BaseException | None = None
    ) -> None:
        if self.ended:
            return
        self.ended = True
        ended = now_ms()
        try:
            # Waits only while the child is still starting (MLflow's import and store
            # take seconds): the id must be on the trial before Optuna closes it.
            self._tell_id(wait=60.0)
        finally:
            # The run is closed even when recording its id failed (a full disk, the
            # storage gone): that failure goes on to the study, the run is not left RUNNING.
            self._send_epochs()  # a fold cut short (pruned, diverged, interrupted) keeps its curve
            self.writer.send(
                "end",
                self.number,
                state,
                value,
                dict(attrs or {}),
                format_error(error) if error is not None and state == "failed" else None,
                ended,
            )
