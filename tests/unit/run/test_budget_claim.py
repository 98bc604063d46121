"""A trial's budget claim answered from the count that let it start, without a second
query, exactly when no other worker could have changed what it counted
(tuner.run.budget.Budget.claim)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

import tuner.run.budget as budget_module
from tuner.run.budget import Budget
from tuner.storage.backends import build_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def sqlite_study(tmp_path: Path) -> tuple[optuna.Study, object]:
    storage = build_storage(f"sqlite:///{tmp_path / 'b.db'}")
    return optuna.create_study(study_name="b", storage=storage, direction="maximize"), storage


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """The ``below`` of each counting query claim makes."""
    seen: list[int | None] = []
    real = budget_module.budget_counts

    def counting(study: object, storage: object = None, below: int | None = None) -> tuple[int, int]:
        seen.append(below)
        return real(study, storage, below)

    monkeypatch.setattr(budget_module, "budget_counts", counting)
    return seen


def test_the_count_that_let_the_trial_start_answers_its_claim(sqlite_study, queries) -> None:
    study, storage = sqlite_study
    study.tell(study.ask(), 0.5)
    budget = Budget(study, storage, 3, tracker=None)
    assert budget.wait_for_slot(counts=budget.counts())
    trial = study.ask()
    assert budget.claim(trial.number) and queries == []
    assert budget.claim(trial.number) and queries == [1]  # a count answers one claim only


def test_a_trial_created_elsewhere_since_the_count_is_queried(sqlite_study, queries) -> None:
    study, storage = sqlite_study
    budget = Budget(study, storage, 1, tracker=None)
    other = Budget(study, storage, 1, tracker=None)
    assert budget.wait_for_slot(counts=budget.counts())
    assert other.wait_for_slot(counts=other.counts())  # both saw the one slot free
    first, second = study.ask(), study.ask()
    assert budget.claim(first.number) and queries == []
    assert other.claim(second.number) is False and queries == [1]  # surplus


def test_a_waiting_trial_at_the_count_is_queried(sqlite_study, queries) -> None:
    """Another worker may resume the waiting trial after the count; the trials numbered
    below this one then hold one more running trial than counted."""
    study, storage = sqlite_study
    study.enqueue_trial({})
    budget = Budget(study, storage, 1, tracker=None)
    assert budget.wait_for_slot(counts=budget.counts())  # 0 finished or running: a slot
    resumed = study.ask()  # by another worker
    trial = study.ask()
    assert resumed.number == 0 and trial.number == 1
    assert budget.claim(trial.number) is False and queries == [1]
