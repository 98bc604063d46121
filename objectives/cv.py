"""The cross-validated objective: K stratified folds, a fresh model per fold.

It receives what it needs (data, fold indices, a reporter) and returns the mean
validation score or raises ``optuna.TrialPruned`` with a recorded reason. It never
sees the test split, the storage or MLflow.

Reporting scheme: the validation score of fold ``k`` after epoch ``e`` is reported
at step ``k * max_epochs + e``. Every trial uses the same folds, so a step means the
same thing in every trial and Optuna's pruners compare like with like, in every
fold. A fold that early stopping ends at epoch ``e`` reports nothing at its later
steps (so steps stay unique: the next fold starts at ``(k + 1) * max_epochs``).
With Optuna's ``WilcoxonPruner`` the trial reports one value per fold instead (the
fold's score at step ``k``): that pruner compares trials instance by instance.
Between folds, the trial's scores are compared fold by fold with the best
trial's scores on the same folds (``fold_pruning``, ``fold_verdict``).
"""

from __future__ import annotations

import functools
import statistics
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from objectives.dataset import Dataset
from objectives.early_stopping import EarlyStopping, FoldWatch, StopFold
from objectives.fold import train_fold
from objectives.guard import Diverged, DivergenceGuard
from objectives.lazy import device_rows
from objectives.metrics import DIRECTION
from objectives.models import ModelSpec, input_stats
from objectives.splits import Splits
from objectives.training import EpochRecord
from search_spaces.params import HParams

if TYPE_CHECKING:
    from tuner.config import StudyConfig

__all__ = [
    "CrossValidatedObjective",
    "Reference",
    "TrialReporter",
    "fold_seed",
    "fold_diff_variance",
    "fold_verdict",
    "train_final",
]


class TrialReporter(Protocol):
    """What the objective tells the outside world (tracking implements it)."""

    def epoch(self, record: EpochRecord, step: int) -> None: ...

    def fold_done(self, fold: int, score: float) -> None: ...


@dataclass(frozen=True)
class Reference:
    """The best finished trial so far: what fold pruning compares against."""

    number: int
    fold_scores: list[float]
    diff_sd: float | None = None  # spread of other trials' per-fold differences from it


def fold_seed(seed: int, trial_number: int, fold: int) -> int:
    """A reproducible seed per (study seed, trial, fold)."""
    return zlib.crc32(f"{seed}/{trial_number}/{fold}".encode()) & 0x7FFFFFFF


def _report_diverged_epoch(e: Diverged, fold: int, epochs: int, reporter: TrialReporter) -> None:
    """Log the unfinished epoch's gradient norms: they show the explosion. No evaluation
    ran, so its scores are NaN, which trackers skip."""
    if e.norms is None or not e.norms.count or e.epoch is None:
        return
    nan = float("nan")
    record = EpochRecord(
        fold=fold,
        epoch=e.epoch,
        train_loss=nan,
        train_score=nan,
        val_loss=None,
        val_score=None,
        grad_norm_mean=e.norms.mean,
        grad_norm_max=e.norms.max,
        seconds=nan,
    )
    reporter.epoch(record, fold * epochs + e.epoch)


def _prune(trial: Any, by: str, reason: str) -> None:
    import optuna

    trial.set_user_attr("pruned_by", by)
    trial.set_user_attr("pruned_reason", reason)
    raise optuna.TrialPruned(reason)


class _Reports:
    """What one trial tells the outside world and its pruner, epoch by epoch and fold by fold.

    Each epoch goes to the reporter (MLflow, the progress line) and to early stopping's
    watch; to Optuna at step ``fold * max_epochs + epoch``, or with ``WilcoxonPruner``
    (which compares trials instance by instance) once per fold at step ``fold``."""

    def __init__(self, trial: Any, reporter: TrialReporter, epochs: int, metric: str, trained: list[int]):
        self.trial, self.reporter, self.epochs, self.metric, self.trained = (
            trial,
            reporter,
            epochs,
            metric,
            trained,
        )
        pruner = trial.study.pruner  # the configured one, through tuner.run.peers.FinishedPeers
        self.pruner_name = getattr(pruner, "name", type(pruner).__name__)
        self.per_fold = self.pruner_name == "WilcoxonPruner"

    def epoch(self, rec: EpochRecord, watch: FoldWatch) -> None:
        """After each epoch; raises ``TrialPruned`` or ``StopFold``."""
        step = rec.fold * self.epochs + rec.epoch
        self.trained[0] += 1
        self.reporter.epoch(rec, step)
        assert rec.val_score is not None and rec.val_loss is not None
        stop = watch.update(rec.epoch, rec.train_loss, rec.val_loss, rec.val_score)
        if not self.per_fold:
            self.trial.report(rec.val_score, step)
            if self.trial.should_prune():
                _prune(
                    self.trial,
                    "pruner",
                    f"{self.pruner_name}: val {self.metric} {rec.val_score:.4f} at step {step} "
                    f"(fold {rec.fold}, epoch {rec.epoch}) is worse than its peers",
                )
        if stop:
            raise StopFold(watch)

    def fold(self, k: int, score: float) -> None:
        """After each fold, with its score; raises ``TrialPruned``."""
        self.reporter.fold_done(k, score)
        if self.per_fold:
            self.trial.report(score, k)
            if self.trial.should_prune():
                _prune(
                    self.trial,
                    "pruner",
                    f"{self.pruner_name}: val {self.metric} after {k + 1} fold(s) is worse than the "
                    "best trial's on the same folds",
                )


class CrossValidatedObjective:
    """``objective(trial, params, reporter) -> mean validation score``."""

    def __init__(
        self,
        config: StudyConfig,
        dataset: Dataset,
        splits: Splits,
        device: torch.device,
        reference: Callable[[], Reference | None] = lambda: None,
    ) -> None:
        self.config = config
        self.splits = splits
        self.device = device
        self.reference = reference
        self.metric = config.objective.metric
        self.spec = ModelSpec(
            config.model.family, dataset.sample_shape, dataset.n_outputs, config.model.factory
        )
        # Tensors are made once per process and reused by every trial (a streamed image
        # folder stays on disk: objectives.lazy).
        self.X = device_rows(dataset.X, None, device, config.data.loader_workers)
        self.y = torch.as_tensor(dataset.y, device=device)
        self.X_np = dataset.X
        self._folds = [
            (torch.as_tensor(tr, device=device), torch.as_tensor(va, device=device), tr)
            for tr, va in splits.folds
        ]
        self._stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def fold_stats(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalization statistics of fold ``k``'s training rows only."""
        if k not in self._stats:
            mean, std = input_stats(self.X_np, self.config.data.normalize, rows=self._folds[k][2])
            self._stats[k] = (mean.to(self.device), std.to(self.device))
        return self._stats[k]

    def __call__(self, trial: Any, params: dict[str, Any], reporter: TrialReporter) -> float:
        # Recorded however the trial ends (complete, pruned, diverged), so the compute
        # a study spent, and what pruning saved, can be counted from the storage.
        # fold_scores too, once: nothing reads a running trial's, and each write is a
        # storage round trip (~1 ms on SQLite).
        trained = [0]
        scores: list[float] = []
        watches: list[FoldWatch] = []
        try:
            return self._cross_validate(trial, params, reporter, trained, scores, watches)
        finally:
            trial.set_user_attr("fold_scores", scores)
            trial.set_user_attr("epochs_trained", trained[0])
            trial.set_user_attr("fold_epochs", [w.record() for w in watches if w.epochs])

    def _cross_validate(
        self,
        trial: Any,
        params: dict[str, Any],
        reporter: TrialReporter,
        trained: list[int],
        scores: list[float],
        watches: list[FoldWatch],
    ) -> float:
        import optuna

        cfg = self.config
        hp = HParams.resolve(params, cfg.training.batch_size, cfg.training.loss)
        guard = DivergenceGuard(cfg.divergence)
        early = EarlyStopping.resolve(cfg.training.early_stopping, params)
        # without early stopping, a watch that never stops still records each fold's best epoch
        rule = early or EarlyStopping(patience=cfg.training.max_epochs + 1, restore_best=False)
        reports = _Reports(trial, reporter, cfg.training.max_epochs, self.metric, trained)
        for k, (tr, va, _) in enumerate(self._folds):
            mean, std = self.fold_stats(k)
            watch = rule.watch(k)
            watches.append(watch)
            try:
                train_fold(
                    cfg, self.spec, params, hp, self.X.index_select(0, tr), self.y[tr],
                    mean=mean, std=std, guard=guard, fold=k, seed=fold_seed(cfg.seed, trial.number, k),
                    X_val=self.X.index_select(0, va), y_val=self.y[va], trial=trial,
                    on_epoch=functools.partial(reports.epoch, watch=watch),
                )  # fmt: skip
            except StopFold:
                pass  # early stopping ended the fold; its score is the watch's
            except Diverged as e:
                trained[0] += 1  # the epoch it diverged in was (partly) trained
                _report_diverged_epoch(e, k, cfg.training.max_epochs, reporter)
                _prune(trial, "divergence", str(e))
            scores.append(float(watch.score()))
            reports.fold(k, scores[-1])
            if k + 1 < len(self._folds):
                self._check_folds(trial, scores)
        cv_mean = statistics.fmean(scores)
        cv_std = statistics.pstdev(scores)
        trial.set_user_attr("cv_mean", cv_mean)
        trial.set_user_attr("cv_std", cv_std)
        if not np.isfinite(cv_mean):
            raise optuna.TrialPruned("non-finite cross-validated score")
        return cv_mean

    def _check_folds(self, trial: Any, scores: list[float]) -> None:
        """Stop before the next fold when the trial is clearly worse than the best."""
        fp = self.config.fold_pruning
        if not fp.enabled or len(scores) < fp.min_folds:
            return
        ref = self.reference()
        if ref is None or ref.number == trial.number or len(ref.fold_scores) < len(scores):
            return
        why = fold_verdict(scores, ref.fold_scores, self.metric, fp.margin, ref.diff_sd, fp.min_gain)
        if why:
            _prune(trial, "fold", why.replace("the best trial", f"best trial #{ref.number}"))


def fold_verdict(
    scores: list[float],
    best: list[float],
    metric: str,
    margin: float,
    diff_sd: float | None = None,
    min_gain: float = 0.0,
) -> str | None:
    """Why a trial whose first folds scored ``scores`` cannot be expected to beat the
    best trial (``best``: its scores on all K folds), or None when it still may.

    A paired test: the trial's fold-by-fold differences from the best trial on the
    folds both finished (the folds' difficulty cancels out) predict the difference of
    the K-fold means. With ``diff_sd`` the spread of such differences per fold (pooled
    over the study's other trials; without it the best trial's own fold spread, which
    also holds the folds' difficulty and so is larger), the predicted K-fold difference
    after n folds has a standard error of ``diff_sd * sqrt((K - n) / (n K))``: the
    unknown mean difference, and the K - n folds still to come. The trial stops when
    its mean difference so far is below zero by more than ``margin`` standard errors.
    Floored at 1e-3. Pure, so the benchmark can replay it.
    """
    n, k = len(scores), len(best)
    theirs = best[:n]
    sign = -1.0 if DIRECTION[metric] == "minimize" else 1.0
    diff = sign * statistics.fmean(s - t for s, t in zip(scores, theirs, strict=True))
    sd = max(diff_sd if diff_sd is not None else statistics.pstdev(best), 1e-3)
    se = sd * ((k - n) / (n * k)) ** 0.5
    gain = min_gain * sd / k**0.5
    if diff + margin * se < gain:
        source = (
            "sd of other trials' per-fold differences" if diff_sd is not None else "the best trial's fold sd"
        )
        mean = f"after {n} fold(s) mean val {metric} {statistics.fmean(scores):.4f}"
        theirs_text = f"the best trial's {statistics.fmean(theirs):.4f} on the same folds"
        if diff + margin * se < 0:  # behind whatever the gain asked for: say so plainly
            return (
                f"{mean} trails {theirs_text} by {-diff:.4f}, more than {margin:g} standard error(s) "
                f"({margin * se:.4f}) of a {k}-fold mean ({source} {sd:.4f})"
            )
        return (
            f"{mean} is {diff:+.4f} against {theirs_text}: at best a near-tie, as even {margin:g} "
            f"standard error(s) ({margin * se:.4f}) of a {k}-fold mean better stays short of the "
            f"{gain:.4f} gain worth its remaining folds (min_gain {min_gain:g} standard error(s) of a "
            f"{k}-fold difference; {source} {sd:.4f})"
        )
    return None


def fold_diff_variance(scores: list[float], best: list[float]) -> float | None:
    """Sample variance of one trial's per-fold differences from ``best`` on the folds
    both have (None with fewer than two). Plain floats: ``statistics.variance`` is exact
    and ~50x slower, and this runs once per finished trial whenever the best changes.
    Fold pruning pools these over the study's other finished trials (``tuner.run.best``)."""
    diffs = [s - t for s, t in zip(scores, best, strict=False)]
    n = len(diffs)
    if n < 2:
        return None
    mean = sum(diffs) / n
    return sum((d - mean) ** 2 for d in diffs) / (n - 1)


def train_final(
    config: StudyConfig,
    dataset: Dataset,
    rows: np.ndarray,
    params: dict[str, Any],
    device: torch.device,
    on_epoch: Callable[[EpochRecord], None] = lambda r: None,
    epochs: int | None = None,
) -> torch.nn.Module:
    """Refit: train ``params`` on ``rows`` (all non-test data) for ``epochs`` (default
    ``max_epochs``; with early stopping, ``objectives.early_stopping.refit_epochs``)."""
    hp = HParams.resolve(params, config.training.batch_size, config.training.loss)
    spec = ModelSpec(config.model.family, dataset.sample_shape, dataset.n_outputs, config.model.factory)
    mean, std = input_stats(dataset.X, config.data.normalize, rows=rows)
    seed = fold_seed(config.seed, -1, -1)
    X = device_rows(dataset.X, rows, device, config.data.loader_workers)
    y = torch.as_tensor(dataset.y[rows], device=device)
    return train_fold(
        config,
        spec,
        params,
        hp,
        X,
        y,
        mean=mean.to(device),
        std=std.to(device),
        guard=DivergenceGuard(config.divergence),
        fold=-1,
        seed=seed,
        on_epoch=on_epoch,
        epochs=epochs,
    )
