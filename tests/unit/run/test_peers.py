"""``tuner.run.peers.FinishedPeers``: Optuna's epoch pruner with pruned trials as peers."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from tuner.run.peers import FinishedPeers


def _study_with_mostly_pruned_trials() -> optuna.Study:
    """One complete trial and four stopped between folds: all reported steps 0..5."""
    study = optuna.create_study(direction="maximize")
    curves = {TrialState.COMPLETE: [0.9], TrialState.PRUNED: [0.8, 0.85, 0.88, 0.92]}
    for state, finals in curves.items():
        for final in finals:
            study.add_trial(
                create_trial(
                    state=state,
                    value=final if state == TrialState.COMPLETE else None,
                    params={"x": 0.5},
                    distributions={"x": FloatDistribution(0, 1)},
                    intermediate_values={s: final * (0.5 + s / 10) for s in range(6)},
                )
            )
    return study


def _weak_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    for s in range(6):
        trial.report(0.3 + s / 100, s)
    return study.trials[trial.number]  # the frozen trial, as a pruner is handed it


def test_pruned_trials_count_as_peers_and_toward_startup() -> None:
    study = _study_with_mostly_pruned_trials()
    frozen = _weak_trial(study)
    median = optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=3)
    assert median.prune(study, frozen) is False  # Optuna alone: 1 complete trial < 4, waits
    assert FinishedPeers(median).prune(study, frozen) is True  # 5 finished peers: clearly weak


def test_a_strong_trial_is_kept_and_the_name_is_the_wrapped_pruners() -> None:
    study = _study_with_mostly_pruned_trials()
    trial = study.ask()
    for s in range(6):
        trial.report(0.99, s)
    frozen = study.trials[trial.number]
    wrapped = FinishedPeers(optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=3))
    assert wrapped.prune(study, frozen) is False
    assert wrapped.name == "MedianPruner"


def test_the_view_leaves_other_questions_to_the_study() -> None:
    study = _study_with_mostly_pruned_trials()
    seen: dict[str, object] = {}

    class Probe(optuna.pruners.BasePruner):
        def prune(self, s, trial):  # type: ignore[no-untyped-def]
            seen["complete"] = len(s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            seen["all"] = len(s.get_trials(deepcopy=False))
            seen["direction"] = s.direction
            seen["best"] = s.best_trial.number
            return False

    FinishedPeers(Probe()).prune(study, _weak_trial(study))
    assert seen == {"complete": 5, "all": 6, "direction": optuna.study.StudyDirection.MAXIMIZE, "best": 0}
