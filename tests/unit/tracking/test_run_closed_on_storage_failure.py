"""A trial's MLflow run is closed even when recording its id on the trial fails (the
study storage full or gone): the failure goes on to the study, the run is not left
RUNNING (it was, on a disk that filled mid-study: 1 run in ~4 there)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tuner.tracking.writer import RemoteTrialRun


def _full_disk(run_id: str) -> None:
    raise OSError("database or disk is full")


class _Writer:
    """The study process's end of the MLflow writer, as a trial run sees it."""

    alive = True

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...]] = []

    def run_id(self, number: int, wait: float = 0.0) -> str:
        return "r1"

    def send(self, *message: Any) -> bool:
        self.sent.append(message)
        return True

    def drain(self) -> None:
        pass


def test_the_writer_process_closes_the_run_when_its_id_cannot_be_recorded() -> None:
    writer = _Writer()
    run = RemoteTrialRun(writer, 3, "accuracy", on_run_id=_full_disk)  # type: ignore[arg-type]
    with pytest.raises(OSError, match="disk is full"):
        run.end("failed", error=RuntimeError("the report failed"))
    assert [m[0] for m in writer.sent] == ["end"] and writer.sent[0][1:3] == (3, "failed")


def test_an_inline_run_is_closed_when_its_id_cannot_be_recorded(tmp_path: Path) -> None:
    from tuner.tracking.tracker import Tracker

    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db", "t", "t")
    tracker.writer_mode = "inline"
    tracker.open_parent(None, {}, {})
    with pytest.raises(OSError, match="disk is full"):
        tracker.start_trial(3, {"lr": 0.1}, "accuracy", "here:1", on_run_id=_full_disk)
    exp = tracker.client.get_experiment_by_name("t")
    runs = tracker.client.search_runs([exp.experiment_id], "tags.`tuner.role` = 'trial'")
    assert [r.info.status for r in runs] == ["FAILED"]
