"""Let Optuna's epoch pruner compare a trial with every trial that reached the step.

Optuna's Median and Percentile pruners compare a trial's learning curve with the
curves of COMPLETE trials only, and wait for ``n_startup_trials`` of them. In a
cross-validated study many trials end PRUNED: fold pruning stops them between folds,
after their first folds trained in full. The stricter the fold rule, the fewer trials
complete, and the longer the epoch pruner waits for its first ``n_startup_trials``.

``FinishedPeers`` wraps the configured Optuna pruner and shows it a view of the
study in which PRUNED trials count as peers too: at step ``s`` the pruner compares
with every finished trial that reported a value at ``s``. That is what Optuna's own
SuccessiveHalving and Hyperband pruners already do (their rungs hold every trial
that reached them, and Hyperband itself hands its brackets such a filtered view);
the pruning rule itself stays Optuna's. Chosen with ``fold_pruning.pruner_peers``.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.trial import TrialState

__all__ = ["FinishedPeers"]


class _PeersView:
    """A read-only stand-in for the study that answers "the complete trials" with
    the complete and the pruned ones; everything else is the study's own."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[optuna.trial.FrozenTrial]:
        if states is not None and TrialState.COMPLETE in states and TrialState.PRUNED not in states:
            states = (*tuple(states), TrialState.PRUNED)
        return self._study.get_trials(deepcopy=deepcopy, states=states)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


class FinishedPeers(BasePruner):
    """``inner``, comparing with every finished (complete or pruned) trial."""

    def __init__(self, inner: BasePruner) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        """The configured pruner's name, for pruning reasons."""
        return type(self.inner).__name__

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return bool(self.inner.prune(_PeersView(study), trial))  # type: ignore[arg-type]
