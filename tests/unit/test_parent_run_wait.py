"""A worker joining a study waits for its creator's MLflow parent run only while the
creator may still be opening it (tuner.run.study.shared_parent_run)."""

from __future__ import annotations

import time

import optuna
import pytest

from tuner.run import study as study_mod

optuna.logging.set_verbosity(optuna.logging.WARNING)


class _Tracker:
    enabled = True
    experiment_id = "1"

    def __init__(self) -> None:
        self.opened: list[str | None] = []

    def open_parent(self, existing: str | None, params: dict, tags: dict) -> str:
        self.opened.append(existing)
        return existing or "new-parent"


def _study(created_at: str | None, trials: int) -> optuna.Study:
    study = optuna.create_study()
    if created_at is not None:
        study.set_user_attr("tuner_created_at", created_at)
    for _ in range(trials):
        study.add_trial(optuna.trial.create_trial(value=0.5))
    return study


def _stamp(seconds_ago: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(time.time() - seconds_ago))


@pytest.mark.parametrize(
    ("created_at", "trials"),
    [(_stamp(5), 3), (_stamp(3600), 0)],
    ids=["the study has trials", "created an hour ago"],
)
def test_no_wait_when_the_creator_is_done_or_gone(created_at: str, trials: int) -> None:
    study, tracker = _study(created_at, trials), _Tracker()
    start = time.monotonic()
    parent = study_mod.shared_parent_run(study, tracker, False, {}, {}, timeout=5.0)
    assert time.monotonic() - start < 2.0
    assert parent == "new-parent" and study.user_attrs["tuner_mlflow_parent_run_id"] == "new-parent"


def test_a_young_empty_study_waits_for_its_creator() -> None:
    study, tracker = _study(_stamp(1), 0), _Tracker()
    start = time.monotonic()
    study_mod.shared_parent_run(study, tracker, False, {}, {}, timeout=1.0)
    assert time.monotonic() - start >= 1.0  # waited, then opened its own
    study.set_user_attr("tuner_mlflow_parent_run_id", "the-creators")
    assert study_mod.shared_parent_run(study, _Tracker(), False, {}, {}, timeout=1.0) == "the-creators"
