"""Issue #6 studies: the runnable plug-in examples (model factory, custom objective)
each run a 2-trial study with refit and MLflow; the objective plug-in's reporter
still applies the divergence guard; an ImageFolder study with augmentation."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from PIL import Image

from tests.conftest import REPO, tiny_study
from tuner.config import load_config
from tuner.run.runner import run_study

EXAMPLES = REPO / "examples" / "plugin"


def _run_example(name: str, tmp_path: Path) -> tuple:
    cfg = load_config(
        EXAMPLES / f"{name}.yaml",
        overrides={
            "data.source": "sklearn:iris",
            "data.folds": 2,
            "training.max_epochs": 2,
            "training.threads": 1,
            "budget.n_trials": 2,
            "sampler": {"name": "RandomSampler"},
            "pruner": None,
            "fold_pruning": {"enabled": False},
            "storage": f"sqlite:///{tmp_path / 'study.db'}",
            "mlflow.tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "mlflow.log_model": False,
        },
    )
    summary = run_study(cfg, say=lambda s: None, live=False)
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    return cfg, summary, study


def _child_runs(cfg) -> list:
    client = MlflowClient(cfg.tracking_uri)
    exp = client.get_experiment_by_name(cfg.experiment_name)
    return client.search_runs([exp.experiment_id])


def test_model_factory_plugin_runs_a_two_trial_study(tmp_path: Path) -> None:
    cfg, summary, study = _run_example("factory", tmp_path)
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert all("hidden" in t.params and "layers" in t.params for t in trials)  # the factory's own
    assert summary["test"]["n_test"] == 30  # the refit ran on the factory's model
    plugin = sys.modules["my_plugin"]
    shapes = {p.shape for p in plugin.build({"hidden": 5, "layers": 1}, (4,), 3).parameters()}
    assert (5, 4) in shapes  # sanity: the example factory reads its params
    runs = _child_runs(cfg)
    trial_runs = [r for r in runs if r.data.tags.get("tuner.role") == "trial"]
    assert len(trial_runs) == 2 and all(r.data.params.get("hidden") for r in trial_runs)


def test_objective_plugin_runs_a_two_trial_study_with_mlflow(tmp_path: Path) -> None:
    cfg, summary, study = _run_example("objective", tmp_path)
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for t in trials:
        assert sorted(t.intermediate_values) == [0, 1, 2, 3]  # 2 folds x 2 epochs, reported
        assert len(t.user_attrs["fold_scores"]) == 2
    assert 0.0 <= summary["test"]["score"] <= 1.0  # refit through the plug-in, test scored
    trial_runs = [r for r in _child_runs(cfg) if r.data.tags.get("tuner.role") == "trial"]
    assert len(trial_runs) == 2
    for run in trial_runs:
        assert "val_balanced_accuracy" in run.data.metrics
        assert "grad_norm_mean" in run.data.metrics  # the reporter saw the steps


def test_objective_plugin_reporter_applies_the_divergence_guard(tmp_path: Path) -> None:
    (tmp_path / "p6_diverging.py").write_text(
        "import torch\n"
        "def objective(trial, data, reporter):\n"
        "    model = torch.nn.Linear(data.input_shape[0], data.n_classes)\n"
        "    for epoch in range(data.max_epochs):\n"
        "        reporter.step(torch.tensor(float('nan')), model)\n"
        "        reporter.epoch(epoch, model)\n"
        "    return model\n"
    )
    doc = tiny_study(**{"data.source": "sklearn:iris", "budget.n_trials": 2, "mlflow.enabled": False})
    doc["objective"]["function"] = "p6_diverging:objective"
    del doc["model"]
    doc["search_space"] = {"lr": {"float": [1e-3, 1e-2], "log": True}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(path)
    run_study(cfg, say=lambda s: None, live=False)
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    for t in study.get_trials():
        assert t.state == optuna.trial.TrialState.PRUNED
        assert t.user_attrs["pruned_by"] == "divergence"
        assert "training loss is nan" in t.user_attrs["pruned_reason"]


def test_imagefolder_study_with_augmentation(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for c, name in enumerate(["emergency", "non_emergency"]):
        (tmp_path / "vehicles" / name).mkdir(parents=True)
        for i in range(10):
            arr = rng.integers(0, 80, (12, 12, 3), dtype=np.uint8)
            arr[:, :, c] += 150  # red vs green: learnable in 2 epochs
            Image.fromarray(arr, "RGB").save(tmp_path / "vehicles" / name / f"{i}.png")
    doc = tiny_study(
        **{
            "data.source": "imagefolder:vehicles",
            "data.image_size": 8,
            "data.test_size": 0.2,
            "model.family": "cnn",
            "budget.n_trials": 2,
            "training.batch_size": 8,
        }
    )
    doc["search_space"] = {
        "lr": {"fixed": 0.01},
        "width": {"fixed": 8},
        "depth": {"fixed": 1},
        "augment.hflip": {"fixed": 0.5},
        "augment.rotation": {"float": [0.0, 20.0]},
        "augment.color_jitter": {"float": [0.0, 0.3]},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(path)
    summary = run_study(cfg, say=lambda s: None, live=False)
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE", "COMPLETE"]
    assert all("augment.rotation" in t.params for t in study.get_trials())
    assert summary["test"]["n_test"] == 4
    parent = [r for r in _child_runs(cfg) if r.data.tags.get("tuner.role") == "study"][0]
    assert parent.data.params["data.source"] == "imagefolder:vehicles"


@pytest.mark.slow
def test_resnet18_trains_on_fake_images(tmp_path: Path) -> None:
    """Real resnet18 training (slow on CPU): a 1-trial study on 16x16 images."""
    rng = np.random.default_rng(0)
    X = rng.random((60, 3, 16, 16)).astype(np.float32)
    y = np.arange(60) % 2
    X[y == 1, 0] += 1.0
    np.savez(tmp_path / "fake.npz", X=X, y=y)
    doc = tiny_study(**{"data.source": "fake.npz", "model.family": "resnet18", "budget.n_trials": 1})
    doc["search_space"] = {"lr": {"fixed": 0.001}, "dropout": {"fixed": 0.2}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    summary = run_study(load_config(path), say=lambda s: None, live=False)
    assert summary["counts"]["complete"] == 1
