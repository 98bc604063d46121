"""Status, study plots and the HTML report on real storages (issue #7). No training:
the studies are filled with Optuna's ask/tell, so they cost seconds."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from tests.conftest import tiny_study
from tuner.config import load_config
from tuner.views.html import render_html
from tuner.views.plots import STUDY_PLOTS, log_study_plots, study_figures
from tuner.views.report import summarize
from tuner.views.status import render_status, study_status

optuna.logging.set_verbosity(optuna.logging.WARNING)
EPOCHS = 3


def _fill(study: optuna.Study, n: int, *, prune_every: int = 3, seed: int = 0) -> None:
    """``n`` finished trials reporting fold-by-fold curves; every ``prune_every``-th is pruned."""
    import random

    rng = random.Random(seed)
    for i in range(n):
        t = study.ask()
        lr = t.suggest_float("lr", 1e-4, 1e-1, log=True)
        t.suggest_categorical("batchnorm", ["none", "after_activation"])
        t.set_user_attr("worker", "hostA:100")
        value = 0.0
        for step in range(2 * EPOCHS):
            value = 0.9 - abs(lr - 0.01) * 4 - 0.05 * rng.random()
            t.report(value, step)
            if i % prune_every == prune_every - 1 and step == EPOCHS:
                t.set_user_attr("pruned_by", "MedianPruner")
                t.set_user_attr("pruned_reason", f"MedianPruner: val {value:.4f} at step {step}")
                study.tell(t, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            t.set_user_attr("cv_mean", value)
            t.set_user_attr("cv_std", 0.01)
            study.tell(t, value)


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    doc = tiny_study(**{"name": "views", "budget.n_trials": 12, "training.max_epochs": EPOCHS})
    doc["storage"] = "sqlite:///views.db"
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _open(config) -> optuna.Study:
    from tuner.storage.backends import build_storage

    return optuna.create_study(
        study_name=config.name,
        storage=build_storage(config.storage_url),
        direction="maximize",
        load_if_exists=True,
    )


def test_status_while_workers_run_is_read_only(study_file, tmp_path):
    config = load_config(study_file)
    study = _open(config)
    _fill(study, 6)
    running = [study.ask() for _ in range(2)]  # two trials other workers are on right now
    for k, t in enumerate(running):
        t.suggest_float("lr", 1e-4, 1e-1, log=True)
        t.set_user_attr("worker", f"hostB:{200 + k}")
        t.report(0.5, 0)
    db = tmp_path / "views.db"
    before = _content(db)

    st = study_status(config, study, now=dt.datetime.now() + dt.timedelta(seconds=90))
    assert st["counts"] == {"complete": 4, "pruned": 2, "fail": 0, "running": 2, "waiting": 0}
    assert st["finished"] == 6 and st["remaining"] == 6
    assert [(r["number"], r["worker"]) for r in st["running"]] == [(6, "hostB:200"), (7, "hostB:201")]
    assert all(r["running_s"] >= 90 for r in st["running"])
    assert st["best"]["number"] == study.best_trial.number
    assert st["mean_trial_s"] is not None and st["eta_s"] is not None and st["eta_s"] >= 0
    text = render_status(st)
    assert "6/12 finished — complete 4, pruned 2, failed 0, running 2" in text
    assert re.search(r"trial #6 +on hostB:200 +for 1m3\ds, step 0 val 0\.5000", text)
    assert "ETA: ~" in text and "for 6 more trial(s)" in text

    # the command, from another process, while the two trials are still RUNNING
    out = subprocess.run(
        [sys.executable, "-m", "tuner.cli", "status", str(study_file), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["counts"]["running"] == 2 and {r["worker"] for r in data["running"]} == {
        "hostB:200",
        "hostB:201",
    }
    assert _content(db) == before  # nothing written (the file header may change, not the rows)
    assert len(study.get_trials(states=(optuna.trial.TrialState.RUNNING,))) == 2


def _content(db: Path) -> str:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return hashlib.sha256("\n".join(conn.iterdump()).encode()).hexdigest()


def test_status_of_a_study_run_past_this_files_budget(study_file):
    """A run given a larger --n-trials went (or is going) past budget.n_trials: the
    counts say so plainly, a trial still running is not called finished, and the same
    --n-trials measures against that run's budget."""
    config = load_config(study_file)  # budget.n_trials 12
    study = _open(config)
    _fill(study, 14)
    st = study_status(config, study)
    assert st["state"] == "finished" and st["remaining"] == 0
    text = render_status(st)
    assert "trials: 14 finished (budget.n_trials here: 12) — complete" in text
    assert "budget: reached" in text

    late = study.ask()  # a worker run with --n-trials 20 is on it now
    late.set_user_attr("worker", "hostB:300")
    st = study_status(config, study)
    assert st["state"] == "running"
    assert "yet trials still run: a worker was given a larger --n-trials" in render_status(st)

    raised = load_config(study_file, {"budget.n_trials": 20})
    st = study_status(raised, study)
    assert st["state"] == "running" and st["remaining"] == 6
    assert "14/20 finished" in render_status(st) and "for 6 more trial(s)" in render_status(st)


def test_status_of_an_empty_study_has_no_eta(study_file):
    config = load_config(study_file)
    st = study_status(config, _open(config))
    assert st["best"] is None and st["eta_s"] is None
    assert "ETA: unknown until a trial finishes" in render_status(st)


def test_study_figures_and_their_limits():
    study = optuna.create_study(direction="maximize")
    _fill(study, 1)
    figures, skipped = study_figures(study, "accuracy", epochs_per_fold=EPOCHS)
    assert set(figures) == {"optimization_history", "learning_curves"}
    assert "needs 5 completed" in skipped["param_importances"]
    assert "needs 2 completed" in skipped["parallel_coordinate"]

    _fill(study, 9, seed=1)
    figures, skipped = study_figures(study, "accuracy", epochs_per_fold=EPOCHS, n_pruned=2)
    assert set(figures) == set(STUDY_PLOTS) and skipped == {}
    curves = figures["learning_curves"].axes[0]
    labels = [t.get_text() for t in curves.get_legend().get_texts()]
    assert labels[0] == f"best #{study.best_trial.number}"
    assert len(labels) == 3 and all("pruned (MedianPruner)" in x for x in labels[1:])
    import matplotlib.pyplot as plt

    assert plt.rcParams["axes.facecolor"] == "white"  # Optuna's ggplot style did not leak out


def test_plots_land_on_the_parent_run(tmp_path):
    from tuner.tracking.tracker import Tracker

    study = optuna.create_study(direction="maximize")
    _fill(study, 7)
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db", "views", "views")
    parent = tracker.open_parent(None, {"seed": 0}, {})
    config = load_config_from(tmp_path)
    logged = log_study_plots(tracker, study, config)
    assert logged == [f"plots/{n}.png" for n in STUDY_PLOTS]
    listed = {Path(a.path).name for a in tracker.client.list_artifacts(parent, "plots")}
    assert listed == {f"{n}.png" for n in STUDY_PLOTS}
    png = Path(tracker.client.download_artifacts(parent, "plots/learning_curves.png", str(tmp_path)))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not tracker.warnings


def load_config_from(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(tiny_study(**{"name": "views", "training.max_epochs": EPOCHS})))
    return load_config(path)


def test_html_report_is_self_contained(study_file):
    config = load_config(study_file)
    study = _open(config)
    _fill(study, 8)
    t = study.ask()
    t.suggest_float("lr", 1e-4, 1e-1, log=True)
    t.set_user_attr("diagnosis", "overfitting")
    t.set_user_attr("diagnosis_text", "overfitting: train <b>0.99</b>, validation 0.60")
    t.set_user_attr("diagnosis_evidence", {"rule": "train - val > 0.2"})
    study.tell(t, 0.6)
    page = render_html(config, study, summarize(config, study))
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == len(STUDY_PLOTS)
    assert all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    # nothing to fetch: no external scripts, styles, images or links
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", page) and "<script" not in page
    assert "<h2>Summary</h2>" in page and "<h2>Diagnoses</h2>" in page and "<h2>Trials</h2>" in page
    assert "train &lt;b&gt;0.99&lt;/b&gt;" in page  # user text is escaped
    assert f"#{study.best_trial.number}: cross-validated balanced_accuracy" in page
