"""Early stopping in real (tiny) studies: folds that stop early, the steps the pruner
sees, the refit's derived epochs (in the lockbox, the report and the refit run), the
objective plug-in's reporter, and WilcoxonPruner's one report per fold."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from objectives.early_stopping import refit_epochs
from tests.conftest import tiny_study
from tuner.config import load_config
from tuner.run.runner import run_study
from tuner.storage.records import scorings

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

EPOCHS = 12
# a wide MLP at a high learning rate: its validation loss bottoms out within a few epochs
FAST = {
    "lr": {"float": [0.02, 0.04], "log": True},
    "width": {"fixed": 128},
    "dropout": {"fixed": 0.0},
    "batchnorm": {"fixed": "none"},
    "early_stopping.patience": {"int": [1, 2]},
}


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("es")
    doc = tiny_study(
        **{
            "name": "es",
            "training.max_epochs": EPOCHS,
            "training.batch_size": 32,
            "budget.n_trials": 3,
            "pruner": {"name": "MedianPruner", "n_startup_trials": 1},
        }
    )
    doc["search_space"] = dict(FAST)
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(path)
    summary = run_study(cfg, say=lambda s: None, live=False)
    study = optuna.load_study(study_name="es", storage=cfg.storage_url)
    return cfg, summary, study


def test_folds_stop_early_and_record_their_stop_and_best_epochs(stopped) -> None:
    _, _, study = stopped
    folds = [f for t in study.get_trials() for f in t.user_attrs["fold_epochs"]]
    early = [f for f in folds if f["stopped"]]
    assert early, folds
    for f in early:
        assert f["epochs"] < EPOCHS
        assert 0 <= f["best_epoch"] < f["epochs"] - 1  # stopped after its best, by the patience
    for t in study.get_trials():
        # what the trial trained is the sum over its folds: the saving is visible
        assert t.user_attrs["epochs_trained"] == sum(f["epochs"] for f in t.user_attrs["fold_epochs"])


def test_pruner_steps_stay_unique_and_mean_fold_and_epoch(stopped) -> None:
    _, _, study = stopped
    for t in study.get_trials():
        expected = {
            k * EPOCHS + e for k, f in enumerate(t.user_attrs["fold_epochs"]) for e in range(f["epochs"])
        }
        assert set(t.intermediate_values) == expected, t.number


def test_complete_trials_score_each_fold_at_its_best_epoch(stopped) -> None:
    cfg, _, study = stopped
    client = MlflowClient(cfg.tracking_uri)
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        history = client.get_metric_history(t.user_attrs["mlflow_run_id"], "val_balanced_accuracy")
        by_step = {m.step: m.value for m in history}
        for k, f in enumerate(t.user_attrs["fold_epochs"]):
            assert t.user_attrs["fold_scores"][k] == pytest.approx(by_step[k * EPOCHS + f["best_epoch"]])


def test_the_refit_trains_the_derived_epochs_and_says_so(stopped) -> None:
    cfg, summary, study = stopped
    (entry,) = scorings(study)
    best = study.best_trial
    n, why = refit_epochs(best.user_attrs["fold_epochs"], EPOCHS)
    assert entry["refit_epochs"] == n < EPOCHS
    assert entry["refit_epochs_rule"] == why and "median" in why
    assert summary["test"]["refit_epochs"] == n
    run = MlflowClient(cfg.tracking_uri).get_run(entry["mlflow_run_id"])
    assert run.data.metrics["refit_epochs"] == n
    assert run.data.tags["tuner.refit_epochs_rule"] == why
    history = MlflowClient(cfg.tracking_uri).get_metric_history(entry["mlflow_run_id"], "train_loss")
    assert len(history) == n  # the refit's own curve: one point per epoch it trained


def test_trial_runs_carry_epochs_trained_and_stopped_folds(stopped) -> None:
    cfg, _, study = stopped
    client = MlflowClient(cfg.tracking_uri)
    for t in study.get_trials():
        metrics = client.get_run(t.user_attrs["mlflow_run_id"]).data.metrics
        assert metrics["epochs_trained"] == t.user_attrs["epochs_trained"]
        stopped_folds = sum(f["stopped"] for f in t.user_attrs["fold_epochs"])
        assert metrics["folds_stopped_early"] == stopped_folds
        # every row has a score: a pruned trial's is the mean of the folds it finished
        scores = t.user_attrs["fold_scores"]
        assert metrics["cv_folds_done"] == len(scores)
        if scores:
            assert metrics["cv_balanced_accuracy"] == pytest.approx(sum(scores) / len(scores))


def test_objective_plugin_reporter_stops_early_and_refits_the_derived_epochs(tmp_path: Path) -> None:
    # The plug-in never trains: its validation loss never improves after epoch 0, so
    # with patience 2 every fold stops after epoch 2; the refit is told 1 epoch.
    (tmp_path / "es_plugin.py").write_text(
        "import json, torch\n"
        "def objective(trial, data, reporter):\n"
        "    torch.manual_seed(0)\n"
        "    model = torch.nn.Sequential(data.standardize(), torch.nn.Linear(data.input_shape[0], data.n_classes))\n"
        "    for epoch in range(data.max_epochs):\n"
        "        reporter.epoch(epoch, model)\n"
        f"    with open({str(tmp_path / 'seen.jsonl')!r}, 'a') as f:\n"
        "        f.write(json.dumps({'fold': data.fold, 'max_epochs': data.max_epochs}) + '\\n')\n"
        "    return model\n"
    )
    doc = tiny_study(
        **{
            "data.source": "sklearn:iris",
            "budget.n_trials": 1,
            "mlflow.enabled": False,
            "training.max_epochs": 10,
            "training.early_stopping": {"patience": 2},
        }
    )
    doc["objective"]["function"] = "es_plugin:objective"
    del doc["model"]
    doc["search_space"] = {"lr": {"float": [1e-3, 1e-2], "log": True}}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(path)
    run_study(cfg, say=lambda s: None, live=False)
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    (t,) = study.get_trials()
    assert t.state == optuna.trial.TrialState.COMPLETE
    assert [(f["epochs"], f["best_epoch"], f["stopped"]) for f in t.user_attrs["fold_epochs"]] == [
        (3, 0, True),
        (3, 0, True),
    ]
    assert sorted(t.intermediate_values) == [0, 1, 2, 10, 11, 12]
    seen = [json.loads(line) for line in (tmp_path / "seen.jsonl").read_text().splitlines()]
    # the folds never got past the loop (StopFold went through the plug-in); the refit did
    assert seen == [{"fold": -1, "max_epochs": 1}]
    assert scorings(study)[0]["refit_epochs"] == 1


def test_wilcoxon_pruner_gets_one_report_per_fold(tmp_path: Path) -> None:
    doc = tiny_study(
        **{
            "budget.n_trials": 3,
            "mlflow.enabled": False,
            "data.folds": 3,
            "pruner": {"name": "WilcoxonPruner"},
        }
    )
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    cfg = load_config(path)
    run_study(cfg, say=lambda s: None, live=False)
    study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
    for t in study.get_trials():
        scores = t.user_attrs["fold_scores"]
        assert t.intermediate_values == {k: pytest.approx(s) for k, s in enumerate(scores)}


def test_the_report_shows_what_the_search_trained_against_a_full_search(stopped) -> None:
    from tuner.views.report import render, summarize

    cfg, _, study = stopped
    summary = summarize(cfg, study)
    comp = summary["compute"]
    trials = study.get_trials()
    assert comp["epochs_trained"] == sum(t.user_attrs["epochs_trained"] for t in trials)
    assert comp["epochs_full"] == len(trials) * cfg.data.folds * EPOCHS
    assert comp["folds_stopped_early"] == sum(
        f["stopped"] for t in trials for f in t.user_attrs["fold_epochs"]
    )
    text = render(summary)
    assert f"epochs trained: {comp['epochs_trained']:,} of the {comp['epochs_full']:,}" in text
    assert f"refit trained {summary['test']['refit_epochs']} epoch(s): the median" in text
