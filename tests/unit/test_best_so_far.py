"""The study's best value, looked up once per trial (tuner.run.trial.BestSoFar): the
diagnosis and the progress line agree with Optuna's ``best_value`` while the study is
read once; pruning off builds no trial view; the MLflow writer child yields the spare
core to the storage writer."""

from __future__ import annotations

import os
import time

import optuna
import pytest

from tuner.run.best import StudyBest
from tuner.run.trial import BestSoFar
from tuner.run.write_behind import BufferedTrial, WriteBehind

optuna.logging.set_verbosity(optuna.logging.WARNING)


class _Counting(StudyBest):
    def __init__(self, study: optuna.Study) -> None:
        super().__init__(study)
        self.reads = 0

    def refresh(self) -> None:
        self.reads += 1
        super().refresh()


def _run(direction: str, values: list[float | None]) -> tuple[list[float | None], list[float | None], int]:
    """Tell ``values`` (None: pruned) one by one as the search does: look up before the
    tell, bring up to date after. Returns BestSoFar's answers, Optuna's, the reads."""
    study = optuna.create_study(direction=direction)
    view = _Counting(study)
    best = BestSoFar(view)
    ours, optunas = [], []
    for value in values:
        trial = study.ask()
        best.lookup(trial.number)
        if value is None:
            ft = study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            ft = study.tell(trial, value)
        ours.append(best.after(ft))
        try:
            optunas.append(study.best_value)
        except ValueError:
            optunas.append(None)
    return ours, optunas, view.reads


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_the_best_after_each_trial_is_optunas_with_one_lookup_per_trial(direction: str) -> None:
    values = [None, 0.5, 0.3, None, 0.9, 0.1, 0.9, 0.4]
    ours, optunas, lookups = _run(direction, values)
    assert ours == optunas
    assert ours[0] is None  # nothing completed yet
    assert lookups == len(values)  # one per trial


def test_a_trial_without_a_lookup_looks_up_after() -> None:
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.7))
    best = BestSoFar(StudyBest(study))
    best.lookup(0)  # for another trial
    ft = study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # failed before its diagnosis
    assert best.after(ft) == 0.7 and best.number == ft.number


def test_a_failed_lookup_is_not_reused() -> None:
    class Down(StudyBest):
        def refresh(self) -> None:
            if self.down:
                raise ConnectionError("the database restarted")

    best = BestSoFar(view := Down(optuna.create_study()))
    view.down = False
    best.lookup(0)
    view.down = True
    with pytest.raises(ConnectionError):
        best.lookup(1)
    assert best.number is None  # trial 1's progress line looks up again


def test_the_diagnosis_uses_the_lookup_it_is_given() -> None:
    from tuner.views.curves import CurveRecorder
    from tuner.views.diagnose import record_diagnosis

    class Attrs:
        def __init__(self) -> None:
            self.user_attrs: dict = {}

        def set_user_attr(self, key: str, value: object) -> None:
            self.user_attrs[key] = value

        @property
        def study(self) -> None:
            raise AssertionError("the study's best was looked up again")

    from objectives.training import EpochRecord

    class Quiet:
        def epoch(self, record: object, step: int) -> None:
            pass

    calls = []
    recorder = CurveRecorder(Quiet())
    for epoch in range(6):
        recorder.epoch(
            EpochRecord(0, epoch, 1.0, 0.5 + epoch / 20, 1.1, 0.45 + epoch / 20, 2.0, 3.0, 0.1), epoch
        )
    trial = Attrs()
    record_diagnosis(trial, recorder, "balanced_accuracy", 0.1, lambda: calls.append(1) or 0.9)
    assert calls == [1] and "diagnosis_error" not in trial.user_attrs
    assert trial.user_attrs["diagnosis"]  # recorded, with the given best


def test_pruning_off_answers_without_reading_the_storage() -> None:
    class NoReads(optuna.storages.InMemoryStorage):
        def get_trial_system_attrs(self, trial_id: int) -> dict:
            raise AssertionError("read the storage")

    storage = NoReads()
    study = optuna.create_study(storage=storage, pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    bt = BufferedTrial(trial, storage, trial._trial_id, WriteBehind(storage, None))
    bt.report(0.1, 0)
    assert bt.should_prune() is False


def test_the_mlflow_writer_child_runs_at_a_lower_priority() -> None:
    from tuner.tracking.writer import spawn_child, stop_child
    from tuner.tracking.writer_process import NICENESS

    mine = os.getpriority(os.PRIO_PROCESS, 0)
    proc, conn, sock = spawn_child("tuner.tracking.writer_process")
    try:
        deadline = time.monotonic() + 60
        while os.getpriority(os.PRIO_PROCESS, proc.pid) == mine and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == min(mine + NICENESS, 19)
    finally:
        conn.close()  # the child stops at the end of its pipe
        sock.close()
        stop_child(proc, conn, sock)
