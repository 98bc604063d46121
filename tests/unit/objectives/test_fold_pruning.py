"""The between-fold rule (``objectives.cv.fold_verdict``) on made-up fold scores."""

from __future__ import annotations

import pytest

from objectives.cv import fold_verdict

BEST = [0.95, 0.97, 0.96, 0.94, 0.98]  # pstdev 0.01414; after 1 of 5 folds se = 0.01414 x sqrt(4/5)


def test_clearly_worse_after_one_fold_is_stopped_with_a_reason() -> None:
    why = fold_verdict([0.90], BEST, "balanced_accuracy", 2.0)
    assert why is not None
    assert "after 1 fold(s) mean val balanced_accuracy 0.9000 trails the best trial's 0.9500" in why
    assert "by 0.0500, more than 2 standard error(s) (0.0253) of a 5-fold mean" in why


def test_within_the_margin_is_not_stopped() -> None:
    assert fold_verdict([0.93], BEST, "balanced_accuracy", 2.0) is None  # 0.02 < 0.0253
    assert fold_verdict([0.93], BEST, "balanced_accuracy", 1.0) is not None  # 0.02 > 0.0126


def test_the_paired_spread_of_other_trials_replaces_the_best_trials_own_spread() -> None:
    # Other trials differ from the best by a steady amount per fold (sd 0.005): the
    # folds' difficulty cancels, so a 0.02 gap after one fold is now clear.
    assert fold_verdict([0.93], BEST, "accuracy", 2.0) is None
    assert fold_verdict([0.93], BEST, "accuracy", 2.0, diff_sd=0.005) is not None


def test_the_standard_error_shrinks_as_folds_finish() -> None:
    behind = [s - 0.01 for s in BEST]
    assert fold_verdict(behind[:1], BEST, "accuracy", 1.0) is None  # se 0.0126
    assert fold_verdict(behind[:4], BEST, "accuracy", 1.0) is not None  # se 0.0032


def test_better_on_average_is_never_stopped() -> None:
    # one fold far worse, the other far better: the mean difference decides, not the sign
    assert fold_verdict([0.93, 1.0], BEST, "accuracy", 0.0) is None  # -0.02, +0.03: mean +0.005
    assert fold_verdict([0.90, 1.0], BEST, "accuracy", 0.0) is not None  # -0.05, +0.03: -0.01


def test_ties_are_not_worse() -> None:
    assert fold_verdict([0.95, 0.97], BEST, "accuracy", 0.0) is None


def test_minimized_metrics_flip_the_direction() -> None:
    best = [0.20, 0.22, 0.18]
    assert fold_verdict([0.40], best, "log_loss", 2.0) is not None  # higher loss: worse
    assert fold_verdict([0.10], best, "log_loss", 2.0) is None


def test_a_perfect_best_trial_still_has_a_floor_on_the_spread() -> None:
    best = [1.0, 1.0, 1.0]  # std 0: floored at 1e-3, se after 1 of 3 folds 0.00082
    assert fold_verdict([0.9995], best, "accuracy", 2.0) is None
    assert fold_verdict([0.997], best, "accuracy", 2.0) is not None


def test_margin_zero_stops_any_trial_worse_on_average() -> None:
    assert fold_verdict([0.949, 0.969], BEST, "accuracy", 0.0) is not None


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_compares_only_the_folds_finished_so_far(n: int) -> None:
    scores = [s - 0.05 for s in BEST[:n]]
    why = fold_verdict(scores, BEST, "accuracy", 2.0)
    assert why is not None and f"after {n} fold(s)" in why


def test_min_gain_stops_a_trial_that_could_at_best_tie() -> None:
    # sd 0.01: after 1 of 5 folds se = 0.00894; a K-fold difference resolves 0.01/sqrt(5) = 0.00447
    level = [0.951]  # +0.001 on fold 0: could be up to +0.0099 after 1 se
    assert fold_verdict(level, BEST, "accuracy", 1.0, diff_sd=0.01) is None  # min_gain 0: it may win
    assert (
        fold_verdict(level, BEST, "accuracy", 1.0, diff_sd=0.01, min_gain=2.5) is not None
    )  # 0.0099 < 0.0112
    assert fold_verdict(level, BEST, "accuracy", 1.0, diff_sd=0.01, min_gain=2.0) is None  # 0.0099 > 0.0089


def test_min_gain_reason_says_what_gain_was_wanted() -> None:
    why = fold_verdict([0.951], BEST, "accuracy", 1.0, diff_sd=0.01, min_gain=2.5)
    assert why is not None
    assert "is +0.0010 against the best trial's 0.9500 on the same folds" in why
    assert "at best a near-tie" in why and "0.0112 gain worth its remaining folds" in why
    assert "min_gain 2.5 standard error(s) of a 5-fold difference" in why
    # a trial plainly behind is said to trail, whatever min_gain asks
    behind = fold_verdict([0.90], BEST, "accuracy", 1.0, diff_sd=0.01, min_gain=2.5)
    assert behind is not None and "trails the best trial's 0.9500" in behind


def test_min_gain_never_stops_a_clear_winner() -> None:
    ahead = [s + 0.03 for s in BEST[:2]]
    assert fold_verdict(ahead, BEST, "accuracy", 0.0, diff_sd=0.01, min_gain=3.0) is None
