"""Progress without a terminal: one line per trial, and heartbeat lines inside a trial."""

from __future__ import annotations

import io
import time

import optuna
import pytest

from objectives.training import EpochRecord
from tuner.views.findings import cv_value
from tuner.views.progress import Heartbeat, Progress


def _record(fold: int, epoch: int) -> EpochRecord:
    return EpochRecord(fold, epoch, 0.5, 0.8, 0.6, 0.7, 1.0, 2.0, 0.01)


def test_heartbeat_says_at_most_once_per_interval() -> None:
    said: list[str] = []
    beat = Heartbeat(said.append, interval=0.05)
    beat("first")  # too soon after the start: nothing
    assert said == []
    time.sleep(0.06)
    beat("second")
    beat("third")  # within the interval of the last line
    assert len(said) == 1 and said[0].startswith("  … second, ") and said[0].endswith("s elapsed")


def test_a_trial_reporter_beats_when_not_live_and_forwards_everything(monkeypatch) -> None:
    monkeypatch.setenv("TUNER_PROGRESS_EVERY", "0")
    seen: list[tuple[str, object]] = []

    class Inner:
        run_id = "abc"

        def epoch(self, record: EpochRecord, step: int) -> None:
            seen.append(("epoch", step))

        def fold_done(self, fold: int, score: float) -> None:
            seen.append(("fold", fold))

    out = io.StringIO()
    progress = Progress(4, 0, "accuracy", stream=out, live=False)
    reporter = progress.reporter(7, Inner(), folds=3, epochs=5)
    reporter.epoch(_record(1, 2), 7)
    reporter.fold_done(1, 0.7)
    assert seen == [("epoch", 7), ("fold", 1)] and reporter.run_id == "abc"
    assert "… trial 7: fold 2/3, epoch 3/5, " in out.getvalue()
    # with a live bar, the reporter is the trial's own: no lines under the bar
    live = Progress(4, 0, "accuracy", stream=io.StringIO(), live=False)
    live.live = True
    inner = Inner()
    assert live.reporter(7, inner, folds=3, epochs=5) is inner


def test_a_pruned_trials_table_value_is_its_cv_mean_over_finished_folds() -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    trial.report(0.99, 13)  # its last epoch: what Optuna keeps as a pruned trial's value
    trial.set_user_attr("fold_scores", [0.90, 0.94])
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    (frozen,) = study.get_trials()
    assert frozen.value == 0.99
    assert cv_value(frozen) == {"value": pytest.approx(0.92), "folds": 2}
    complete = study.ask()
    complete.set_user_attr("fold_scores", [0.9, 0.8, 0.7])
    complete.set_user_attr("cv_mean", 0.8)
    study.tell(complete, 0.8)
    assert cv_value(study.get_trials()[1]) == {"value": 0.8, "folds": 3}
