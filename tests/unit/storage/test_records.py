"""What tuner records on a study: the stop record, and which stop it describes."""

from __future__ import annotations

import optuna

from tuner.storage.records import STOPPED_ATTR, record_stop, stopped


def test_a_stop_is_recorded_with_why_when_and_how_far() -> None:
    study = optuna.create_study()
    record_stop(study, "budget.timeout (20m)", 11, 30)
    record = stopped(study, 11)
    assert record is not None
    assert (record["reason"], record["finished"], record["budget"]) == ("budget.timeout (20m)", 11, 30)
    assert record["at"] and record["host"]


def test_a_stale_stop_record_is_not_shown_for_a_later_state() -> None:
    # trials finished after the recorded stop (say, a later run was SIGKILLed and said
    # nothing): the old reason does not describe the study as it is now
    study = optuna.create_study()
    record_stop(study, "an interrupt (Ctrl-C or SIGTERM)", 3, 30)
    assert stopped(study, 5) is None
    assert stopped(optuna.create_study(), 0) is None


def test_recording_a_stop_never_raises_when_the_storage_fails() -> None:
    class Broken:
        def set_user_attr(self, key: str, value: object) -> None:
            raise RuntimeError("database is gone")

    record_stop(Broken(), "budget.timeout (1m)", 1, 2)  # no exception: the study is stopping
    assert STOPPED_ATTR == "tuner_stopped"
