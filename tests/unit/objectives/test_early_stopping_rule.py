"""Early stopping on constructed curves: patience, min_delta, restore_best, the stop and
best epochs recorded, the refit's epochs; its settings in the study file and the space."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from objectives.early_stopping import EarlyStopping, FoldWatch, refit_epochs
from tests.conftest import tiny_study
from tuner.config import load_config
from tuner.errors import ConfigError
from tuner.views.diagnose import Curves, diagnose


def feed(rule: EarlyStopping, val_loss: list[float], train_loss: list[float] | None = None) -> FoldWatch:
    """Run a watch over a curve the way the objective does: stop at the first True."""
    watch = rule.watch(0)
    for epoch, loss in enumerate(val_loss):
        train = train_loss[epoch] if train_loss else 1.0 / (epoch + 1)
        score = 1.0 - loss  # a score that mirrors the loss, to see which epoch is scored
        if watch.update(epoch, train, loss, score):
            break
    return watch


def test_stops_after_patience_epochs_without_improvement() -> None:
    w = feed(EarlyStopping(patience=3), [1.0, 0.8, 0.6, 0.65, 0.7, 0.62, 0.5, 0.4])
    assert w.stopped and w.epochs == 6  # epochs 3, 4, 5 did not beat 0.6 (epoch 2)
    assert w.best_epoch == 2
    assert w.record()["epochs"] == 6 and w.record()["best_epoch"] == 2 and w.record()["stopped"]


def test_patience_one_stops_at_the_first_non_improvement() -> None:
    w = feed(EarlyStopping(patience=1), [1.0, 0.9, 0.95, 0.1])
    assert (w.stopped, w.epochs, w.best_epoch) == (True, 3, 1)


def test_a_curve_that_keeps_improving_runs_to_the_end() -> None:
    w = feed(EarlyStopping(patience=2), [1.0, 0.9, 0.8, 0.7, 0.6])
    assert not w.stopped and w.epochs == 5 and w.best_epoch == 4


def test_min_delta_ignores_improvements_smaller_than_it() -> None:
    losses = [1.0, 0.95, 0.92, 0.91, 0.90, 0.89]
    assert not feed(EarlyStopping(patience=3, min_delta=0.0), losses).stopped
    w = feed(EarlyStopping(patience=3, min_delta=0.1), losses)
    # 0.95 .. 0.91 are within 0.1 of 1.0: no improvement counts after epoch 0
    assert w.stopped and w.epochs == 4 and w.best_epoch == 0


def test_restore_best_scores_the_best_epoch_else_the_last() -> None:
    losses = [1.0, 0.5, 0.7, 0.8]
    assert feed(EarlyStopping(patience=2, restore_best=True), losses).score() == pytest.approx(0.5)
    assert feed(EarlyStopping(patience=2, restore_best=False), losses).score() == pytest.approx(0.2)


def test_non_finite_losses_never_become_the_best() -> None:
    w = feed(EarlyStopping(patience=2), [float("nan"), 0.9, float("inf"), 0.95])
    assert w.best_epoch == 1 and w.stopped and w.epochs == 4


def test_the_record_keeps_the_losses_at_the_best_and_the_last_epoch() -> None:
    w = feed(EarlyStopping(patience=2), [1.0, 0.5, 0.6, 0.7], train_loss=[2.0, 1.0, 0.5, 0.25])
    rec = w.record()
    assert rec["val_loss_best"] == 0.5 and rec["val_loss_last"] == 0.7
    assert rec["train_loss_best"] == 1.0 and rec["train_loss_last"] == 0.25


def test_refit_epochs_is_the_median_best_epoch_count_capped() -> None:
    folds: list[dict[str, Any]] = [{"best_epoch": b} for b in (3, 5, 4, 9, 4)]
    n, why = refit_epochs(folds, 30)
    assert n == 5  # best epochs 4, 6, 5, 10, 5 as counts: median 5
    assert "median" in why and "4, 6, 5, 10, 5" in why
    assert refit_epochs([{"best_epoch": 1}, {"best_epoch": 2}], 30)[0] == 3  # median 2.5 rounds up
    assert refit_epochs([{"best_epoch": 40}], 30)[0] == 30
    assert refit_epochs([], 12) == (12, "max_epochs: no fold recorded its epochs")
    folds_trained: list[dict[str, Any]] = [{"best_epoch": 2, "epochs": e} for e in (5, 9, 6)]
    assert refit_epochs(folds_trained, 30, restore_best=False)[0] == 6


def test_resolve_takes_the_section_then_the_searched_values() -> None:
    class Section:
        patience, min_delta, restore_best = 4, 0.01, False

    assert EarlyStopping.resolve(None, {"lr": 0.1}) is None
    assert EarlyStopping.resolve(Section, {}) == EarlyStopping(4, 0.01, False)
    got = EarlyStopping.resolve(Section, {"early_stopping.patience": 7, "early_stopping.min_delta": 0.0})
    assert got == EarlyStopping(7, 0.0, False)
    # searching a setting turns early stopping on, with the defaults for the rest
    assert EarlyStopping.resolve(None, {"early_stopping.patience": 2}) == EarlyStopping(2, 0.0, True)


def _load(tmp_path: Path, doc: dict[str, Any]):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_config(path)


def test_study_file_early_stopping_defaults_off_and_takes_true_false_or_a_mapping(tmp_path: Path) -> None:
    doc = tiny_study()
    doc["training"].pop("early_stopping", None)
    assert _load(tmp_path, doc).training.early_stopping is None
    es = _load(tmp_path, tiny_study(**{"training.early_stopping": True})).training.early_stopping
    assert es is not None and (es.patience, es.min_delta, es.restore_best) == (3, 0.0, True)
    assert _load(tmp_path, tiny_study(**{"training.early_stopping": False})).training.early_stopping is None
    custom = _load(
        tmp_path, tiny_study(**{"training.early_stopping": {"patience": 5, "restore_best": False}})
    )
    assert custom.training.early_stopping.patience == 5
    assert custom.training.early_stopping.restore_best is False


@pytest.mark.parametrize(
    "section, space, expected",
    [
        ({"patience": 0}, None, "patience"),
        ({"patience": 3, "min_delta": -0.1}, None, "min_delta"),
        ({"patince": 3}, None, "patince"),
        (False, {"early_stopping.patience": {"int": [2, 5]}}, "training.early_stopping is false"),
        ({"patience": 3}, {"early_stopping.patience": {"int": [0, 5]}}, "early_stopping.patience must be"),
        (None, {"early_stopping.patience": {"int": [0, 5]}}, "early_stopping.patience must be"),
        (None, {"early_stopping.patience": {"float": [1.5, 5]}}, "early_stopping.patience must be"),
        (None, {"early_stopping.min_delta": {"float": [-1, 0.1]}}, "early_stopping.min_delta must be"),
        (None, {"early_stopping.patiense": {"int": [1, 3]}}, "did you mean 'early_stopping.patience'"),
    ],
)
def test_bad_early_stopping_settings_name_the_key(
    tmp_path: Path, section: Any, space: dict[str, Any] | None, expected: str
) -> None:
    doc = tiny_study()
    if section is not None:
        doc["training"]["early_stopping"] = section
    doc["search_space"].update(space or {})
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace("'", "'")):
        _load(tmp_path, doc)


def test_searched_patience_is_accepted(tmp_path: Path) -> None:
    doc = tiny_study()
    doc["search_space"]["early_stopping.patience"] = {"int": [2, 6]}
    doc["search_space"]["early_stopping.min_delta"] = {"float": [0.0, 0.01]}
    cfg = _load(tmp_path, doc)
    assert "early_stopping.patience" in cfg.search_space.names


def _curves(n: int) -> Curves:
    return Curves(
        train_score=[0.5 + 0.05 * i for i in range(n)],
        val_score=[0.5 + 0.04 * i for i in range(n)],
        train_loss=[1.0 - 0.05 * i for i in range(n)],
        val_loss=[1.0 - 0.04 * i for i in range(n)],
        grad_max=[2.0] * n,
        folds=2,
    )


def test_the_diagnosis_names_over_fitting_that_early_stopping_caught() -> None:
    folds = [
        {
            "epochs": 8,
            "best_epoch": 4,
            "stopped": True,
            "val_loss_best": 0.20,
            "val_loss_last": 0.26,
            "train_loss_best": 0.10,
            "train_loss_last": 0.03,
        },
        {"epochs": 10, "best_epoch": 9, "stopped": False, "val_loss_best": 0.2, "val_loss_last": 0.2},
    ]
    name, ev, text = diagnose(_curves(10), "accuracy", 0.1, fold_epochs=folds)
    assert ev["early_stopping"] == {"folds_stopped": [0], "best_epochs": [4, 9], "overfitting_caught": [0]}
    assert "early stopping caught over-fitting in 1/2 fold(s)" in text
    assert "rose 0.2 → 0.26 (+30%) after its best epoch 5" in text


def test_a_fold_stopped_on_a_plateau_is_not_called_over_fitting() -> None:
    plateau = {
        "epochs": 8,
        "best_epoch": 4,
        "stopped": True,
        "val_loss_best": 0.20,
        "val_loss_last": 0.201,
        "train_loss_best": 0.10,
        "train_loss_last": 0.09,
    }
    noisy = {**plateau, "val_loss_last": 0.3, "train_loss_last": 0.2}  # train loss rose too: too high an lr
    name, ev, text = diagnose(_curves(8), "accuracy", 0.1, fold_epochs=[plateau, noisy])
    assert ev["early_stopping"]["folds_stopped"] == [0, 1]
    assert ev["early_stopping"]["overfitting_caught"] == []
    assert "early stopping" not in text
