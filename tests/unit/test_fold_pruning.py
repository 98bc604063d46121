"""The between-fold rule (``objectives.cv.fold_verdict``) on made-up fold scores."""

from __future__ import annotations

import pytest

from objectives.cv import fold_verdict

BEST = [0.95, 0.97, 0.96, 0.94, 0.98]  # pstdev 0.01414 → margin 2 x std = 0.0283


def test_clearly_worse_after_one_fold_is_stopped_with_a_reason() -> None:
    why = fold_verdict([0.90], BEST, "balanced_accuracy", 2.0)
    assert why is not None
    assert "after 1 fold(s) mean val balanced_accuracy 0.9000 trails the best trial's 0.9500" in why
    assert "2 x its fold std (0.0283)" in why


def test_within_the_margin_is_not_stopped() -> None:
    assert fold_verdict([0.93], BEST, "balanced_accuracy", 2.0) is None  # 0.02 < 0.0283
    assert fold_verdict([0.93], BEST, "balanced_accuracy", 1.0) is not None  # 0.02 > 0.0141


def test_one_better_fold_blocks_the_stop_however_large_the_mean_gap() -> None:
    # fold 1 beats the best trial's fold 1: not "worse on every fold"
    assert fold_verdict([0.50, 0.98], BEST, "accuracy", 2.0) is None
    assert fold_verdict([0.50, 0.90], BEST, "accuracy", 2.0) is not None


def test_ties_are_not_worse() -> None:
    assert fold_verdict([0.95, 0.90], BEST, "accuracy", 0.0) is None


def test_minimized_metrics_flip_the_direction() -> None:
    best = [0.20, 0.22, 0.18]
    assert fold_verdict([0.40], best, "log_loss", 2.0) is not None  # higher loss: worse
    assert fold_verdict([0.10], best, "log_loss", 2.0) is None


def test_a_perfect_best_trial_still_has_a_floor_on_the_margin() -> None:
    best = [1.0, 1.0, 1.0]  # std 0: the margin floors at margin x 1e-3
    assert fold_verdict([0.9995], best, "accuracy", 2.0) is None
    assert fold_verdict([0.997], best, "accuracy", 2.0) is not None


def test_margin_zero_stops_any_trial_worse_on_every_fold() -> None:
    assert fold_verdict([0.949, 0.969], BEST, "accuracy", 0.0) is not None


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_compares_only_the_folds_finished_so_far(n: int) -> None:
    scores = [s - 0.05 for s in BEST[:n]]
    why = fold_verdict(scores, BEST, "accuracy", 2.0)
    assert why is not None and f"after {n} fold(s)" in why
