"""Real 3-trial regression studies, on sklearn:diabetes and on a CSV with a numeric
target: SQLite storage, MLflow SQLite store, curves, the refit's plots, the test score
scored once in the user's units, the exported model, resume."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import regression_study, with_overrides
from tuner.config import load_config
from tuner.run.runner import run_study
from tuner.storage.records import LOCKBOX_ATTR

SPACE = {
    "lr": {"float": [3e-3, 3e-2], "log": True},
    "dropout": {"float": [0.0, 0.3]},
    "batchnorm": {"categorical": ["none", "before_activation", "after_activation"]},
    "loss": {"categorical": ["mse", "huber", "mae"]},
    "width": {"fixed": 16},
}


def _doc(**overrides):
    doc = regression_study(
        **{
            "name": "reg",
            "training.max_epochs": 3,
            "training.batch_size": 32,
            "search_space": SPACE,
            "mlflow.log_model": True,
        }
    )
    return with_overrides(doc, overrides)


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("regression")
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(_doc()))
    cfg = load_config(path)
    lines: list[str] = []
    summary = run_study(cfg, say=lines.append, live=False)
    return cfg, summary, lines


def _study(cfg):
    return optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)


def test_trials_report_finite_rmse_in_the_targets_units(diabetes):
    cfg, summary, _ = diabetes
    study = _study(cfg)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert study.metric_names == ["cv_rmse"]
    trials = study.get_trials()
    assert len(trials) == 3 and summary["counts"]["complete"] == 3
    for t in trials:
        assert len(t.user_attrs["fold_scores"]) == 2
        assert sorted(t.intermediate_values) == [0, 1, 2, 3, 4, 5]
        # diabetes' target spans 25..346 with sd 77: an RMSE in its units, not standardized
        assert all(30 < v < 200 and math.isfinite(v) for v in t.intermediate_values.values())
        assert t.params["loss"] in ("mse", "huber", "mae")


def test_the_test_split_is_scored_once_with_every_regression_metric(diabetes):
    cfg, summary, _ = diabetes
    study = _study(cfg)
    (entry,) = study.user_attrs[LOCKBOX_ATTR]
    assert entry["task"] == "regression" and entry["n_test"] == 89
    assert set(entry["metrics"]) == {"rmse", "mae", "r2", "mape"}
    assert entry["score"] == entry["metrics"]["rmse"] and 30 < entry["score"] < 120
    assert entry["metrics"]["mae"] < entry["metrics"]["rmse"]
    worst = entry["largest_errors"]
    assert len(worst) == 10 and abs(worst[0]["error"]) >= abs(worst[-1]["error"])
    assert worst[0]["error"] == pytest.approx(worst[0]["actual"] - worst[0]["predicted"])
    assert "per_class_recall" not in entry and "confusion_matrix" not in summary["test"]
    assert summary["test"]["score"] == entry["score"]


def test_mlflow_runs_curves_and_the_refits_plots(diabetes):
    cfg, _, _ = diabetes
    study = _study(cfg)
    client = MlflowClient(cfg.tracking_uri)
    exp = client.get_experiment_by_name(cfg.experiment_name)
    runs = client.search_runs([exp.experiment_id])
    by_role: dict[str, list] = {}
    for r in runs:
        by_role.setdefault(r.data.tags.get("tuner.role"), []).append(r)
    assert len(by_role["study"]) == 1 and len(by_role["trial"]) == 3
    for r in by_role["trial"]:
        assert [m.step for m in client.get_metric_history(r.info.run_id, "val_rmse")] == list(range(6))
        assert len(client.get_metric_history(r.info.run_id, "train_rmse")) == 6
        assert "cv_rmse" in r.data.metrics and r.data.params["loss"] in ("mse", "huber", "mae")
    (refit,) = by_role["refit"]
    entry = study.user_attrs[LOCKBOX_ATTR][0]
    assert refit.data.metrics["test_rmse"] == pytest.approx(entry["score"])
    assert refit.data.metrics["test_r2"] == pytest.approx(entry["metrics"]["r2"])
    artifacts = {a.path for a in client.list_artifacts(refit.info.run_id)}
    assert {
        "predicted_vs_actual.png",
        "residuals.png",
        "test_predictions.csv",
        "test_result.json",
    } <= artifacts
    assert not {"confusion_matrix.png", "classification_report.json"} & artifacts
    parent = client.get_run(study.user_attrs["tuner_mlflow_parent_run_id"])
    assert parent.data.metrics["test_rmse"] == pytest.approx(entry["score"])
    assert all(r.info.status == "FINISHED" for r in runs)


def test_the_refit_model_predicts_in_the_targets_units(diabetes):
    from sklearn.metrics import root_mean_squared_error

    import tuner
    from objectives.data import load_dataset
    from objectives.splits import make_splits

    cfg, _, _ = diabetes
    entry = _study(cfg).user_attrs[LOCKBOX_ATTR][0]
    ds = load_dataset("sklearn:diabetes", task="regression")
    splits = make_splits(ds.y, test_size=0.2, folds=2, seed=0, task="regression")
    model = tuner.load_refit(f"runs:/{entry['mlflow_run_id']}", tracking_uri=cfg.tracking_uri)
    pred = model.predict(ds.X[splits.test])
    assert root_mean_squared_error(ds.y[splits.test], pred) == pytest.approx(entry["score"], rel=1e-4)
    import mlflow.pytorch

    mlflow.set_tracking_uri(cfg.tracking_uri)
    module = mlflow.pytorch.load_model(entry["model_uri"])  # the inference export, no tuner API
    import torch

    with torch.no_grad():
        out = module(torch.as_tensor(ds.X[splits.test][:5])).numpy()
    assert np.allclose(out, pred[:5], rtol=1e-5)


def test_resume_adds_trials_without_rescoring_the_same_selection(diabetes):
    cfg, _, _ = diabetes
    lines: list[str] = []
    again = run_study(cfg, say=lines.append, live=False)
    assert len(_study(cfg).trials) == 3 and again["test"]["times_scored"] == 1
    assert any("resuming" in line for line in lines)
    more = cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"n_trials": 4})})
    run_study(more, say=lines.append, live=False)
    study = _study(cfg)
    assert len(study.trials) == 4
    assert len(study.user_attrs[LOCKBOX_ATTR]) == (2 if study.best_trial.number == 3 else 1)


def test_a_csv_with_a_numeric_target_and_a_text_column(tmp_path):
    rng = np.random.default_rng(0)
    n = 240
    size = rng.uniform(30, 200, n)
    rooms = rng.integers(1, 6, n)
    town = rng.choice(["north", "south", "east"], n)
    price = 1500 * size + 8000 * rooms + np.where(town == "north", 40000, 0) + rng.normal(0, 15000, n)
    lines = ["size,rooms,town,price"] + [
        f"{s:.1f},{r},{t},{p:.0f}" for s, r, t, p in zip(size, rooms, town, price, strict=True)
    ]
    (tmp_path / "houses.csv").write_text("\n".join(lines) + "\n")
    doc = _doc(
        **{
            "name": "houses",
            "data": {"source": "houses.csv", "target": "price", "folds": 2, "test_size": 0.25},
            "objective.metric": "r2",
            "training.max_epochs": 15,
            "search_space": {"lr": {"float": [1e-2, 3e-2], "log": True}, "width": {"fixed": 16}},
            "budget.n_trials": 2,
            "mlflow.log_model": False,
        }
    )
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(doc))
    cfg = load_config(tmp_path / "study.yaml")
    summary = run_study(cfg, say=lambda s: None, live=False)
    study = _study(cfg)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    (entry,) = study.user_attrs[LOCKBOX_ATTR]
    assert entry["metric"] == "r2" and entry["n_test"] == 60
    # a linear target with a little noise: a small MLP explains most of it
    assert entry["metrics"]["r2"] > 0.6, entry["metrics"]
    assert summary["test"]["score"] == entry["metrics"]["r2"]


PLUGIN = """
import torch
from torch import nn


def build(params, input_shape, n_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], 16), nn.ReLU(), nn.Linear(16, n_classes))


def objective(trial, data, reporter):
    assert data.task == "regression" and data.target is not None
    net = nn.Sequential(data.standardize(), build(data.params, data.input_shape, 1)).to(data.device)
    model = nn.Sequential(net, data.target)  # predicts in the target's units
    opt = torch.optim.Adam(net.parameters(), lr=data.hp.lr)
    for epoch in range(data.max_epochs):
        net.train()
        for xb, yb in data.batches():
            loss = nn.functional.mse_loss(net(xb).squeeze(-1), data.target.transform(yb))
            opt.zero_grad()
            loss.backward()
            reporter.step(loss, net)
            opt.step()
        reporter.epoch(epoch, model)
    return model
"""


@pytest.mark.parametrize("key", ["model.factory", "objective.function"])
def test_plugins_predict_the_target_in_its_units(tmp_path, key):
    (tmp_path / "reg_plugin.py").write_text(PLUGIN)
    ref = "reg_plugin:build" if key == "model.factory" else "reg_plugin:objective"
    doc = _doc(**{"name": "plug", "budget.n_trials": 1, "mlflow.log_model": False})
    doc.pop("model")
    doc.setdefault(key.split(".")[0], {})[key.split(".")[1]] = ref
    doc["search_space"] = {"lr": {"float": [5e-3, 1e-2], "log": True}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(doc))
    cfg = load_config(tmp_path / "study.yaml")
    run_study(cfg, say=lambda s: None, live=False)
    study = _study(cfg)
    (t,) = study.trials
    assert all(30 < v < 200 for v in t.intermediate_values.values()), t.intermediate_values
    (entry,) = study.user_attrs[LOCKBOX_ATTR]
    assert 30 < entry["metrics"]["rmse"] < 120 and entry["task"] == "regression"
