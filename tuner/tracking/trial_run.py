"""The MLflow child run of one trial, written in this process: metrics batched per
fold, the final state, tags and description in one last batch, every write retried
through the tracker's ``Outage``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from tuner.tracking.fold_curves import FILE as CURVES_FILE
from tuner.tracking.fold_curves import FoldCurves
from tuner.tracking.outage import Outage
from tuner.tracking.rows import MAX_BATCH, epoch_metrics, format_error, now_ms

__all__ = ["TrialRun"]


class RunOwner(Protocol):
    """What a trial run needs of its tracker: the MLflow client and the outage handling."""

    client: Any
    outage: Outage


class TrialRun:
    """The MLflow child run of one trial; implements the objective's reporter."""

    def __init__(
        self,
        tracker: RunOwner,
        run_id: str | None,
        number: int,
        metric: str,
        create: Callable[[], str] | None = None,
    ) -> None:
        self.tracker = tracker
        self.run_id = run_id
        self.number = number
        self.metric = metric
        self._create = create  # makes the run later when MLflow was down at the start
        self._pending: list[Any] = []
        self._params: list[Any] = []  # sent with the first batch: one MLflow call fewer
        self.curves = FoldCurves(metric)  # drawn as fold_curves.png when the run closes
        # the writer process draws it on a thread of its own instead (draw_curves), so that
        # drawing never holds up the next trial's run
        self.curves_later = False
        self._state = ""
        self.ended = False

    # -- TrialReporter ----------------------------------------------------------------
    def epoch(self, record: Any, step: int) -> None:
        self.add_metrics(epoch_metrics(record, step, self.metric), at=(record.fold, record.epoch))

    def add_metrics(self, rows: list[tuple[str, float, int, int]], at: tuple[int, int] | None = None) -> None:
        """Queue one epoch's rows; ``at`` = (fold, epoch) places them in the fold curves."""
        from mlflow.entities import Metric

        self._pending.extend(Metric(k, v, ts, st) for k, v, ts, st in rows)
        if at is not None:
            self.curves.add(at[0], at[1], rows)

    def fold_done(self, fold: int, score: float) -> None:
        from mlflow.entities import Metric

        self._pending.append(Metric(f"fold_{self.metric}", float(score), now_ms(), fold))
        self.flush()

    # -- lifecycle ----------------------------------------------------------------------
    def flush(self) -> None:
        """Send the pending metrics; while MLflow is down they wait for the next try."""
        self.tracker.outage.call(self._send)

    def _send(self) -> None:
        if self.run_id is None and self._create is not None:
            self.run_id = self._create()
        if self._params:
            self.tracker.client.log_batch(self.run_id, metrics=self._pending[:MAX_BATCH], params=self._params)
            del self._pending[:MAX_BATCH]
            self._params = []
        while self._pending:
            batch = self._pending[:MAX_BATCH]
            self.tracker.client.log_batch(self.run_id, metrics=batch)
            del self._pending[: len(batch)]  # only once they are written

    def record_id(self) -> None:
        """Nothing to do: an inline run's id is on the trial from its start."""

    def end(
        self,
        state: str,
        *,
        value: float | None = None,
        attrs: Mapping[str, Any] | None = None,
        error: BaseException | None = None,
        traceback_text: str | None = None,
        ended_ms: int | None = None,
    ) -> None:
        """Close the run in a final state: complete → FINISHED, pruned → FINISHED
        with the reason as a tag, failed → FAILED with the traceback, interrupted → KILLED."""
        if self.ended:
            return
        self.ended = True
        from mlflow.entities import RunTag

        client = self.tracker.client
        attrs = dict(attrs or {})
        metrics, tags = _final_metrics(self.metric, value, attrs), [RunTag("tuner.state", state)]
        for key in ("pruned_reason", "pruned_by", "diagnosis"):
            if attrs.get(key):
                tags.append(RunTag(f"tuner.{key}", str(attrs[key])[:5000]))
        # the run's description in the MLflow UI: why it was pruned in full (the tag
        # column truncates it), then the diagnosis
        note = [
            f"**{state}**: {attrs['pruned_reason']}" if attrs.get("pruned_reason") else "",
            str(attrs.get("diagnosis_text") or ""),
        ]
        if any(note):
            tags.append(RunTag("mlflow.note.content", "\n\n".join(n for n in note if n)[:5000]))
        tb = traceback_text
        if error is not None and state == "failed":
            tb = format_error(error)
        status = {"failed": "FAILED", "interrupted": "KILLED"}.get(state, "FINISHED")

        # the run's final name rides in the last batch (the store renames the run from
        # the mlflow.runName tag): one MLflow call fewer per trial than update_run
        tags.append(RunTag("mlflow.runName", f"trial-{self.number:03d} {state}"))
        self._state = state

        def close() -> None:  # every step may be repeated after an outage
            self._send()
            client.log_batch(self.run_id, metrics=metrics, tags=tags)
            # a healthy trial's evidence is in its tags and description already
            if attrs.get("diagnosis_evidence") and attrs.get("diagnosis") != "healthy":
                client.log_dict(
                    self.run_id,
                    {
                        "diagnosis": attrs.get("diagnosis"),
                        "text": attrs.get("diagnosis_text"),
                        "evidence": attrs["diagnosis_evidence"],
                    },
                    "diagnosis.json",
                )
            if tb is not None:
                client.log_text(self.run_id, tb, "traceback.txt")
            if not self.curves_later:
                self._log_curves()
            client.set_terminated(self.run_id, status=status, end_time=ended_ms)

        ok, _ = self.tracker.outage.call(close)
        if not ok:  # tracking must never lose a trial: retried when the study ends
            self.tracker.outage.defer(f"trial {self.number}", close)

    def draw_curves(self) -> None:
        """The fold curves of a closed run (``curves_later``), retried after an outage."""
        if self.run_id is None or not self.curves:
            return
        ok, _ = self.tracker.outage.call(self._log_curves)
        if not ok:
            self.tracker.outage.defer(f"trial {self.number} (fold curves)", self._log_curves)

    def _log_curves(self) -> None:
        """The folds' curves overlaid, one PNG; a figure that fails to draw costs the run
        nothing else."""
        if not self.curves:
            return
        try:
            png = self.curves.png(f"trial-{self.number:03d} {self._state}: folds overlaid")
        except Exception:
            return
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / CURVES_FILE
            path.write_bytes(png)
            self.tracker.client.log_artifact(self.run_id, str(path))


def _final_metrics(metric: str, value: float | None, attrs: Mapping[str, Any]) -> list[Any]:
    """A trial run's last metrics: its score (a pruned trial's over the folds it finished,
    so every row has one), how far it got and what it cost."""
    from mlflow.entities import Metric

    metrics, ts = [], now_ms()
    folds = [float(v) for v in attrs.get("fold_scores") or [] if math.isfinite(v)]
    if value is not None and math.isfinite(value):
        metrics.append(Metric(f"cv_{metric}", float(value), ts, 0))
    elif folds:
        metrics.append(Metric(f"cv_{metric}", sum(folds) / len(folds), ts, 0))
    metrics.append(Metric("cv_folds_done", float(len(folds)), ts, 0))
    for key in ("cv_mean", "cv_std"):
        if isinstance(attrs.get(key), float) and math.isfinite(attrs[key]):
            metrics.append(Metric(key, attrs[key], ts, 0))
    if isinstance(attrs.get("epochs_trained"), int):
        metrics.append(Metric("epochs_trained", float(attrs["epochs_trained"]), ts, 0))
    if attrs.get("fold_epochs"):
        stopped = sum(bool(f.get("stopped")) for f in attrs["fold_epochs"])
        metrics.append(Metric("folds_stopped_early", float(stopped), ts, 0))
    return metrics
