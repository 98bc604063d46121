"""The study's best trial read incrementally (tuner.run.best.StudyBest): the same
best value as Optuna's and the same fold-pruning reference as rebuilding it from every
trial, while a read folds in only the trials finished since the last one."""

from __future__ import annotations

import random
import statistics

import optuna
import pytest

from objectives import cv
from tuner.run.best import StudyBest

optuna.logging.set_verbosity(optuna.logging.WARNING)
S = optuna.trial.TrialState


def _rebuilt(study: optuna.Study) -> tuple[float | None, cv.Reference | None]:
    """Best value and reference from every trial, as tuner built them before (exact
    variances from ``statistics``)."""
    try:
        best = study.best_trial
    except ValueError:
        return None, None
    scores = best.user_attrs.get("fold_scores")
    if not scores:
        return best.value, None
    variances = [
        statistics.variance([s - t for s, t in zip(other, scores, strict=False)])
        for t in study.get_trials(deepcopy=False)
        if t.state in (S.COMPLETE, S.PRUNED) and t.number != best.number
        for other in [t.user_attrs.get("fold_scores") or []]
        if len(other) >= 2
    ]
    sd = statistics.fmean(variances) ** 0.5 if len(variances) >= 2 else None
    return best.value, cv.Reference(best.number, list(scores), sd)


def _finish(study: optuna.Study, trial: optuna.Trial, rnd: random.Random) -> None:
    """End ``trial`` complete (5 folds), pruned (its first 1-4 folds) or failed."""
    kind = rnd.choice(["complete", "complete", "pruned", "failed"])
    folds = [rnd.uniform(0.5, 1.0) for _ in range(5 if kind == "complete" else rnd.randint(1, 4))]
    trial.set_user_attr("fold_scores", folds)
    if kind == "complete":
        study.tell(trial, sum(folds) / len(folds))
    else:
        study.tell(trial, state=S.PRUNED if kind == "pruned" else S.FAIL)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_reads_agree_with_rebuilding_from_every_trial(direction: str) -> None:
    rnd = random.Random(direction)
    study = optuna.create_study(direction=direction)
    view = StudyBest(study)
    assert view.best_value() is None and view.reference() is None
    running: list[optuna.Trial] = []
    for _ in range(60):
        running.append(study.ask())
        if rnd.random() < 0.7:  # trials finish out of order, as with other workers
            _finish(study, running.pop(rnd.randrange(len(running))), rnd)
        value, ref = _rebuilt(study)
        got = view.reference()
        assert view.best_value() == value
        if ref is None:
            assert got is None
        else:
            assert got is not None and got.number == ref.number and got.fold_scores == ref.fold_scores
            if ref.diff_sd is None:
                assert got.diff_sd is None
            else:
                assert got.diff_sd == pytest.approx(ref.diff_sd, rel=1e-9)
    assert view.reference() is not None and view.reference().diff_sd is not None  # type: ignore[union-attr]


def test_a_read_folds_in_only_the_trials_finished_since_the_last() -> None:
    rnd = random.Random(1)
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=2.0, user_attrs={"fold_scores": [2.0, 2.0]}))
    for _ in range(200):
        folds = [rnd.uniform(0.0, 1.0) for _ in range(2)]
        study.add_trial(optuna.trial.create_trial(value=sum(folds) / 2, user_attrs={"fold_scores": folds}))
    view = StudyBest(study)
    view.reference()
    assert view.folded == 201
    pending = study.ask()  # a trial still running is looked at again, not folded in
    for _ in range(3):
        view.reference()
    assert view.folded == 201
    study.tell(pending, 0.5)
    calls = []
    real = cv.fold_diff_variance

    def counting(scores: list[float], best: list[float]) -> float | None:
        calls.append(1)
        return real(scores, best)

    import tuner.run.best as best_module

    best_module.fold_diff_variance = counting  # type: ignore[assignment]
    try:
        view.reference()
        assert view.folded == 202 and calls == []  # no fold scores: nothing to add
        study.add_trial(optuna.trial.create_trial(value=0.1, user_attrs={"fold_scores": [0.1, 0.2]}))
        view.reference()
        assert len(calls) == 1  # the best did not change: one new variance
        study.add_trial(optuna.trial.create_trial(value=3.0, user_attrs={"fold_scores": [3.0, 3.0]}))
        assert view.reference().number == 203  # type: ignore[union-attr]
        assert len(calls) == 1 + 202  # a new best: every other trial's again
    finally:
        best_module.fold_diff_variance = real  # type: ignore[assignment]


def test_of_equal_values_the_first_stays_the_best() -> None:
    study = optuna.create_study(direction="minimize")
    for _ in range(3):
        study.add_trial(optuna.trial.create_trial(value=0.25, user_attrs={"fold_scores": [0.2, 0.3]}))
    ref = StudyBest(study).reference()
    assert ref is not None and ref.number == 0 and ref.diff_sd is not None


def test_fold_diff_variance_is_the_sample_variance() -> None:
    a, b = [0.9, 0.7, 0.8], [0.85, 0.8, 0.75, 0.9]
    want = statistics.variance([x - y for x, y in zip(a, b, strict=False)])
    assert cv.fold_diff_variance(a, b) == pytest.approx(want, rel=1e-12)
    assert cv.fold_diff_variance([0.9], b) is None


BEST = [0.95, 0.97, 0.96, 0.94, 0.98]


def _reference(best: list[float], others: list[tuple[list[float], optuna.trial.TrialState]]) -> cv.Reference:
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=1.0, user_attrs={"fold_scores": best}))
    for scores, state in others:
        value = 0.5 if state == S.COMPLETE else None
        study.add_trial(
            optuna.trial.create_trial(state=state, value=value, user_attrs={"fold_scores": scores})
        )
    ref = StudyBest(study).reference()
    assert ref is not None and ref.number == 0
    return ref


def test_the_spread_pools_the_other_trials_differences() -> None:
    a = [s - 0.01 for s in BEST]  # differences -0.01 on every fold: variance 0
    b = [0.94, 0.97, 0.94, 0.94, 0.97]  # differences -0.01, 0, -0.02, 0, -0.01
    var_b = statistics.variance([-0.01, 0.0, -0.02, 0.0, -0.01])
    assert _reference(BEST, [(a, S.COMPLETE), (b, S.COMPLETE)]).diff_sd == pytest.approx((var_b / 2) ** 0.5)
    # a pruned trial's first folds count too
    assert _reference(BEST, [(a, S.COMPLETE), (b[:2], S.PRUNED)]).diff_sd is not None


def test_the_spread_needs_two_other_trials_with_two_folds() -> None:
    assert _reference(BEST, []).diff_sd is None
    # one fold says nothing of spread; a failed trial does not count
    assert _reference(BEST, [(BEST[:1], S.PRUNED), ([0.9, 0.9], S.PRUNED)]).diff_sd is None
    assert _reference(BEST, [([0.9, 0.8], S.FAIL), ([0.9, 0.9], S.PRUNED)]).diff_sd is None
