"""Early stopping: end a fold when its validation loss has stopped improving.

It watches the fold's **validation loss**, not the study's metric: the loss moves with
every epoch (accuracy-family metrics on a few hundred validation rows move in steps of
one row and plateau, so "no improvement" would fire on ties), and a rising validation
loss while the training loss falls is the over-fitting signal itself. With
``log_loss`` as the metric the two are the same number.

A fold stops after ``patience`` epochs in a row without a validation loss below
``best - min_delta``; with ``restore_best`` it is scored at its best epoch (the one
with the lowest validation loss), as if its weights had been restored there.

The refit has no validation split, so it cannot stop itself: it trains for
``refit_epochs(best epochs of the best trial's folds)`` epochs (``refit_epochs``).

Pure (no torch, no Optuna), so tests and the benchmark can replay it on curves.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from search_spaces.params import ES_PREFIX as PREFIX  # the searchable settings are declared there

__all__ = [
    "EarlyStopping",
    "FoldWatch",
    "StopFold",
    "refit_epochs",
]


class StopFold(Exception):  # noqa: N818 -- a signal, like StopIteration, not an error
    """Raised from the epoch callback to end a fold early (caught by the objective).

    A custom objective (``objective.function``) must let it propagate, like
    ``optuna.TrialPruned``."""

    def __init__(self, watch: FoldWatch) -> None:
        super().__init__(watch.reason())
        self.watch = watch


@dataclass(frozen=True)
class EarlyStopping:
    """One trial's early-stopping settings (the study file's, with searched values)."""

    patience: int = 3
    min_delta: float = 0.0
    restore_best: bool = True

    @classmethod
    def resolve(cls, section: Any, params: Mapping[str, Any]) -> EarlyStopping | None:
        """``training.early_stopping`` (None: off) with the trial's searched
        ``early_stopping.*`` values on top. Searching a setting turns it on."""
        searched = {k[len(PREFIX) :]: v for k, v in params.items() if k.startswith(PREFIX)}
        if section is None and not searched:
            return None
        base = cls() if section is None else cls(section.patience, section.min_delta, section.restore_best)
        patience = int(searched.get("patience", base.patience))
        min_delta = float(searched.get("min_delta", base.min_delta))
        return cls(patience, min_delta, base.restore_best)

    def watch(self, fold: int) -> FoldWatch:
        return FoldWatch(self, fold)


Row = tuple[int, float, float, float]  # (epoch, train loss, validation loss, validation score)


@dataclass
class FoldWatch:
    """What early stopping has seen of one fold: feed it every epoch with ``update``.
    It keeps the best epoch's row and the last one: all that scoring and the record need."""

    rule: EarlyStopping
    fold: int
    epochs: int = 0  # epochs seen
    stopped: bool = False
    best: Row | None = None  # the epoch with the lowest finite validation loss
    last: Row | None = None

    @property
    def best_epoch(self) -> int:
        return self.best[0] if self.best else -1

    def update(self, epoch: int, train_loss: float, val_loss: float, val_score: float) -> bool:
        """Record an epoch; True when the fold should stop now."""
        self.last = (epoch, train_loss, val_loss, val_score)
        self.epochs += 1
        best_loss = self.best[2] if self.best else math.inf
        if math.isfinite(val_loss) and val_loss < best_loss - self.rule.min_delta:
            self.best = self.last  # (the first finite loss always is)
        since = epoch - self.best[0] if self.best else self.epochs
        self.stopped = since >= self.rule.patience
        return self.stopped

    def score(self) -> float:
        """The fold's validation score: at its best epoch with ``restore_best``, else the last."""
        row = self.best if self.rule.restore_best and self.best else self.last
        assert row is not None, "score() before any epoch"
        return row[3]

    def reason(self) -> str:
        assert self.last is not None, "reason() before any epoch"
        best = f"{self.best[2]:.4g} (epoch {self.best[0] + 1})" if self.best else "no finite loss"
        return (
            f"fold {self.fold}: validation loss {self.last[2]:.4g} at epoch {self.last[0] + 1} has not "
            f"improved on {best} for {self.rule.patience} epoch(s)"
        )

    def record(self) -> dict[str, Any]:
        """What the trial stores per fold (user attr ``fold_epochs``): epochs trained, the
        best epoch (0-based, as on the curves), whether it stopped early, and the
        losses at the best and the last epoch (the over-fitting evidence)."""
        out: dict[str, Any] = {"epochs": self.epochs, "best_epoch": self.best_epoch, "stopped": self.stopped}
        if self.best and self.last:
            out.update(
                train_loss_best=_r(self.best[1]),
                train_loss_last=_r(self.last[1]),
                val_loss_best=_r(self.best[2]),
                val_loss_last=_r(self.last[2]),
            )
        return out


def _r(x: float) -> float | None:
    return round(float(x), 6) if math.isfinite(x) else None


def refit_epochs(
    folds: Sequence[Mapping[str, Any]], max_epochs: int, restore_best: bool = True
) -> tuple[int, str]:
    """How many epochs the refit trains, and why, from the best trial's ``fold_epochs``.

    The median over the folds of the epoch each fold was scored at, as a count: its
    best epoch + 1 with ``restore_best``, else the epochs it trained (it was scored at
    its last); rounded up, at least 1 and at most ``max_epochs``. Not scaled to the refit's larger training set:
    with K folds it has K/(K-1) times the rows (1.25x with 5 folds), so the same
    number of epochs takes that many more optimizer steps; Goodfellow et al. (Deep
    Learning, 7.8) give "the same number of epochs" and "the same number of steps"
    as the two usual choices without a winner, and epochs is the one a user can
    check against the curves. The median ignores one fold that stopped oddly.
    """
    if restore_best:
        counts = [int(f["best_epoch"]) + 1 for f in folds if int(f.get("best_epoch", -1)) >= 0]
        what = "best epochs"
    else:
        counts = [int(f["epochs"]) for f in folds if int(f.get("epochs", 0)) > 0]
        what = "epochs trained (each was scored at its last)"
    if not counts:
        return max_epochs, "max_epochs: no fold recorded its epochs"
    n = min(max(1, math.ceil(statistics.median(counts))), max_epochs)
    shown = ", ".join(str(b) for b in counts)
    return n, f"the median of the best trial's folds' {what} ({shown}; max_epochs {max_epochs})"
