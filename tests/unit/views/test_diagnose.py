"""Diagnosis rules on constructed curves, chance levels, and the report's study-level findings."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest

from tuner.views.diagnose import (
    OVERFIT_GAP,
    UNDERFIT_SKILL,
    CurveRecorder,
    Curves,
    chance_level,
    diagnose,
    skill,
)
from tuner.views.findings import diagnoses, importances, optimism, param_support, render_findings


def curves(
    train: list[float],
    val: list[float],
    tl: list[float] | None = None,
    vl: list[float] | None = None,
    grad: list[float] | None = None,
    ratio: list[float] | None = None,
) -> Curves:
    n = len(train)
    return Curves(
        train_score=train,
        val_score=val,
        train_loss=tl or [1.0 - 0.05 * i for i in range(n)],
        val_loss=vl or [1.0 - 0.04 * i for i in range(n)],
        grad_max=grad or [2.0] * n,
        folds=2,
        grad_ratio=ratio,
    )


def test_chance_levels_follow_the_class_frequencies() -> None:
    assert chance_level("accuracy", [90, 10]) == pytest.approx(0.9)
    assert chance_level("balanced_accuracy", [90, 10]) == pytest.approx(0.5)
    assert chance_level("roc_auc", [5, 5, 5]) == 0.5
    assert chance_level("f1_macro", [10] * 10) == pytest.approx(0.1)
    assert chance_level("log_loss", [10] * 4) == pytest.approx(math.log(4))
    assert skill(0.55, "balanced_accuracy", 0.1) == pytest.approx(0.5)
    assert skill(math.log(4) / 2, "log_loss", math.log(4)) == pytest.approx(0.5)


def test_healthy_curves() -> None:
    name, ev, text = diagnose(curves([0.5, 0.8, 0.95], [0.5, 0.78, 0.92]), "accuracy", 0.1)
    assert name == "healthy", text
    assert ev["train_score"] == 0.95 and ev["val_score"] == 0.92


def test_overfitting_gap_growing_and_val_loss_rising() -> None:
    c = curves([0.6, 0.9, 0.99], [0.58, 0.65, 0.6], tl=[1.0, 0.3, 0.05], vl=[1.0, 0.9, 1.3])
    name, ev, text = diagnose(c, "accuracy", 0.1)
    assert name == "overfitting", text
    assert ev["gap"] > OVERFIT_GAP and ev["gap_first"] < 0.05
    assert "0.9900" in text and "0.6000" in text and "rose 44% from 0.9" in text
    assert ev["severity"] == "severe" and text.startswith("overfitting (severe):")
    assert "dropout" in text and "weight decay" in text


def test_a_constant_gap_is_not_overfitting() -> None:
    # a gap that was there from the first epoch and does not grow, val loss falling
    c = curves([0.8, 0.85, 0.9], [0.6, 0.65, 0.7])
    assert diagnose(c, "accuracy", 0.1)[0] == "healthy"


def test_underfitting_close_to_chance_and_far_behind_the_best() -> None:
    name, ev, text = diagnose(curves([0.15], [0.14]), "balanced_accuracy", 0.1)
    assert name == "underfitting" and ev["train_skill"] < UNDERFIT_SKILL
    assert "0.1500" in text and "bigger model" in text
    name, _, text = diagnose(curves([0.5, 0.55], [0.5, 0.54]), "balanced_accuracy", 0.1, best_val_skill=0.95)
    assert name == "underfitting" and "best validation skill 0.95" in text


def test_diverged_by_the_guard_or_by_the_curves() -> None:
    reason = "grad_norm 3e+05 > absolute limit 1e+04 for 5 steps (fold 0, epoch 1, step 40)"
    name, ev, text = diagnose(
        curves([0.3], [0.3]), "accuracy", 0.1, pruned_by="divergence", pruned_reason=reason
    )
    assert name == "diverged" and reason in text and "lower learning rate" in text
    c = curves([0.5, 0.4, 0.1], [0.5, 0.4, 0.1], grad=[5.0, 50.0, 5e4])
    name, _, text = diagnose(c, "accuracy", 0.1)
    assert name == "diverged" and "5e+04" in text
    c = curves([0.5, 0.4], [0.5, 0.4], tl=[1.0, 30.0])
    assert diagnose(c, "accuracy", 0.1)[0] == "diverged"


def test_pipeline_suspects() -> None:
    # non-finite at the very first step: the data, not the learning rate
    first = "training loss is nan (fold 0, epoch 0, step 0)"
    name, _, text = diagnose(
        Curves([], [], [], [], [], 0), "accuracy", 0.1, pruned_by="divergence", pruned_reason=first
    )
    assert name == "data_pipeline_suspect" and "first step" in text
    later = "training loss is nan (fold 0, epoch 3, step 120)"
    assert (
        diagnose(Curves([], [], [], [], [], 0), "accuracy", 0.1, pruned_by="divergence", pruned_reason=later)[
            0
        ]
        == "diverged"
    )
    # a negative loss (a plug-in objective's own loss wired wrong)
    name, _, text = diagnose(curves([0.5, 0.6], [0.5, 0.6], tl=[0.5, -0.25]), "accuracy", 0.1)
    assert name == "data_pipeline_suspect" and "negative (-0.25)" in text
    # validation far above training in every epoch
    name, _, text = diagnose(curves([0.3, 0.4], [0.7, 0.8]), "accuracy", 0.1)
    assert name == "data_pipeline_suspect" and "above training" in text
    # the model fits its training rows, validation stays near chance in every epoch
    c = curves([0.3, 0.6, 0.9], [0.1, 0.12, 0.1])
    name, _, text = diagnose(c, "balanced_accuracy", 0.1)
    assert name == "data_pipeline_suspect" and "fits its training rows" in text
    # ... but not when validation rose above chance at some epoch (real over-fitting)
    c = curves([0.3, 0.6, 0.99], [0.3, 0.4, 0.3], tl=[1.0, 0.5, 0.01], vl=[1.0, 0.9, 2.0])
    assert diagnose(c, "balanced_accuracy", 0.1)[0] == "overfitting"


def test_memorization_with_a_modest_gap_is_overfitting() -> None:
    # the wide MLP on 150 digits: train 1.000, train loss ~1e-5, validation 0.87,
    # a skill gap of ~0.14 and the validation loss 25 % (then 116 %) above its minimum
    tl = [1.5, 0.2, 1e-3, 1e-5]
    for vl, severity in (([1.6, 0.5, 0.55, 0.625], "mild"), ([1.6, 0.5, 0.8, 1.08], "severe")):
        name, ev, text = diagnose(
            curves([0.6, 0.95, 1.0, 1.0], [0.55, 0.85, 0.87, 0.875], tl, vl), "balanced_accuracy", 0.1
        )
        assert name == "overfitting" and ev["severity"] == severity, text
        assert f"overfitting ({severity})" in text and "validation loss rose" in text
    # a lower learning rate: validation 0.83, its loss up 8 %
    c = curves([0.5, 0.9, 1.0], [0.5, 0.8, 0.83], tl=[1.5, 0.3, 0.01], vl=[1.6, 0.6, 0.648])
    assert diagnose(c, "balanced_accuracy", 0.1)[0] == "overfitting"
    # memorized without a rise: training loss ~0, validation loss 90x, validation 9 points behind
    c = curves([0.5, 1.0, 1.0], [0.5, 0.9, 0.912], tl=[1.5, 0.01, 0.004], vl=[1.6, 0.4, 0.37])
    name, _, text = diagnose(c, "balanced_accuracy", 0.1)
    assert name == "overfitting" and "memorized" in text
    # the same scores with a training loss not collapsed (still learning) are healthy
    c = curves([0.5, 0.97, 0.99], [0.5, 0.92, 0.94], tl=[1.0, 0.3, 0.13], vl=[1.0, 0.35, 0.2])
    assert diagnose(c, "balanced_accuracy", 0.1)[0] == "healthy"


def test_late_epoch_noise_is_not_overfitting() -> None:
    # validation loss up 8 % from its minimum with a gap of 0.03: ordinary noise
    c = curves([0.6, 0.99, 1.0], [0.6, 0.97, 0.97], tl=[1.0, 0.05, 0.02], vl=[1.0, 0.1, 0.108])
    assert diagnose(c, "balanced_accuracy", 0.1)[0] == "healthy"
    # up 20 % on a tiny validation fold, gap 0.08 (below the 0.10 floor)
    c = curves([0.6, 0.97, 0.983], [0.6, 0.95, 0.933], tl=[1.0, 0.06, 0.033], vl=[1.0, 0.105, 0.126])
    assert diagnose(c, "balanced_accuracy", 0.1)[0] == "healthy"


def test_underfitting_and_vanishing_gradients_are_told_apart_by_the_gradient() -> None:
    flat = [2.31, 2.31, 2.30]
    # at chance, gradient reaching the input layer: under-fitting (e.g. too low a learning rate)
    c = curves([0.1, 0.1, 0.11], [0.1, 0.1, 0.1], tl=flat, vl=flat, ratio=[0.5, 0.4, 0.5])
    name, _, text = diagnose(c, "balanced_accuracy", 0.1)
    assert name == "underfitting" and "cannot fit even its training rows" in text
    # at chance, the input layer gets 2e-5 of the output layer's gradient: vanishing
    c = curves([0.1, 0.1, 0.1], [0.1, 0.1, 0.1], tl=flat, vl=flat, ratio=[2e-5, 1e-5, 3e-5])
    name, ev, text = diagnose(c, "balanced_accuracy", 0.1)
    assert name == "vanishing_gradients" and ev["grad_ratio_first_last"] == pytest.approx(2e-5)
    assert "dies on its way back" in text and "shallower" in text and "batch norm" in text
    # no per-layer ratio (a plug-in's loop): a collapsed norm with a flat loss
    c = curves([0.1, 0.1, 0.1], [0.1, 0.1, 0.1], tl=flat, vl=flat, grad=[1.0, 0.1, 0.001])
    assert diagnose(c, "balanced_accuracy", 0.1)[0] == "vanishing_gradients"
    # a vanishing ratio while the model learns is not a diagnosis
    c = curves([0.5, 0.8, 0.95], [0.5, 0.78, 0.92], ratio=[1e-3] * 3)
    assert diagnose(c, "balanced_accuracy", 0.1)[0] == "healthy"


def test_a_pruned_trial_is_stopped_early_unless_it_showed_a_problem() -> None:
    learning = curves([0.4, 0.6, 0.75], [0.37, 0.56, 0.7])
    name, ev, text = diagnose(
        learning, "balanced_accuracy", 0.1, pruned_by="pruner", pruned_reason="r", best_val_skill=0.92
    )
    assert name == "stopped_early" and ev["pruned_by"] == "pruner"
    assert "still learning, train skill 0.33 → 0.72" in text and "the study's best 0.92" in text
    assert text.startswith("stopped_early: validation balanced_accuracy 0.7000, train 0.7500 when the pruner")
    # stopped while still at chance: not judged under-fitting
    slow = curves([0.1, 0.12], [0.1, 0.11])
    assert (
        diagnose(slow, "balanced_accuracy", 0.1, pruned_by="fold", best_val_skill=0.9)[0] == "stopped_early"
    )
    # never finished an epoch
    name, _, text = diagnose(
        Curves([], [], [], [], [], 0), "accuracy", 0.1, pruned_by="pruner", pruned_reason="r"
    )
    assert name == "stopped_early" and "before a complete epoch" in text
    # a pruned trial that already memorizes is over-fitting
    c = curves([0.5, 1.0, 1.0], [0.5, 0.8, 0.8], tl=[1.5, 0.01, 0.001], vl=[1.6, 0.6, 0.9])
    assert diagnose(c, "balanced_accuracy", 0.1, pruned_by="pruner")[0] == "overfitting"
    # a complete trial far behind the best is still under-fitting
    assert (
        diagnose(curves([0.5, 0.55], [0.5, 0.54]), "balanced_accuracy", 0.1, best_val_skill=0.95)[0]
        == "underfitting"
    )


def test_recorder_forwards_and_averages_over_folds() -> None:
    from objectives.training import EpochRecord

    seen: list[Any] = []

    class Inner:
        run_id = "r1"

        def epoch(self, record: Any, step: int) -> None:
            seen.append(step)

        def fold_done(self, fold: int, score: float) -> None:
            seen.append(("fold", fold))

    rec = CurveRecorder(Inner())
    for fold, (t, v) in enumerate([(0.8, 0.6), (0.6, 0.4)]):
        rec.epoch(EpochRecord(fold, 0, 1.0, t, 1.1, v, 2.0, 3.0 + fold, 0.1), fold * 10)
        rec.fold_done(fold, v)
    c = rec.curves()
    assert seen == [0, ("fold", 0), 10, ("fold", 1)] and rec.run_id == "r1"
    assert c.train_score == [pytest.approx(0.7)] and c.val_score == [pytest.approx(0.5)]
    assert c.grad_max == [pytest.approx(3.5)] and c.folds == 2


def _study(
    values: list[float],
    dropouts: list[float],
    diag: list[str] | None = None,
    skills: list[float] | None = None,
    train: list[float] | None = None,
) -> Any:
    study = optuna.create_study(direction="maximize")
    dist = {
        "dropout": optuna.distributions.FloatDistribution(0.0, 0.6),
        "lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
    }
    for i, (v, d) in enumerate(zip(values, dropouts, strict=True)):
        attrs = {}
        if diag:
            attrs = {
                "diagnosis": diag[i],
                "diagnosis_text": f"{diag[i]}: x",
                "diagnosis_evidence": {
                    "val_skill": skills[i] if skills else v,
                    "train_skill": train[i] if train else 1.0,
                    "rule": "x",
                },
            }
        study.add_trial(
            optuna.trial.create_trial(
                params={"dropout": d, "lr": 1e-3 * (1 + i % 3)},
                distributions=dist,
                value=v,
                user_attrs=attrs,
            )
        )
    return study


def test_remedies_are_backed_by_the_studys_best_trials() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dropouts = [0.5, 0.45, 0.4, 0.35, 0.0, 0.05, 0.1, 0.02, 0.15, 0.08]
    values = [0.95, 0.94, 0.93, 0.92, 0.7, 0.71, 0.72, 0.69, 0.73, 0.7]
    diag = ["healthy"] * 4 + ["overfitting"] * 6
    study = _study(values, dropouts, diag)
    support = param_support(study)
    assert {
        "param": "dropout",
        "text": "the 5 best trials all use dropout ≥ 0.15 (5 of 10 trials do)",
    } in support
    d = diagnoses(study)
    assert d["counts"]["overfitting"] == 6 and d["counts"]["healthy"] == 4
    assert d["remedies"]["overfitting"]["supported_by"] == [
        "the 5 best trials all use dropout ≥ 0.15 (5 of 10 trials do)"
    ]
    text = "\n".join(render_findings({"diagnoses": d, "importances": None}))
    assert "overfitting 6" in text and "this study: the 5 best trials all use dropout" in text


def test_no_support_claims_from_a_small_study() -> None:
    assert param_support(_study([0.9, 0.8, 0.7], [0.5, 0.1, 0.0])) == []


def test_every_trial_at_chance_marks_the_study() -> None:
    diag = ["underfitting", "overfitting", "overfitting"]
    study = _study([0.1, 0.11, 0.1], [0.1, 0.2, 0.3], diag, skills=[0.0, 0.01, 0.0], train=[0.05, 0.6, 0.9])
    d = diagnoses(study)
    # the two that fit their training rows make it a pipeline suspect; the one that
    # learned nothing stays under-fitting
    assert d["counts"]["data_pipeline_suspect"] == 2 and d["counts"]["underfitting"] == 1
    assert "at chance" in d["notes"][0] and "2 fit their training rows" in d["notes"][0]


def test_every_trial_at_chance_on_training_too_is_underfitting() -> None:
    diag = ["underfitting"] * 3
    study = _study([0.1, 0.11, 0.1], [0.3, 0.4, 0.5], diag, skills=[0.0, 0.01, 0.0], train=[0.0, 0.02, 0.01])
    d = diagnoses(study)
    assert d["counts"]["underfitting"] == 3 and d["counts"]["data_pipeline_suspect"] == 0
    assert "AND on training" in d["notes"][0] and "suspect the labels" in d["notes"][0]


def test_importances_are_guarded_and_then_computed() -> None:
    few = _study([0.9, 0.8], [0.1, 0.2])
    assert "need 5" in importances(few)["skipped"]
    values = [0.9 - 0.1 * i for i in range(8)]
    many = _study(values, [0.05 * i for i in range(8)])
    imp = importances(many)["values"]
    assert set(imp) == {"dropout", "lr"} and sum(imp.values()) == pytest.approx(1.0, abs=1e-3)
    assert imp["dropout"] > imp["lr"]


def test_validation_optimism_sign_and_note() -> None:
    big = optimism({"cv_mean": 0.95, "score": 0.85, "cv_std": 0.01}, "maximize")
    assert big["value"] == pytest.approx(0.10) and "10.0x the fold std" in big["note"]
    small = optimism({"cv_mean": 0.95, "score": 0.94, "cv_std": 0.01}, "maximize")
    assert small["note"] is None
    loss = optimism({"cv_mean": 0.2, "score": 0.5, "cv_std": 0.01}, "minimize")
    assert loss["value"] == pytest.approx(0.3) and loss["note"]
    assert optimism({"cv_mean": None, "score": 0.5}, "maximize") is None


def test_report_lists_the_study_plots_of_the_parent_run() -> None:
    summary = {"mlflow": {"parent_run_id": "abc", "study_plots": ["plots/optimization_history.png"]}}
    text = "\n".join(render_findings(summary))
    assert "study plots (artifacts of MLflow run abc)" in text
    assert "plots/optimization_history.png" in text


def test_report_counts_test_scorings_and_notes_large_optimism() -> None:
    from pathlib import Path

    from tests.conftest import tiny_study
    from tuner.config import validate_config
    from tuner.views.report import render, summarize

    config = validate_config(tiny_study(), base_dir=Path("."), source="study.yaml")
    study = _study([0.95, 0.90], [0.1, 0.2])
    entry = {
        "metric": "balanced_accuracy",
        "metrics": {},
        "scored_at": "2026-11-23T04:00:00",
        "host": "h",
        "user": "ana",
        "n_test": 40,
        "cv_std": 0.01,
    }
    study.set_user_attr(
        "tuner_lockbox",
        [
            # the first look, after a search cut short by `tune finish`
            {
                **entry,
                "trial_number": 1,
                "score": 0.80,
                "cv_mean": 0.90,
                "search_cut_short": True,
                "trials_finished": 5,
                "budget": 12,
            },
            # a second look, new selection, after the budget was reached
            {
                **entry,
                "trial_number": 0,
                "score": 0.93,
                "cv_mean": 0.95,
                "scored_at": "2026-11-24T04:00:00",
                "trials_finished": 12,
                "budget": 12,
            },
        ],
    )
    summary = summarize(config, study)
    test = summary["test"]
    assert test["times_scored"] == 2 and test["selections_scored"] == 2
    # the first look is the unbiased estimate: the headline, its optimism, its selection
    assert test["score"] == 0.80 and test["trial_number"] == 1 and test["scored_at"] == "2026-11-23T04:00:00"
    assert test["search_cut_short"] and test["trials_finished"] == 5
    assert [(look["look"], look["trial_number"], look["score"]) for look in test["looks"]] == [
        (1, 1, 0.80),
        (2, 0, 0.93),
    ]
    assert (
        test["validation_optimism"] == pytest.approx(0.10) and "10.0x the fold std" in test["optimism_note"]
    )
    text = render(summary)
    assert "held-out test (40 samples, refit of trial #1): balanced_accuracy 0.8000" in text
    assert "scored 2 time(s), for 2 selection(s)" in text and "by ana@h" in text
    assert "the first look (above) is the unbiased estimate: publish that one" in text
    assert "look 2: trial #0 balanced_accuracy 0.9300 (after 12/12 trials, 2026-11-24T04:00:00)" in text
    assert (
        "look 1: trial #1 balanced_accuracy 0.8000 (after 5/12 trials, 2026-11-23T04:00:00, search cut short)"
        in text
    )
    assert "scored by `tune finish` after 5/12 trials" in text
    assert "WARNING: the test split has been scored 2 times" in text
    assert "gap (cross-validated" not in text  # one name for CV - test
    assert "validation optimism (+ = cross-validation was optimistic): +0.1000 (+10.0x the fold std)" in text
