"""The calibration set of the diagnoses: real tiny trainings a practitioner would label.

Each case is a small study (its data, its search space with fixed values, its training
settings) and the diagnosis a practitioner would give its trials. The cases vary the
family, width, data size, learning rate and epochs; the healthy ones must raise no alarm.
``test_diagnosis_calibration`` runs them (a fast subset by default, every case with
``-m slow``) and ``benchmarks/diagnoses.py`` prints the confusion table that
``docs/diagnoses.md`` quotes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

__all__ = ["CASES", "Case", "run_case"]

Data = Callable[[], tuple[np.ndarray, np.ndarray]]


def _sk(name: str, n: int | None = None, seed: int = 0, image: bool = False) -> Data:
    def load() -> tuple[np.ndarray, np.ndarray]:
        import sklearn.datasets as skd

        d = getattr(skd, f"load_{name}")()
        X, y = d.data.astype(np.float32), d.target.astype(np.int64)
        if n is not None:
            rows = np.random.default_rng(seed).permutation(len(y))[:n]
            X, y = X[rows], y[rows]
        if image:
            X = X.reshape(-1, 1, 8, 8)
        return X, y

    return load


def _diabetes(rolled: bool = False) -> Data:
    """scikit-learn's diabetes (a regression target, 25..346); ``rolled``: every target
    moved to the next row, so targets and features no longer match."""

    def load() -> tuple[np.ndarray, np.ndarray]:
        from sklearn.datasets import load_diabetes

        X, y = load_diabetes(return_X_y=True)
        return X.astype(np.float32), np.roll(y, 1) if rolled else y

    return load


def _shuffled(data: Data, seed: int = 1) -> Data:
    def load() -> tuple[np.ndarray, np.ndarray]:
        X, y = data()
        return X, np.random.default_rng(seed).permutation(y)  # labels no longer match the rows

    return load


def _scaled(data: Data, factor: float) -> Data:
    def load() -> tuple[np.ndarray, np.ndarray]:
        X, y = data()
        return X * np.float32(factor), y

    return load


def _noisy_binary(n: int, features: int, noise: float, seed: int = 0) -> Data:
    def load() -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(n, features)).astype(np.float32)
        y = (X[:, 0] + rng.normal(scale=noise, size=n) > 0).astype(np.int64)
        return X, y

    return load


@dataclass(frozen=True)
class Case:
    """One real tiny training and the diagnosis a practitioner would give it."""

    name: str
    expect: str
    data: Data
    space: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)  # tiny_study overrides
    judged: str = "all"  # which trials carry the label: all | pruned
    fast: bool = False  # in the default suite


def run_case(case: Case, where: Path, seed: int = 0) -> list[dict[str, Any]]:
    """Run ``case`` as a study in ``where`` (no MLflow, no refit): the report's
    diagnosis rows of the trials it judges."""
    from tests.conftest import tiny_study
    from tuner.config import load_config
    from tuner.run.runner import run_study

    where.mkdir(parents=True, exist_ok=True)
    X, y = case.data()
    np.savez(where / "data.npz", X=X, y=y)
    settings = {"budget.n_trials": 1, "seed": seed, **case.settings}
    doc = tiny_study(
        **{"data.source": "data.npz", "search_space": case.space, "mlflow.enabled": False, **settings}
    )
    (where / "study.yaml").write_text(yaml.safe_dump(doc))
    summary = run_study(load_config(where / "study.yaml"), refit=False, say=lambda s: None, live=False)
    rows = summary["diagnoses"]["trials"]
    if case.judged == "pruned":
        rows = [r for r in rows if r["state"] == "pruned"]
    return rows


_ADAM = {"optimizer": {"categorical": ["adam"]}}
_SGD = {"optimizer": {"categorical": ["sgd"]}, "momentum": 0.0}
_BARE = {"dropout": 0.0, "weight_decay": 0.0, "batchnorm": "none"}

_REGRESSION = {"task": "regression", "objective": {"metric": "rmse"}}

_PRUNE = {  # a study in which the pruner stops the slow learners while they still learn
    "budget.n_trials": 6,
    "pruner": {"name": "MedianPruner", "n_startup_trials": 2, "n_warmup_steps": 1},
    "sampler": {"name": "RandomSampler"},
}


def _rolled(data: Data) -> Data:
    def load() -> tuple[np.ndarray, np.ndarray]:
        X, y = data()
        return X, np.roll(y, 1)  # every label moved to the next row: features and labels misaligned

    return load


def _flipped(data: Data, share: float, seed: int = 2) -> Data:
    def load() -> tuple[np.ndarray, np.ndarray]:
        X, y = data()
        rng = np.random.default_rng(seed)
        flip = rng.random(len(y)) < share  # label noise a big model can only memorize
        y = y.copy()
        y[flip] = (y[flip] + rng.integers(1, y.max() + 1, size=int(flip.sum()))) % (y.max() + 1)
        return X, y

    return load


def _unrelated(n: int, features: int, classes: int, seed: int = 0) -> Data:
    def load() -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(n, features)).astype(np.float32)
        return X, rng.integers(0, classes, size=n).astype(np.int64)  # labels from another source

    return load


CASES: list[Case] = [
    # -- over-fitting: a big model memorizing a small training set; the validation loss
    # climbs from its minimum while the training loss keeps falling
    Case(
        "memorize-digits150-w512",
        "overfitting",
        _sk("digits", 150),
        {"lr": 1e-3, "width": 512, **_BARE, **_ADAM},
        {"training.max_epochs": 60, "training.batch_size": 16},
    ),
    Case(
        "memorize-digits150-w512-low-lr",
        "overfitting",
        _sk("digits", 150),
        {"lr": 3e-4, "width": 512, **_BARE, **_ADAM},
        {"training.max_epochs": 60, "training.batch_size": 16},
    ),
    Case(
        "noisy-binary100-w128-d2",
        "overfitting",
        _noisy_binary(100, 20, 1.0),
        {"lr": 1e-2, "width": 128, "depth": 2, **_BARE, **_ADAM},
        {"training.max_epochs": 25, "training.batch_size": 16},
    ),
    Case(
        "noisy-binary150-gelu-w256-d3",
        "overfitting",
        _noisy_binary(150, 30, 0.8, seed=3),
        {"lr": 3e-3, "width": 256, "depth": 3, "activation": "gelu", **_BARE, **_ADAM},
        {"training.max_epochs": 40, "training.batch_size": 16},
    ),
    Case(
        "cnn-digits-images120",
        "overfitting",
        _sk("digits", 120, image=True),
        {"lr": 3e-3, "width": 64, **_BARE, **_ADAM},
        {"model.family": "cnn", "training.max_epochs": 60, "training.batch_size": 16},
    ),
    Case(
        "noisy-labels-breast-cancer80-w512",
        "overfitting",
        _flipped(_sk("breast_cancer", 100), 0.2),
        {"lr": 3e-3, "width": 512, "depth": 2, **_BARE, **_ADAM},
        {"training.max_epochs": 60, "training.batch_size": 8},
        fast=True,
    ),
    # -- under-fitting: the model cannot fit even its training rows
    Case(
        "width4-dropout0.8-digits",
        "underfitting",
        _sk("digits", 600),
        {"lr": 1e-3, "width": 4, "dropout": {"float": [0.7, 0.8]}, **_ADAM},
        {"training.max_epochs": 8, "training.batch_size": 32, "budget.n_trials": 3},
        fast=True,
    ),
    Case(
        "width4-dropout0.9-one-epoch",
        "underfitting",
        _sk("digits", 400),
        {"lr": 1e-4, "width": 4, "depth": 1, "dropout": 0.9, **_SGD},
        {"training.max_epochs": 1},
    ),
    Case(
        "sgd-lr1e-5-digits",
        "underfitting",
        _sk("digits", 600),
        {"lr": 1e-5, "width": 64, **_BARE, **_SGD},
        {"training.max_epochs": 5, "training.batch_size": 32},
    ),
    Case(
        "tanh-d8-breast-cancer-slow-sgd",
        "underfitting",
        _sk("breast_cancer"),
        {"lr": 1e-3, "width": 64, "depth": 8, "activation": "tanh", **_BARE, **_SGD},
        {"training.max_epochs": 10, "training.batch_size": 32},
    ),
    Case(
        "weight-decay3-wine",
        "underfitting",
        _sk("wine"),
        {"lr": 1e-2, "width": 32, "weight_decay": 3.0, "dropout": 0.0, **_ADAM},
        {"training.max_epochs": 15, "training.batch_size": 16},
    ),
    # -- vanishing gradients: the loss flat at chance, the gradient gone before the input layer
    Case(
        "tanh-d12-digits-sgd",
        "vanishing_gradients",
        _sk("digits", 600),
        {"lr": 1e-3, "width": 32, "depth": 12, "activation": "tanh", **_BARE, **_SGD},
        {"training.max_epochs": 10, "training.batch_size": 32},
        fast=True,
    ),
    Case(
        "relu-d16-w16-digits-sgd",
        "vanishing_gradients",
        _sk("digits", 600),
        {"lr": 1e-2, "width": 16, "depth": 16, **_BARE, **_SGD},
        {"training.max_epochs": 10, "training.batch_size": 32},
    ),
    Case(
        "relu-d24-w8-wine-adam",
        "vanishing_gradients",
        _sk("wine"),
        {"lr": 1e-2, "width": 8, "depth": 24, **_BARE, **_ADAM},
        {"training.max_epochs": 10, "training.batch_size": 16},
    ),
    Case(
        "tanh-d20-w32-breast-cancer",
        "vanishing_gradients",
        _sk("breast_cancer"),
        {"lr": 1e-2, "width": 32, "depth": 20, "activation": "tanh", **_BARE, **_SGD},
        {"training.max_epochs": 8, "training.batch_size": 32},
    ),
    Case(
        "silu-d24-w16-iris-adam",
        "vanishing_gradients",
        _sk("iris"),
        {"lr": 1e-3, "width": 16, "depth": 24, "activation": "silu", **_BARE, **_ADAM},
        {"training.max_epochs": 15, "training.batch_size": 16},
    ),
    # -- diverged: the loss or the gradient blows up
    Case(
        "sgd-lr10-unnormalized-x1000",
        "diverged",
        _scaled(_sk("digits", 300), 1000.0),
        {"lr": 10.0, "width": 16, "batchnorm": "none", **_SGD},
        {"data.normalize": False},
        fast=True,
    ),
    Case(
        "sgd-lr5-normalized-d3",
        "diverged",
        _sk("digits", 600),
        {"lr": 5.0, "width": 64, "depth": 3, **_BARE, **_SGD},
        {"training.max_epochs": 5, "training.batch_size": 32},
    ),
    Case(
        "adam-lr1-breast-cancer-raw",
        "diverged",
        _sk("breast_cancer"),
        {"lr": 1.0, "width": 64, **_BARE, **_ADAM},
        {"data.normalize": False, "training.max_epochs": 5, "training.batch_size": 32},
    ),
    Case(
        "cnn-sgd-lr10-digits-images",
        "diverged",
        _sk("digits", 400, image=True),
        {"lr": 10.0, "width": 16, **_BARE, **_SGD},
        {"model.family": "cnn", "training.max_epochs": 4, "training.batch_size": 32},
    ),
    Case(
        "sgd-momentum0.99-lr2-wine",
        "diverged",
        _sk("wine"),
        {"lr": 2.0, "width": 32, **_BARE, "optimizer": {"categorical": ["sgd"]}, "momentum": 0.99},
        {"training.max_epochs": 10, "training.batch_size": 16},
    ),
    # -- data pipeline: the model fits its training rows, validation stays at chance
    Case(
        "shuffled-digits600-w256",
        "data_pipeline_suspect",
        _shuffled(_sk("digits", 600)),
        {"lr": 1e-3, "width": 256, **_BARE, **_ADAM},
        {"training.max_epochs": 20, "training.batch_size": 32},
        fast=True,
    ),
    Case(
        "shuffled-breast-cancer-w512",
        "data_pipeline_suspect",
        _shuffled(_sk("breast_cancer")),
        {"lr": 1e-3, "width": 512, "depth": 2, **_BARE, **_ADAM},
        {"training.max_epochs": 30, "training.batch_size": 32},
    ),
    Case(
        "shuffled-wine-w256",
        "data_pipeline_suspect",
        _shuffled(_sk("wine")),
        {"lr": 3e-3, "width": 256, **_BARE, **_ADAM},
        {"training.max_epochs": 60, "training.batch_size": 16},
    ),
    Case(
        "shuffled-digits-cnn-images",
        "data_pipeline_suspect",
        _shuffled(_sk("digits", 500, image=True)),
        {"lr": 3e-3, "width": 64, **_BARE, **_ADAM},
        {"model.family": "cnn", "training.max_epochs": 30, "training.batch_size": 32},
    ),
    Case(
        "rolled-labels-digits-w512",
        "data_pipeline_suspect",
        _rolled(_sk("digits", 700)),
        {"lr": 1e-3, "width": 512, **_BARE, **_ADAM},
        {"training.max_epochs": 15, "training.batch_size": 32},
    ),
    Case(
        "unrelated-labels-table-w256",
        "data_pipeline_suspect",
        _unrelated(400, 30, 4),
        {"lr": 3e-3, "width": 256, "depth": 2, **_BARE, **_ADAM},
        {"training.max_epochs": 30, "training.batch_size": 32},
    ),
    # -- stopped early: pruned while it was still learning, before it could be judged
    Case(
        "pruned-digits-slow-lr",
        "stopped_early",
        _sk("digits", 800),
        {"lr": {"float": [1e-4, 3e-2], "log": True}, "width": 32, **_ADAM},
        {**_PRUNE, "training.max_epochs": 6, "training.batch_size": 32},
        judged="pruned",
        fast=True,
    ),
    Case(
        "pruned-wine-widths",
        "stopped_early",
        _sk("wine"),
        {"lr": {"float": [3e-4, 3e-2], "log": True}, "width": {"int": [4, 64], "log": True}, **_ADAM},
        {**_PRUNE, "training.max_epochs": 8, "training.batch_size": 16},
        judged="pruned",
    ),
    Case(
        "pruned-breast-cancer-dropout",
        "stopped_early",
        _sk("breast_cancer"),
        {"lr": {"float": [1e-4, 1e-2], "log": True}, "dropout": {"float": [0.0, 0.6]}, "width": 32, **_ADAM},
        {**_PRUNE, "training.max_epochs": 6, "training.batch_size": 32},
        judged="pruned",
    ),
    Case(
        "pruned-cnn-digits-images",
        "stopped_early",
        _sk("digits", 600, image=True),
        {"lr": {"float": [1e-4, 1e-2], "log": True}, "width": 16, **_ADAM},
        {**_PRUNE, "model.family": "cnn", "training.max_epochs": 5, "training.batch_size": 32},
        judged="pruned",
    ),
    Case(
        "fold-pruned-digits",
        "stopped_early",
        _sk("digits", 800),
        {"lr": {"float": [1e-4, 1e-2], "log": True}, "width": 32, **_ADAM},
        {
            "budget.n_trials": 6,
            "fold_pruning": {"enabled": True},
            "data.folds": 3,
            "training.max_epochs": 4,
            "training.batch_size": 32,
        },
        judged="pruned",
    ),
    # -- healthy: must raise no alarm
    Case(
        "healthy-digits600-w32",
        "healthy",
        _sk("digits", 600),
        {"lr": 5e-3, "width": 32, "dropout": 0.1},
        {"training.max_epochs": 4, "training.batch_size": 32},
        fast=True,
    ),
    Case(
        "healthy-digits-w128-dropout-wd",
        "healthy",
        _sk("digits"),
        {"lr": 2e-3, "width": 128, "dropout": 0.2, "weight_decay": 1e-4, **_ADAM},
        {"training.max_epochs": 15, "training.batch_size": 64},
    ),
    Case(
        "healthy-breast-cancer-w32",
        "healthy",
        _sk("breast_cancer"),
        {"lr": 3e-3, "width": 32, "dropout": 0.1, **_ADAM},
        {"training.max_epochs": 10, "training.batch_size": 32},
    ),
    Case(
        "healthy-wine-w64",
        "healthy",
        _sk("wine"),
        {"lr": 1e-2, "width": 64, **_ADAM},
        {"training.max_epochs": 10, "training.batch_size": 16},
    ),
    Case(
        "healthy-iris-w16",
        "healthy",
        _sk("iris"),
        {"lr": 1e-2, "width": 16, **_ADAM},
        {"training.max_epochs": 30, "training.batch_size": 16},
    ),
    Case(
        "healthy-cnn-digits-images",
        "healthy",
        _sk("digits", image=True),
        {"lr": 3e-3, "width": 16, "dropout": 0.1, **_ADAM},
        {"model.family": "cnn", "training.max_epochs": 5, "training.batch_size": 64},
    ),
    Case(
        "healthy-noisy-binary2000-w32",
        "healthy",
        _noisy_binary(2000, 10, 0.5),
        {"lr": 3e-3, "width": 32, **_ADAM},
        {"training.max_epochs": 10, "training.batch_size": 64},
    ),
    # -- regression (task: regression, rmse): the same rules on the R² scale against the
    # training mean; thresholds calibrated on classification, checked here
    Case(
        "regression-memorize-diabetes-w256",
        "overfitting",
        _diabetes(),
        {"lr": 1e-3, "width": 256, "depth": 2, **_BARE, **_ADAM},
        {**_REGRESSION, "training.max_epochs": 100, "training.batch_size": 16},
    ),
    Case(
        "regression-memorize-diabetes-w128-d3",
        "overfitting",
        _diabetes(),
        {"lr": 3e-3, "width": 128, "depth": 3, **_BARE, **_ADAM},
        {**_REGRESSION, "training.max_epochs": 60, "training.batch_size": 16},
    ),
    Case(
        "regression-width4-dropout0.8",
        "underfitting",
        _diabetes(),
        {"lr": 1e-4, "width": 4, "dropout": 0.8, **_ADAM},
        {**_REGRESSION, "training.max_epochs": 5, "training.batch_size": 32},
    ),
    Case(
        "regression-sgd-lr0.5-raw-target",
        "diverged",
        _diabetes(),
        {"lr": 0.5, "width": 32, **_SGD},
        {**_REGRESSION, "data.target_transform": "none", "training.max_epochs": 5, "training.batch_size": 32},
        fast=True,
    ),
    Case(
        "regression-rolled-targets-w256",
        "data_pipeline_suspect",
        _diabetes(rolled=True),
        {"lr": 3e-3, "width": 256, "depth": 2, **_BARE, **_ADAM},
        {**_REGRESSION, "training.max_epochs": 60, "training.batch_size": 16},
        fast=True,
    ),
    Case(
        "regression-healthy-w8-wd",
        "healthy",
        _diabetes(),
        {"lr": 3e-3, "width": 8, "depth": 1, "weight_decay": 1e-2, **_ADAM},
        {**_REGRESSION, "training.max_epochs": 20, "training.batch_size": 32},
    ),
    Case(
        "regression-healthy-w16-early-stopping",
        "healthy",
        _diabetes(),
        {"lr": 5e-3, "width": 16, "depth": 1, "dropout": 0.2, **_ADAM},
        {
            **_REGRESSION,
            "training.max_epochs": 30,
            "training.batch_size": 32,
            "training.early_stopping": {"patience": 3},
        },
    ),
    Case(
        "regression-healthy-huber",
        "healthy",
        _diabetes(),
        {"lr": 3e-3, "width": 16, "depth": 1, "loss": {"categorical": ["huber"]}, **_ADAM},
        {**_REGRESSION, "training.max_epochs": 15, "training.batch_size": 32},
    ),
]
