"""Ctrl-C at every phase boundary of a study (issue #19).

A real SIGINT, sent by the process to itself at a chosen point (before the study
exists, just after it is created, between trials, mid-trial, during the refit),
reaches tuner's real handlers. Each case asserts: exit 130, no traceback, nothing
RUNNING in Optuna or MLflow, and a re-run that completes the exact budget with the
held-out test split scored once.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import tiny_study
from tuner.cli import main
from tuner.storage.records import scorings

BUDGET = 3


def _ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def _once(fn: Any, when: Any = lambda *a, **k: True) -> Any:
    """``fn`` that presses Ctrl-C the first time ``when(*args)`` holds, then calls on."""
    fired = {"done": False}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not fired["done"] and when(*args, **kwargs):
            fired["done"] = True
            _ctrl_c()
        return fn(*args, **kwargs)

    return wrapper


def _before_the_study_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    import tuner.run.runner as runner

    monkeypatch.setattr(runner, "prepare", _once(runner.prepare))


def _after_it_is_created(monkeypatch: pytest.MonkeyPatch) -> None:
    import tuner.run.runner as runner

    monkeypatch.setattr(runner, "_log_preflight", _once(runner._log_preflight))


def _between_trials(monkeypatch: pytest.MonkeyPatch) -> None:
    from tuner.run.trial import AfterTrial

    monkeypatch.setattr(AfterTrial, "__call__", _once(AfterTrial.__call__))


def _mid_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    from objectives.cv import CrossValidatedObjective

    # In the second trial's training, once the first trial is complete.
    monkeypatch.setattr(
        CrossValidatedObjective,
        "__call__",
        _once(CrossValidatedObjective.__call__, lambda self, trial, *a: trial.number == 1),
    )


def _during_the_refit(monkeypatch: pytest.MonkeyPatch) -> None:
    import tuner.run.lockbox as lockbox

    monkeypatch.setattr(lockbox, "_refit_and_score", _once(lockbox._refit_and_score))


PHASES = {
    "before the study exists": _before_the_study_exists,
    "after it is created": _after_it_is_created,
    "between trials": _between_trials,
    "mid-trial": _mid_trial,
    "during the refit": _during_the_refit,
}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TUNER_STORAGE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("TUNER_MLFLOW_WRITER", "inline")  # the writer process is tested elsewhere
    monkeypatch.chdir(tmp_path)


def _runs(tmp_path: Path) -> list[Any]:
    if not (tmp_path / "mlflow.db").exists():
        return []
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exps = client.search_experiments()
    return client.search_runs([e.experiment_id for e in exps], max_results=1000)


def _study(tmp_path: Path) -> optuna.Study | None:
    if not (tmp_path / "tiny.db").exists():
        return None
    try:
        return optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'tiny.db'}")
    except KeyError:  # the storage exists, the study does not
        return None


@pytest.mark.parametrize("phase", list(PHASES))
def test_ctrl_c_leaves_nothing_running_and_the_rerun_completes_the_budget(
    phase: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "study.yaml").write_text(
        yaml.safe_dump(tiny_study(**{"budget.n_trials": BUDGET, "training.max_epochs": 2}))
    )
    with monkeypatch.context() as m:
        PHASES[phase](m)
        code = main(["study.yaml"])
    out, err = capsys.readouterr()
    assert code == 130, (phase, out[-2000:], err[-2000:])
    assert "Traceback" not in out + err
    assert "tune: interrupted" in err
    study = _study(tmp_path)
    if phase == "before the study exists":
        assert study is None and _runs(tmp_path) == []
        assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]  # nothing made
    else:
        assert study is not None
        assert study.get_trials(states=(optuna.trial.TrialState.RUNNING,)) == []
        assert [r.info.run_name for r in _runs(tmp_path) if r.info.status == "RUNNING"] == []
        parents = [r for r in _runs(tmp_path) if r.data.tags.get("tuner.role") == "study"]
        assert [r.info.status for r in parents] == ["KILLED"]
        assert "run the same command to resume" in out
        assert scorings(study) == []  # the interrupt never scored the test split

    assert main(["study.yaml"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    study = _study(tmp_path)
    assert study is not None
    finished = study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    assert len(finished) == BUDGET  # exact, whatever the interrupt cut short
    assert study.get_trials(states=(optuna.trial.TrialState.RUNNING,)) == []
    assert len(scorings(study)) == 1
    runs = _runs(tmp_path)
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    assert [r.info.status for r in runs if r.data.tags.get("tuner.role") == "study"] == ["FINISHED"]
