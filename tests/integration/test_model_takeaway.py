"""The refit model, taken away (issue #15): on the refit run's artifacts, in the MLflow
Model Registry with an alias, rebuilt for further training from its recipe and state
dict with the same predictions as the inference export; `tune report --json` says where.
One tiny iris study on a real MLflow SQLite store serves the module."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import tiny_study
from tuner.config import load_config
from tuner.run.runner import run_study
from tuner.storage.records import LOCKBOX_ATTR

NAME = "iris-takeaway"
REGISTERED = "iris-mlp"


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("takeaway")
    doc = tiny_study(
        **{
            "name": NAME,
            "data.source": "sklearn:iris",
            "data.test_size": 0.3,
            "training.max_epochs": 6,
            "search_space.lr": {"float": [0.01, 0.05], "log": True},
            "mlflow.log_model": True,
            "mlflow.register": REGISTERED,
        }
    )
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(path)
    lines: list[str] = []
    summary = run_study(cfg, say=lines.append, live=False)
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    return cfg, summary, lines, study


def _iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return X.astype(np.float32), y


def test_the_refit_run_lists_its_model_and_the_lockbox_records_where(done):
    cfg, summary, _, study = done
    entry = study.user_attrs[LOCKBOX_ATTR][0]
    run_id = entry["mlflow_run_id"]
    client = MlflowClient(cfg.tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    files = {a.path for a in client.list_artifacts(run_id, "model")}
    assert {"model/recipe.json", "model/state_dict.pt", "model/README.md"} <= files
    assert entry["model_uri"].startswith("models:/m-")
    assert run.data.tags["tuner.model_uri"] == entry["model_uri"]
    assert entry["model_uri"] in run.data.tags["mlflow.note.content"]  # the description links it
    (logged,) = client.search_logged_models([run.info.experiment_id])
    assert logged.source_run_id == run_id and f"models:/{logged.model_id}" == entry["model_uri"]
    # tune report --json: the refit's run, its model, its registry version
    refit = summary["refit"]
    assert refit["run_id"] == run_id and refit["model_uri"] == entry["model_uri"]
    assert refit["registered"] == {"name": REGISTERED, "version": 1, "alias": "candidate"}
    assert summary["mlflow"]["ui_url"] is None  # a local store: `tune ui` serves it


def test_registered_as_a_version_with_alias_and_scores(done):
    cfg, _, lines, study = done
    entry = study.user_attrs[LOCKBOX_ATTR][0]
    client = MlflowClient(cfg.tracking_uri)
    mv = client.get_model_version_by_alias(REGISTERED, "candidate")
    assert int(mv.version) == 1 and mv.run_id == entry["mlflow_run_id"]
    assert mv.tags["tuner.study"] == NAME
    assert mv.tags["tuner.trial"] == str(entry["trial_number"])
    assert mv.tags["test_balanced_accuracy"] == f"{entry['score']:.4f}"
    assert mv.tags["cv_balanced_accuracy"] == f"{entry['cv_mean']:.4f}"
    assert mv.tags["tuner.test_looks"] == "1"
    assert any(f"registered the refit model as {REGISTERED} version 1" in line for line in lines)


def test_rebuilt_model_predicts_as_the_export_and_trains_further(done):
    import mlflow.pytorch

    import tuner

    cfg, _, _, study = done
    entry = study.user_attrs[LOCKBOX_ATTR][0]
    X, y = _iris()
    # the inference export is a traced graph (it predicts; train() and eval() raise)
    exported = mlflow.pytorch.load_model(f"models:/{REGISTERED}@candidate")
    with torch.no_grad():
        want = torch.softmax(exported(torch.as_tensor(X)), dim=1).numpy()
    for ref in (
        str(cfg.base_dir / "study.yaml"),
        f"runs:/{entry['mlflow_run_id']}",
        f"models:/{REGISTERED}@candidate",
    ):
        model = tuner.load_refit(ref, tracking_uri=cfg.tracking_uri)
        assert model.recipe["family"] == "mlp" and model.recipe["params"] == entry["params"]
        np.testing.assert_allclose(model.predict_proba(X), want, atol=1e-6)
    # fine-tuning trains the plain torch module: its weights move and it still predicts
    before = [p.detach().clone() for p in model.module.parameters()]
    model.fine_tune(X, y, epochs=3)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.module.parameters(), strict=True))
    assert model.predict_proba(X).shape == (150, 3) and not model.module.training


def test_not_registered_after_looks_for_different_selections(done):
    """A second selection scored on the same test split: its score is optimistic, so it
    is not registered unless the study file says allow_extra_looks."""
    from tuner.run.takeaway import register_refit
    from tuner.tracking.tracker import Tracker

    cfg, _, _, study = done
    first = study.user_attrs[LOCKBOX_ATTR][0]
    second = {**first, "trial_number": first["trial_number"] + 1}
    tracker = Tracker(cfg.tracking_uri, cfg.experiment_name, cfg.name)
    out = register_refit(tracker, cfg, first["mlflow_run_id"], first["model_uri"], second, [first])
    assert out["name"] == REGISTERED and "2 selections" in out["skipped"]
    assert "allow_extra_looks" in out["skipped"]
    client = MlflowClient(cfg.tracking_uri)
    assert [int(v.version) for v in client.search_model_versions(f"name = '{REGISTERED}'")] == [1]
    # the user says so: registered, as version 2, the alias moves to it
    doc = yaml.safe_load((cfg.base_dir / "study.yaml").read_text())
    doc["mlflow"]["register"] = {"name": REGISTERED, "alias": "retested", "allow_extra_looks": True}
    allowed = load_config(cfg.base_dir / "study.yaml", overrides=None).model_copy(
        update={"mlflow": cfg.mlflow.model_validate(doc["mlflow"])}
    )
    out = register_refit(tracker, allowed, first["mlflow_run_id"], first["model_uri"], second, [first])
    assert out == {"name": REGISTERED, "version": 2, "alias": "retested"}
    assert client.get_model_version_by_alias(REGISTERED, "retested").tags["tuner.test_looks"] == "2"


def test_optuna_tools_read_the_lockbox(done):
    """optuna-dashboard and the Optuna CLI show study attributes: the test score is a
    number there, not only inside the lockbox's JSON."""
    _, _, _, study = done
    entry = study.user_attrs[LOCKBOX_ATTR][0]
    assert study.user_attrs["test_balanced_accuracy"] == entry["score"]
    assert study.user_attrs["test_scored"].startswith(f"1 time(s), for trial(s) #{entry['trial_number']}")
    assert study.user_attrs["refit_model"] == entry["model_uri"]
    assert json.loads(json.dumps(study.user_attrs[LOCKBOX_ATTR]))  # still plain JSON
