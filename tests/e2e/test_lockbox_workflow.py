"""The workflow the README documents, run as a user would: a study stopped short by its
timeout, then the same command again to continue. The held-out test split stays sealed
until the budget is reached and is then scored exactly once; ``tune finish`` scores it
early on purpose and says so; ``tune status`` tells a stopped study from a running one;
without a terminal, heartbeat lines show a long trial and the refit progressing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from tuner.config import load_config
from tuner.storage.backends import build_storage
from tuner.storage.records import scorings

TUNE = [sys.executable, "-m", "tuner.cli"]
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONWARNINGS": "ignore"}
# Optuna checks the timeout before each trial and a trial here takes far longer than
# 50 ms: every run of the command does exactly one trial, then stops on the timeout.
SHORT = {"budget.timeout": 0.05, "training.max_epochs": 2}


def _tune(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TUNE, *args], cwd=cwd, env={**ENV, **env}, capture_output=True, text=True, timeout=600
    )


def _study(path: Path) -> optuna.Study:
    config = load_config(path)
    return optuna.load_study(study_name=config.name, storage=build_storage(config.storage_url, create=False))


def test_a_timeout_keeps_the_test_split_sealed_until_the_budget_then_scores_it_once(tmp_path, write_study):
    study_file = write_study(**SHORT, **{"budget.n_trials": 2})

    first = _tune("study.yaml", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    assert (
        "stopped by budget.timeout (0.05s) after 1/2 trials; run the same command to continue" in first.stdout
    )
    assert "The test split stays sealed until the budget is reached" in first.stdout
    assert "refit:" not in first.stdout and "held-out test (" not in first.stdout
    assert scorings(_study(study_file)) == []

    status = _tune("status", "study.yaml", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "stopped by budget.timeout (0.05s) at " in status.stdout
    assert "nothing is running; 1 trial(s) left of the budget" in status.stdout
    assert "held-out test: sealed until the budget is reached" in status.stdout
    assert "ETA" not in status.stdout
    data = json.loads(_tune("status", "study.yaml", "--json", cwd=tmp_path).stdout)
    assert data["state"] == "stopped" and data["stopped"]["reason"] == "budget.timeout (0.05s)"
    report = _tune("report", "study.yaml", cwd=tmp_path).stdout
    assert "held-out test: sealed until the budget is reached" in report
    raised = _tune("status", "study.yaml", "--n-trials", "5", cwd=tmp_path)  # as a run given it
    assert raised.returncode == 0 and "trials: 1/5 finished" in raised.stdout
    assert "4 trial(s) left of the budget" in raised.stdout

    # the same command again: the budget is reached, the split is scored once, for the best
    second = _tune("study.yaml", cwd=tmp_path, TUNER_PROGRESS_EVERY="0")
    assert second.returncode == 0, second.stderr
    study = _study(study_file)
    looks = scorings(study)
    assert len(looks) == 1 and looks[0]["trial_number"] == study.best_trial.number
    assert looks[0]["search_cut_short"] is False and looks[0]["trials_finished"] == 2
    # no terminal: a heartbeat inside the trial and during the refit (every epoch, here)
    assert "… trial 1: fold 1/2, epoch 1/2, " in second.stdout
    assert "… trial 1: fold 2/2, epoch 2/2, " in second.stdout
    assert f"… refit of trial #{study.best_trial.number}: epoch 2/2, " in second.stdout

    # a third run has nothing left to do and never looks at the test split again
    third = _tune("study.yaml", cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert len(scorings(_study(study_file))) == 1
    summary = json.loads(_tune("report", "study.yaml", "--json", cwd=tmp_path).stdout)
    assert summary["test"]["times_scored"] == 1 and summary["test"]["score"] == looks[0]["score"]
    assert summary["stopped"] is None
    status = _tune("status", "study.yaml", cwd=tmp_path).stdout
    assert "budget: reached" in status and "held-out test: scored 1 time(s)" in status
    _parent_run_shows_the_first_look(tmp_path, looks[0]["score"], 1)


def _parent_run_shows_the_first_look(tmp_path: Path, score: float, looks: int) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiny")
    (parent,) = client.search_runs([exp.experiment_id], filter_string="tags.`tuner.role` = 'study'")
    assert parent.data.metrics["test_balanced_accuracy"] == pytest.approx(score)
    assert parent.data.metrics["test_looks"] == looks
    assert parent.data.tags["tuner.test_looks"].startswith("look 1: trial #")
    assert parent.info.status == "FINISHED"


def test_tune_finish_scores_a_search_cut_short_and_records_it(tmp_path, write_study):
    study_file = write_study(**SHORT, **{"budget.n_trials": 3})
    assert _tune("study.yaml", cwd=tmp_path).returncode == 0

    finish = _tune("finish", "study.yaml", cwd=tmp_path)
    assert finish.returncode == 0, finish.stderr
    assert "finishing early, as asked, at 1/3 trials" in finish.stdout
    assert "note: scored by `tune finish` after 1/3 trials: the search was cut short" in finish.stdout
    (look,) = scorings(_study(study_file))
    assert look["search_cut_short"] is True and (look["trials_finished"], look["budget"]) == (1, 3)

    # finishing twice scores nothing twice: the same selection is reused
    again = _tune("finish", "study.yaml", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert len(scorings(_study(study_file))) == 1
    report = json.loads(_tune("report", "study.yaml", "--json", cwd=tmp_path).stdout)
    assert report["test"]["search_cut_short"] is True and report["test"]["times_scored"] == 1


def test_tune_finish_on_a_study_that_does_not_exist_creates_nothing(tmp_path, write_study):
    write_study()
    out = _tune("finish", "study.yaml", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "run `tune STUDY.yaml` first" in out.stderr
    assert not (tmp_path / "tiny.db").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("where", ["missing", "directory", "under_a_file", "read_only"])
def test_tune_init_where_it_cannot_write_is_one_line_and_exit_2(tmp_path, where):
    target = {
        "missing": tmp_path / "no" / "such" / "dir" / "study.yaml",
        "directory": tmp_path,
        "under_a_file": tmp_path / "a_file" / "study.yaml",
        "read_only": tmp_path / "ro" / "study.yaml",
    }[where]
    (tmp_path / "a_file").write_text("x")
    mounted = False
    if where == "read_only":
        (tmp_path / "ro").mkdir()
        if os.geteuid() != 0:
            (tmp_path / "ro").chmod(0o555)
        else:  # root writes through permission bits: a read-only mount says no to root too
            mounted = (
                subprocess.run(
                    ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(tmp_path / "ro")]
                ).returncode
                == 0
            )
            if not mounted:
                pytest.skip("cannot mount a read-only tmpfs here")
    try:
        out = _tune("init", str(target), cwd=tmp_path)
    finally:
        if mounted:
            subprocess.run(["umount", str(tmp_path / "ro")], check=True)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tune: error: ")
    expected = {
        "missing": "does not exist; create it first (mkdir -p",
        "directory": "is a folder: give a file name",
        "under_a_file": "a_file is not a folder",
        "read_only": "Read-only file system" if os.geteuid() == 0 else "Permission denied",
    }[where]
    assert expected in lines[0]
    assert not target.is_file()
