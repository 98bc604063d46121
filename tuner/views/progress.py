"""Progress: a live rich bar on a terminal, one plain line per trial otherwise; and,
without a terminal (CI, log files, ``nohup``), a heartbeat line inside long trials and
during the refit, so that a log shows how far a long step has got."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["Heartbeat", "Progress"]


def heartbeat_interval() -> float:
    """Seconds between heartbeat lines: ``$TUNER_PROGRESS_EVERY``, 30 by default."""
    try:
        return max(0.0, float(os.environ.get("TUNER_PROGRESS_EVERY", "30")))
    except ValueError:
        return 30.0


class Heartbeat:
    """Says ``text`` at most once per interval (the first time one interval after it
    was made), with the time elapsed since then."""

    def __init__(self, say: Callable[[str], None] = print, interval: float | None = None) -> None:
        self.say = say
        self.interval = heartbeat_interval() if interval is None else interval
        self.started = self.last = time.monotonic()

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.say(f"  … {text}, {now - self.started:.0f}s elapsed")


class _BeatingReporter:
    """A trial's reporter that also beats the heartbeat at each epoch."""

    def __init__(self, inner: Any, beat: Heartbeat, number: int, folds: int, epochs: int) -> None:
        self.inner, self.beat = inner, beat
        self.number, self.folds, self.epochs = number, folds, epochs

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def epoch(self, record: Any, step: int) -> None:
        self.inner.epoch(record, step)
        self.beat(
            f"trial {self.number}: fold {record.fold + 1}/{self.folds}, epoch {record.epoch + 1}/{self.epochs}"
        )

    def fold_done(self, fold: int, score: float) -> None:
        self.inner.fold_done(fold, score)


class Progress:
    """Counts of complete / pruned / failed trials, the best value and elapsed time."""

    def __init__(
        self, total: int, done: int, metric: str, stream: TextIO | None = None, live: bool | None = None
    ) -> None:
        self.total, self.metric = total, metric
        self.counts = {"complete": 0, "pruned": 0, "failed": 0}
        self.done_before = done
        self.best: float | None = None
        self.started = time.monotonic()
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self._bar: Any = None
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]trials"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                transient=False,
            )
            self._task = self._bar.add_task(self._describe(), total=total, completed=done)
            self._bar.start()

    def _describe(self) -> str:
        c = self.counts
        best = "-" if self.best is None else f"{self.best:.4f}"
        return f"complete {c['complete']}  pruned {c['pruned']}  failed {c['failed']}  best {best}"

    def trial(
        self, number: int, state: str, value: float | None, best: float | None, finished: int, note: str = ""
    ) -> None:
        self.counts[state] = self.counts.get(state, 0) + 1
        self.best = best
        if self._bar is not None:
            self._bar.update(self._task, completed=min(finished, self.total), description=self._describe())
            return
        elapsed = time.monotonic() - self.started
        shown = "" if value is None or state != "complete" else f" {self.metric}={value:.4f}"
        best_s = "" if best is None else f" best={best:.4f}"
        extra = f" ({note})" if note else ""
        print(
            f"trial {number:3d} {state:<8}{shown}{best_s}  [{finished}/{self.total} done, "
            f"{elapsed:6.1f}s]{extra}",
            file=self.stream,
            flush=True,
        )

    def reporter(self, number: int, inner: Any, folds: int, epochs: int) -> Any:
        """``inner`` (a trial's reporter), with heartbeat lines when there is no live bar."""
        if self.live:
            return inner
        beat = Heartbeat(lambda text: print(text, file=self.stream, flush=True))
        return _BeatingReporter(inner, beat, number, folds, epochs)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
