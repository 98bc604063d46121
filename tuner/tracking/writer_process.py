"""The MLflow writer process (``python -m tuner.tracking.writer_process FD``): reads
each trial run's writes from the study process's pipe and makes them with the same
``Tracker`` code, retries and outage handling as the inline path (see
``tuner.tracking.writer`` for why a process)."""

from __future__ import annotations

import contextlib
import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor, wait
from multiprocessing.connection import Connection
from typing import Any

from tuner.tracking.tracker import Tracker
from tuner.tracking.writer import child_main, reply

__all__ = ["NICENESS", "main"]

NICENESS = 5  # added to the child's nice value: mild, so that on a busy machine it still keeps up


def _serve(conn: Connection) -> None:
    msg = conn.recv()
    _, uri, experiment, study_name = msg
    tracker = Tracker(uri, experiment, study_name)  # inline: main() set TUNER_MLFLOW_WRITER
    # The fold curves are drawn on a thread of their own: a trial's end waits for the next
    # trial's run id, and a figure being drawn here must never hold that up (a tiny trial
    # waited 2.5 s for one on a loaded CI machine). Figures are bare matplotlib Figures
    # (no pyplot state), drawn one at a time.
    drawer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fold-curves")
    drawer.submit(_warm_matplotlib)
    drawing: list[Future[None]] = []
    runs: dict[int, Any] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break  # the study process is gone: everything it sent has been written
        op = msg[0]
        if op == "start":
            _, number, params, metric, worker, tracker.parent_id, started = msg
            # the run's start and end are the trial's, not the moments this process got to them
            runs[number] = tracker.start_trial(number, params, metric, worker, started_ms=started)
            runs[number].curves_later = True
            reply(conn, ("run_id", number, runs[number].run_id))
        elif op == "metrics":  # a fold's epochs: [(rows, (fold, epoch))]
            run = runs.get(msg[1])
            if run is not None:
                for rows, at in msg[2]:
                    run.add_metrics(rows, at=at)
        elif op == "fold_done":
            run = runs.get(msg[1])
            if run is not None:
                made = run.run_id
                run.fold_done(msg[2], msg[3])
                if made is None and run.run_id is not None:  # made late, after an outage
                    reply(conn, ("run_id", msg[1], run.run_id))
        elif op == "end":
            _, number, state, value, attrs, tb, ended = msg
            run = runs.pop(number, None)
            if run is not None:
                run.end(state, value=value, attrs=attrs, traceback_text=tb, ended_ms=ended)
                drawing = [f for f in drawing if not f.done()] + [drawer.submit(run.draw_curves)]
        elif op == "flush":
            wait(drawing)  # a flush means every write sent so far has been made
            incomplete = tracker.outage.settle()
            reply(conn, ("flushed", dict(incomplete), tracker.outage.last_error))
        elif op == "close":
            break
    drawer.shutdown(wait=True)
    tracker.outage.settle()


def _warm_matplotlib() -> None:
    """Import matplotlib while the study sets up, not when the first trial ends."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.figure  # noqa: F401
    except Exception:
        pass  # the figures are drawn without it, or not at all


def main(argv: list[str]) -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # see tuner.cli
    os.environ["TUNER_MLFLOW_WRITER"] = "inline"
    # Nothing waits on this child while trials run, but each trial's end waits on the
    # storage writer's (tuner.run.write_behind), which shares the spare core with it:
    # a lower priority lets those writes go first (the trial's end waited 13 ms instead
    # of 6 while this child drew the trial's fold curves; benchmarks/overhead.py).
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    child_main(argv, _serve)


if __name__ == "__main__":
    main(sys.argv[1:])
