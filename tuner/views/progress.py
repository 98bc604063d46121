"""Progress: a live rich bar on a terminal, one plain line per trial otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["Progress"]


class Progress:
    """Counts of complete / pruned / failed trials, the best value and elapsed time."""

    def __init__(self, total: int, done: int, metric: str, stream: TextIO | None = None,
                 live: bool | None = None) -> None:
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
                TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.description}"), TimeElapsedColumn(), transient=False,
            )
            self._task = self._bar.add_task(self._describe(), total=total, completed=done)
            self._bar.start()

    def _describe(self) -> str:
        c = self.counts
        best = "-" if self.best is None else f"{self.best:.4f}"
        return f"complete {c['complete']}  pruned {c['pruned']}  failed {c['failed']}  best {best}"

    def trial(self, number: int, state: str, value: float | None, best: float | None,
              finished: int, note: str = "") -> None:
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
            file=self.stream, flush=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
