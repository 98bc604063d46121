"""A real 3-trial study on digits: SQLite storage, MLflow SQLite store, refit, lockbox."""

from __future__ import annotations

import math

import optuna
import pytest
from mlflow.tracking import MlflowClient

from tuner.config import load_config
from tuner.run.runner import run_study
from tuner.storage.records import LOCKBOX_ATTR


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """Run the tiny study once for the whole module (training is the slow part)."""
    import yaml

    from tests.conftest import tiny_study

    tmp = tmp_path_factory.mktemp("study")
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(tiny_study(**{"mlflow.log_model": True})))
    cfg = load_config(path)
    lines: list[str] = []
    summary = run_study(cfg, say=lines.append, live=False)
    return cfg, summary, lines


def _study(cfg):
    return optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)


def test_storage_holds_three_finished_trials_with_fold_scores(finished):
    cfg, summary, _ = finished
    assert (cfg.base_dir / "tiny.db").is_file()  # the embedded default, beside the study file
    study = _study(cfg)
    trials = study.get_trials()
    assert len(trials) == 3 and {t.number for t in trials} == {0, 1, 2}
    for t in trials:
        assert t.state == optuna.trial.TrialState.COMPLETE
        scores = t.user_attrs["fold_scores"]
        assert len(scores) == 2
        assert t.value == pytest.approx(sum(scores) / 2)
        assert t.user_attrs["cv_std"] == pytest.approx(abs(scores[0] - scores[1]) / 2)
        # one report per epoch per fold, at unique steps
        assert sorted(t.intermediate_values) == [0, 1, 2, 3]
        assert all(math.isfinite(v) for v in t.intermediate_values.values())
    assert summary["counts"]["complete"] == 3


def test_test_split_scored_once_and_recorded(finished):
    cfg, summary, _ = finished
    study = _study(cfg)
    record = study.user_attrs[LOCKBOX_ATTR]
    assert len(record) == 1
    entry = record[0]
    assert entry["trial_number"] == study.best_trial.number
    assert entry["params"]["width"] == 16  # fixed in the space: not in Optuna's params, yet refit with
    assert entry["n_test"] == 360
    assert 0.5 < entry["score"] <= 1.0  # 10 classes: chance is 0.1
    assert set(entry["metrics"]) == {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss"}
    assert summary["test"]["score"] == entry["score"]
    assert summary["test"]["times_scored"] == 1


def test_mlflow_parent_children_and_refit(finished):
    cfg, _, _ = finished
    study = _study(cfg)
    client = MlflowClient(cfg.tracking_uri)
    exp = client.get_experiment_by_name(cfg.experiment_name)
    runs = client.search_runs([exp.experiment_id])
    parent_id = study.user_attrs["tuner_mlflow_parent_run_id"]
    by_role = {}
    for r in runs:
        by_role.setdefault(r.data.tags.get("tuner.role"), []).append(r)
    assert [r.info.run_id for r in by_role["study"]] == [parent_id]
    trials = by_role["trial"]
    assert len(trials) == 3
    for r in trials:
        assert r.data.tags["mlflow.parentRunId"] == parent_id
        assert r.info.status == "FINISHED"
        assert r.info.run_name.startswith("trial-") and r.info.run_name.endswith("complete")
        assert {"lr", "dropout", "batchnorm", "width"} <= set(r.data.params)
        assert "cv_balanced_accuracy" in r.data.metrics and "cv_std" in r.data.metrics
        # one key per curve family, at Optuna's global step: fold * max_epochs + epoch
        hist = client.get_metric_history(r.info.run_id, "val_loss")
        assert [m.step for m in hist] == [0, 1, 2, 3]
        assert [m.step for m in client.get_metric_history(r.info.run_id, "train_balanced_accuracy")] == [
            0,
            1,
            2,
            3,
        ]
        assert len(client.get_metric_history(r.info.run_id, "grad_norm_max")) == 4
        assert not [k for k in r.data.metrics if "/fold" in k]
        assert "fold_curves.png" in {a.path for a in client.list_artifacts(r.info.run_id)}
    (refit,) = by_role["refit"]
    assert refit.data.tags["mlflow.parentRunId"] == parent_id
    assert refit.info.status == "FINISHED"
    assert refit.data.metrics["test_balanced_accuracy"] == study.user_attrs[LOCKBOX_ATTR][0]["score"]
    artifacts = {a.path for a in client.list_artifacts(refit.info.run_id)}
    assert {"confusion_matrix.json", "confusion_matrix.png", "classification_report.json"} <= artifacts
    assert client.search_logged_models([exp.experiment_id])  # mlflow.pytorch model
    # no run is left running
    assert all(r.info.status != "RUNNING" for r in runs)
    # the study's URL never reaches params
    assert not any("sqlite:" in v for r in runs for v in r.data.params.values())


def test_the_parent_run_is_the_study_summary(finished):
    cfg, summary, _ = finished
    study = _study(cfg)
    client = MlflowClient(cfg.tracking_uri)
    exp = client.get_experiment_by_name(cfg.experiment_name)
    # MLflow 3 opens the classic run table, not the GenAI view, for this experiment
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    parent = client.get_run(study.user_attrs["tuner_mlflow_parent_run_id"])
    m = parent.data.metrics
    best = study.best_trial
    assert m["best_cv_balanced_accuracy"] == pytest.approx(best.value)
    assert m["best_cv_std"] == pytest.approx(best.user_attrs["cv_std"])
    assert m["best_trial"] == best.number
    entry = study.user_attrs[LOCKBOX_ATTR][0]
    for name, value in entry["metrics"].items():
        assert m[f"test_{name}"] == pytest.approx(value)
    assert m["validation_optimism"] == pytest.approx(summary["test"]["validation_optimism"])
    assert m["trials_complete"] == 3 and m["trials_pruned"] == 0
    assert (
        m["diagnosis_healthy"] + m.get("diagnosis_underfitting", 0) + m.get("diagnosis_overfitting", 0) >= 1
    )
    for k, v in best.params.items():  # the parent's row lines up with its children's columns
        assert parent.data.params[k] == str(v)
        assert parent.data.tags[f"tuner.best.{k}"] == str(v)
    note = parent.data.tags["mlflow.note.content"]
    assert f"runs/{best.user_attrs['mlflow_run_id']}" in note and f"runs/{entry['mlflow_run_id']}" in note
    assert f"**{entry['score']:.4f}**" in note


def test_optuna_labels_the_objective(finished):
    cfg, _, _ = finished
    assert _study(cfg).metric_names == ["cv_balanced_accuracy"]


def test_rerun_continues_without_duplicating_or_rescoring(finished):
    cfg, _, _ = finished
    lines: list[str] = []
    again = run_study(cfg, say=lines.append, live=False)
    study = _study(cfg)
    assert len(optuna.get_all_study_names(cfg.storage_url)) == 1
    assert len(study.trials) == 3  # budget already reached: no new trial
    assert len(study.user_attrs[LOCKBOX_ATTR]) == 1  # same selection: not re-scored
    assert again["test"]["times_scored"] == 1
    assert any("resuming" in line for line in lines)

    more = cfg.model_copy(update={"budget": cfg.budget.model_copy(update={"n_trials": 4})})
    run_study(more, say=lines.append, live=False)
    study = _study(cfg)
    assert len(study.trials) == 4
    scored = study.user_attrs[LOCKBOX_ATTR]
    if study.best_trial.number == 3:  # a new best: scored again, loudly, and counted
        assert len(scored) == 2 and any("already scored" in line for line in lines)
    else:
        assert len(scored) == 1


def test_other_split_refuses_to_join(finished):
    cfg, _, _ = finished
    other = cfg.model_copy(update={"seed": 1})
    from tuner.errors import StorageError

    with pytest.raises(StorageError, match="held-out split was made from other data"):
        run_study(other, say=lambda s: None, live=False)
