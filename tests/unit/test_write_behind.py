"""A trial's reports and attributes written behind the training process
(tuner.run.write_behind): all of them, in order, before flush returns; the pruning
decision from memory; what the child could not write is written here."""

from __future__ import annotations

import optuna
import pytest

from tuner.run.write_behind import BufferedTrial, WriteBehind

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _trial(pruner: optuna.pruners.BasePruner, storage):
    study = optuna.create_study(storage=storage, pruner=pruner, direction="maximize")
    trial = study.ask()
    study_id = storage.get_study_id_from_name(study.study_name)
    return study, trial, storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)


def test_the_child_writes_everything_by_flush_and_pruning_reads_memory(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    storage = optuna.storages.RDBStorage(url)
    study, trial, tid = _trial(optuna.pruners.ThresholdPruner(lower=0.5), storage)
    writes = WriteBehind(storage, url, mode="process")
    assert writes.alive
    bt = BufferedTrial(trial, storage, tid, writes)
    bt.report(0.9, 0)
    bt.report(0.2, 1)
    bt.report(0.7, 1)  # a step reported twice keeps its first value, as Optuna does
    bt.set_user_attr("fold_scores", [0.9])
    assert bt.should_prune()  # 0.2 < 0.5, decided from the values in memory
    assert bt.user_attrs["fold_scores"] == [0.9] and bt.intermediate_values == {0: 0.9, 1: 0.2}
    bt.flush()
    stored = storage.get_trial(tid)
    assert stored.intermediate_values == {0: 0.9, 1: 0.2}
    assert stored.user_attrs == {"fold_scores": [0.9]}
    assert bt.number == trial.number and bt.study is study  # the rest is the trial's own
    writes.close()
    assert writes.proc.returncode == 0


def test_successive_halving_sees_its_rungs_through_the_view():
    storage = optuna.storages.InMemoryStorage()
    study, trial, tid = _trial(optuna.pruners.SuccessiveHalvingPruner(min_resource=1), storage)
    writes = WriteBehind(storage, None)  # no URL: written at once, here
    bt = BufferedTrial(trial, storage, tid, writes)
    bt.report(0.8, 0)
    bt.report(0.8, 1)
    assert bt.should_prune() is False  # alone in its rung
    # the pruner wrote its rung to the storage, and the next view reads it back
    assert any(k.startswith("completed_rung") for k in storage.get_trial_system_attrs(tid))


def test_writes_the_child_cannot_make_are_made_here_in_order(tmp_path):
    storage = optuna.storages.InMemoryStorage()
    study, trial, tid = _trial(optuna.pruners.NopPruner(), storage)
    # the child cannot open this storage, so it hands every write back at the flush
    writes = WriteBehind(storage, f"sqlite:///{tmp_path / 'missing' / 'x.db'}", mode="process")
    bt = BufferedTrial(trial, storage, tid, writes)
    for step in range(5):
        bt.report(step / 10, step)
    bt.set_user_attr("a", 1)
    bt.set_user_attr("a", 2)
    bt.flush()
    stored = storage.get_trial(tid)
    assert stored.intermediate_values == {s: s / 10 for s in range(5)}
    assert stored.user_attrs == {"a": 2}  # in order: the last write wins
    writes.close()


def test_a_dead_child_loses_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    storage = optuna.storages.RDBStorage(url)
    study, trial, tid = _trial(optuna.pruners.NopPruner(), storage)
    writes = WriteBehind(storage, url, mode="process")
    bt = BufferedTrial(trial, storage, tid, writes)
    bt.report(0.1, 0)
    writes.proc.kill()
    writes.proc.wait()
    for step in range(1, 4):
        bt.report(0.1 * (step + 1), step)
    bt.set_user_attr("cv_mean", 0.4)
    bt.flush()
    stored = storage.get_trial(tid)
    assert sorted(stored.intermediate_values) == [0, 1, 2, 3]
    assert stored.user_attrs == {"cv_mean": 0.4}
    assert not writes.alive


class _Flaky:
    """A storage whose user-attribute writes fail while ``down`` is set."""

    def __init__(self, inner) -> None:
        self.inner, self.down, self.calls = inner, False, []

    def set_trial_user_attr(self, trial_id, key, value):
        if self.down:
            raise ConnectionError("database is down")
        self.calls.append(key)
        self.inner.set_trial_user_attr(trial_id, key, value)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_inline_a_refused_write_raises_at_once_like_optunas_own():
    inner = optuna.storages.InMemoryStorage()
    study, trial, tid = _trial(optuna.pruners.NopPruner(), inner)
    flaky = _Flaky(inner)
    writes = WriteBehind(flaky, None)
    bt = BufferedTrial(trial, flaky, tid, writes)
    bt.set_user_attr("a", 1)
    flaky.down = True
    with pytest.raises(ConnectionError):
        bt.set_user_attr("b", 2)
    flaky.down = False
    bt.set_user_attr("c", 3)  # nothing was queued: the next write is made, as with Optuna
    bt.flush()
    assert inner.get_trial(tid).user_attrs == {"a": 1, "c": 3}
    assert flaky.calls == ["a", "c"]


def test_a_write_the_child_failed_is_retried_here_with_all_after_it(tmp_path):
    inner = optuna.storages.InMemoryStorage()
    study, trial, tid = _trial(optuna.pruners.NopPruner(), inner)
    flaky = _Flaky(inner)
    # the child cannot open this storage: every write comes back to be made here
    writes = WriteBehind(flaky, f"sqlite:///{tmp_path / 'missing' / 'x.db'}", mode="process")
    bt = BufferedTrial(trial, flaky, tid, writes)
    bt.set_user_attr("a", 1)
    bt.set_user_attr("b", 2)
    flaky.down = True
    with pytest.raises(ConnectionError):
        bt.flush()  # the caller's storage-failure handling sees it
    assert inner.get_trial(tid).user_attrs == {}
    flaky.down = False
    bt.flush()  # kept, in order, for the next flush (``abandon`` makes one)
    assert inner.get_trial(tid).user_attrs == {"a": 1, "b": 2}
    assert flaky.calls == ["a", "b"]
    writes.close()


def test_inline_when_torch_takes_every_core_and_writes_at_once(tmp_path, monkeypatch):
    from tuner.run.write_behind import write_mode

    monkeypatch.delenv("TUNER_STORAGE_WRITER", raising=False)
    assert write_mode(threads=2, cores=2) == "inline"
    assert write_mode(threads=4, cores=2) == "inline"
    url = f"sqlite:///{tmp_path / 's.db'}"
    storage = optuna.storages.RDBStorage(url)
    study, trial, tid = _trial(optuna.pruners.NopPruner(), storage)
    writes = WriteBehind(storage, url, mode="inline")
    assert not writes.alive  # no child
    bt = BufferedTrial(trial, storage, tid, writes)
    bt.report(0.5, 0)
    bt.set_user_attr("k", "v")
    stored = storage.get_trial(tid)
    assert stored.intermediate_values == {0: 0.5} and stored.user_attrs == {"k": "v"}


def test_the_child_when_a_core_is_spare_and_the_variable_decides(monkeypatch):
    from tuner.run.write_behind import write_mode

    monkeypatch.delenv("TUNER_STORAGE_WRITER", raising=False)
    assert write_mode(threads=1, cores=2) == "process"
    assert write_mode(threads=7, cores=8) == "process"
    monkeypatch.setenv("TUNER_STORAGE_WRITER", "inline")
    assert write_mode(threads=1, cores=2) == "inline"
    monkeypatch.setenv("TUNER_STORAGE_WRITER", "process")
    assert write_mode(threads=2, cores=2) == "process"


def test_reports_go_to_the_child_in_batches_and_attributes_at_once(tmp_path):
    from tuner.run import write_behind

    url = f"sqlite:///{tmp_path / 's.db'}"
    storage = optuna.storages.RDBStorage(url)
    study, trial, tid = _trial(optuna.pruners.NopPruner(), storage)
    writes = WriteBehind(storage, url, mode="process")
    sent: list = []
    send = writes._send
    writes._send = lambda message: sent.append(message) or send(message)  # type: ignore[method-assign]
    bt = BufferedTrial(trial, storage, tid, writes)
    for step in range(write_behind.BATCH - 1):
        bt.report(step / 100, step)
    assert sent == []  # held: nothing reads a running trial's reports
    bt.set_user_attr("worker", "w")  # an attribute goes at once, after the reports before it
    assert len(sent) == 1 and [w[0] for w in sent[0][1]][-1] == "set_trial_user_attr"
    for step in range(write_behind.BATCH - 1, 2 * write_behind.BATCH - 1):
        bt.report(step / 100, step)
    assert len(sent) == 2 and len(sent[1][1]) == write_behind.BATCH
    bt.report(0.5, 99)
    bt.flush()
    stored = storage.get_trial(tid)
    assert sorted(stored.intermediate_values) == [*range(2 * write_behind.BATCH - 1), 99]
    assert stored.user_attrs == {"worker": "w"}
    writes.close()
