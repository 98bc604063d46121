"""The pre-flight warnings a diverging run was foretold by, the healthy study that must
raise no alarm, and the pre-flight warnings and diagnoses on the MLflow runs (each
diagnosis on its real runs: ``test_diagnosis_calibration``).

Data are small .npz files in tmp_path; models are tiny MLPs trained for a few epochs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.conftest import tiny_study
from tuner.config import load_config
from tuner.errors import DataError
from tuner.run.runner import run_study


def _digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    rows = np.random.default_rng(seed).permutation(len(d.target))[:n]
    return d.data[rows].astype(np.float32), d.target[rows].astype(np.int64)


def _run(
    tmp_path: Path, X: np.ndarray, y: np.ndarray, space: dict[str, Any], **over: Any
) -> tuple[dict, list[str]]:
    np.savez(tmp_path / "data.npz", X=X, y=y)
    doc = tiny_study(**{"data.source": "data.npz", "search_space": space, "mlflow.enabled": False, **over})
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(doc))
    said: list[str] = []
    summary = run_study(load_config(tmp_path / "study.yaml"), refit=False, say=said.append, live=False)
    return summary, said


def _diagnoses(summary: dict) -> list[str]:
    return [t["diagnosis"] for t in summary["diagnoses"]["trials"]]


def test_divergence_lr10_no_batchnorm_unnormalized_inputs(tmp_path: Path) -> None:
    X, y = _digits(300)
    X = X * 1000.0  # far from normalized, and data.normalize is off
    space = {"lr": 10.0, "batchnorm": "none", "width": 16, "optimizer": {"categorical": ["sgd"]}}
    summary, said = _run(tmp_path, X, y, space, **{"data.normalize": False, "budget.n_trials": 1})
    trial = summary["diagnoses"]["trials"][0]
    assert trial["diagnosis"] == "diverged", trial
    ev = trial["evidence"]
    # stopped by the guard, or (when its spikes are not consecutive) exploding in the curves
    assert ev.get("pruned_by") == "divergence" or ev["grad_max_last"] > 100 * ev["grad_max_first"]
    assert "learning rate" in trial["text"]
    # the pre-flight saw it coming, and said so
    assert any("far from normalized" in s and "normalize is OFF" in s for s in said), said


def test_healthy_study_raises_no_false_alarm(tmp_path: Path) -> None:
    X, y = _digits(600)
    X = X[:, X.min(axis=0) < X.max(axis=0)]  # blank border pixels: constant columns warn on a table
    space = {"lr": {"float": [3e-3, 1e-2], "log": True}, "width": 32, "dropout": {"float": [0.0, 0.2]}}
    summary, said = _run(
        tmp_path, X, y, space, **{"training.max_epochs": 4, "training.batch_size": 32, "budget.n_trials": 3}
    )
    assert _diagnoses(summary) == ["healthy"] * 3, summary["diagnoses"]["trials"]
    assert not summary["diagnoses"]["notes"] and not summary["diagnoses"]["remedies"]
    assert not [s for s in said if "warning" in s], said


def test_blocking_data_error_creates_nothing(tmp_path: Path) -> None:
    X, y = _digits(200)
    X[3, 5] = np.nan
    with pytest.raises(DataError, match="NaN/inf") as e:
        _run(tmp_path, X, y, {"lr": 1e-3}, **{"mlflow.enabled": True})
    assert "first rows: [3]" in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz", "study.yaml"]


def test_mlflow_gets_diagnosis_preflight_warnings_and_pr_curve(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()  # binary, features far from normalized (normalize stays on)
    rows = np.random.default_rng(0).permutation(len(d.target))[:240]
    np.savez(tmp_path / "data.npz", X=d.data[rows].astype(np.float32), y=d.target[rows])
    doc = tiny_study(
        **{"data.source": "data.npz", "search_space": {"lr": 3e-3, "width": 16}, "budget.n_trials": 1}
    )
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(doc))
    config = load_config(tmp_path / "study.yaml")
    run_study(config, say=lambda s: None, live=False)
    client = MlflowClient(config.tracking_uri)
    exp = client.get_experiment_by_name(config.experiment_name)
    runs = {r.data.tags.get("tuner.role"): r for r in client.search_runs([exp.experiment_id])}
    parent, trial, refit = runs["study"], runs["trial"], runs["refit"]
    assert parent.data.tags["tuner.preflight_warnings"].startswith("1: features are far from normalized")
    assert "preflight_warnings.txt" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert trial.data.tags["tuner.diagnosis"] in ("healthy", "underfitting")
    assert trial.data.tags["mlflow.note.content"].startswith(trial.data.tags["tuner.diagnosis"])
    # the evidence file is written for what needs explaining, not for healthy trials
    has_evidence = "diagnosis.json" in {a.path for a in client.list_artifacts(trial.info.run_id)}
    assert has_evidence == (trial.data.tags["tuner.diagnosis"] != "healthy")
    arts = {a.path for a in client.list_artifacts(refit.info.run_id)}
    assert {"precision_recall_curve.png", "precision_recall_curve.json", "confusion_matrix.png"} <= arts
    # and `tune report` shows the pre-flight warnings too, not only the run's output and MLflow
    import optuna

    from tuner.views.report import render, summarize

    summary = summarize(config, optuna.load_study(study_name=config.name, storage=config.storage_url))
    assert len(summary["preflight_warnings"]) == 1
    assert summary["preflight_warnings"][0].startswith("features are far from normalized")
    assert f"pre-flight warning: {summary['preflight_warnings'][0]}" in render(summary)


def test_non_finite_loss_at_the_first_step_points_at_the_data(tmp_path: Path) -> None:
    X, y = _digits(200)
    X = X * 1e37  # finite, but the first layer overflows float32 before any update
    space = {"lr": 1e-3, "width": 16}
    summary, _ = _run(tmp_path, X, y, space, **{"data.normalize": False, "budget.n_trials": 1})
    trial = summary["diagnoses"]["trials"][0]
    assert trial["diagnosis"] == "data_pipeline_suspect", trial
    assert "very first step" in trial["text"] and "step 0)" in trial["text"]
