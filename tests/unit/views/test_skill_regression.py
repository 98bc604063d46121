"""The skill scale for task: regression (R² against the training mean), and the diagnoses'
words for it: "predicting the training mean" where a classification study reads "chance"."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
import pytest
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    r2_score,
    root_mean_squared_error,
)

from tests.unit.views.test_diagnose import curves
from tuner.views.diagnose import chance_for, chance_level, diagnose, skill
from tuner.views.findings import diagnoses
from tuner.views.skill import regression_chance


def test_regression_chance_is_the_best_constants_score() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0, 10.0])  # mean 4, median 3
    assert regression_chance("rmse", y) == pytest.approx(math.sqrt((9 + 4 + 1 + 0 + 36) / 5))  # ddof 0
    assert regression_chance("mae", y) == pytest.approx((2 + 1 + 0 + 1 + 7) / 5)
    assert regression_chance("mape", y) == pytest.approx((2 / 1 + 1 / 2 + 0 + 1 / 4 + 7 / 10) / 5)
    assert regression_chance("r2", y) == 0.0
    # a zero target is left out of the mape baseline (sklearn would divide by eps), not of the median
    z = np.array([0.0, 1.0, 3.0, 5.0])  # median 2
    assert regression_chance("mape", z) == pytest.approx((1 / 1 + 1 / 3 + 3 / 5) / 3)
    with pytest.raises(ValueError, match="accuracy"):
        regression_chance("accuracy", y)


def test_rmse_skill_is_r2_against_the_same_targets() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(50.0, 12.0, size=400)
    chance = chance_for("rmse", y, 0)
    for noise in (0.1, 6.0, 30.0):  # good, middling, worse than the mean (R² < 0)
        pred = y + rng.normal(0.0, noise, size=y.size)
        r2 = r2_score(y, pred)
        assert skill(root_mean_squared_error(y, pred), "rmse", chance) == pytest.approx(r2)
        assert skill(r2, "r2", chance_for("r2", y, 0)) == pytest.approx(r2)
    assert r2 < -1  # kept unclipped, like log loss below its chance level
    assert skill(root_mean_squared_error(y, np.full_like(y, y.mean())), "rmse", chance) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("metric", "score"), [("mae", mean_absolute_error), ("mape", mean_absolute_percentage_error)]
)
def test_mae_and_mape_skill_is_0_for_the_median_and_1_for_perfect(metric: str, score: Any) -> None:
    y = np.random.default_rng(1).lognormal(3.0, 0.8, size=301)
    chance = chance_for(metric, y, 0)
    median = np.full_like(y, np.median(y))
    assert skill(score(y, median), metric, chance) == pytest.approx(0.0, abs=1e-12)
    assert skill(score(y, y), metric, chance) == 1.0
    assert skill(score(y, np.full_like(y, y.mean())), metric, chance) < 0  # the mean is a worse constant here


def test_chance_for_picks_the_task_by_metric() -> None:
    labels = np.array([0, 0, 0, 1, 2])
    assert chance_for("accuracy", labels, 4) == chance_level("accuracy", [3, 1, 1, 0])
    assert chance_for("balanced_accuracy", labels, 4) == pytest.approx(0.25)  # minlength counts
    assert chance_for("rmse", np.array([1.0, 3.0]), 0) == pytest.approx(1.0)


def test_a_constant_target_has_no_scale() -> None:
    assert skill(0.5, "rmse", regression_chance("rmse", np.full(5, 7.0))) == 0.0
    assert skill(0.0, "mape", regression_chance("mape", np.zeros(5))) == 0.0


def test_regression_overfitting_reads_the_skill_gap() -> None:
    # sd 10: train rmse 8 → 1 (skill 0.36 → 0.99), validation 8.2 → 7.5 (0.33 → 0.44)
    c = curves([8.0, 4.0, 1.0], [8.2, 7.0, 7.5], tl=[1.0, 0.3, 0.05], vl=[1.0, 0.5, 0.6])
    name, ev, text = diagnose(c, "rmse", 10.0)
    assert name == "overfitting" and ev["severity"] == "severe", text
    assert ev["train_skill"] == pytest.approx(0.99) and ev["val_skill"] == pytest.approx(0.4375)
    assert "train rmse 1.0000 vs validation 7.5000" in text and "label" not in text


def test_regression_underfitting_names_the_training_mean_not_chance() -> None:
    c = curves([9.9, 9.8], [9.9, 9.85])  # skill 0.02 → 0.04 against an sd of 10
    name, ev, text = diagnose(c, "rmse", 10.0)
    assert name == "underfitting" and ev["train_skill"] < 0.3, text
    assert "close to predicting the training mean (rmse 10 = the target's sd; skill 0.04" in text
    assert "chance" not in text
    name, _, text = diagnose(curves([0.49, 0.48], [0.49, 0.49]), "mape", 0.5)
    assert name == "underfitting" and "predicting the training median (mape 0.5 = the median's" in text
    # a classification study keeps its words
    name, _, text = diagnose(curves([0.15], [0.14]), "balanced_accuracy", 0.1)
    assert name == "underfitting" and "close to chance (0.1000; skill" in text


def test_regression_pipeline_and_vanishing_texts() -> None:
    c = curves([7.0, 5.0, 2.0], [9.9, 9.8, 9.9])  # fits its training rows, validation at the mean
    name, _, text = diagnose(c, "rmse", 10.0)
    assert name == "data_pipeline_suspect", text
    assert "validation stays near predicting the training mean" in text
    assert "the targets do not match the features" in text and "label encoding" not in text
    assert "data.target_transform" in text
    flat = [1.0, 1.0, 0.99]
    c = curves([9.9, 9.9, 9.9], [9.9, 9.9, 9.9], tl=flat, vl=flat, ratio=[1e-5] * 3)
    name, _, text = diagnose(c, "rmse", 10.0)
    assert name == "vanishing_gradients" and "stuck at predicting the training mean" in text


def test_regression_divergence_suggests_the_targets_scale_and_a_robust_loss() -> None:
    c = curves([5.0, 6.0], [5.0, 6.0], tl=[1.0, 30.0])
    name, _, text = diagnose(c, "rmse", 10.0)
    assert name == "diverged" and "data.target_transform" in text and "training.loss: huber" in text
    _, _, text = diagnose(c, "accuracy", 0.1)
    assert "target_transform" not in text and "training.loss" not in text


def _study(metric: str, val: list[float], train: list[float]) -> Any:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize")
    for v, t in zip(val, train, strict=True):
        ev = {"metric": metric, "val_skill": v, "train_skill": t, "rule": "x"}
        attrs = {"diagnosis": "underfitting", "diagnosis_text": "x", "diagnosis_evidence": ev}
        study.add_trial(optuna.trial.create_trial(value=1.0, user_attrs=attrs))
    return study


def test_a_regression_study_at_the_mean_is_noted_in_its_words() -> None:
    d = diagnoses(_study("rmse", [0.0, 0.01, -0.2], [0.9, 0.6, 0.0]))
    assert d["counts"]["data_pipeline_suspect"] == 2
    note = d["notes"][0]
    assert "no better than predicting the training mean on validation" in note and "chance" not in note
    assert "targets aligned with features" in note and "data.target_transform" in note
    assert "data.target_transform" in d["remedies"]["data_pipeline_suspect"]["remedy"]
    note = diagnoses(_study("mae", [0.0, 0.0, 0.0], [0.0, 0.1, 0.0]))["notes"][0]
    assert "predicting the training median on validation AND on training" in note
    assert "suspect the targets" in note
