"""User code: a model factory and a custom objective, named as ``module:function``.

Imported only when the study file names them (``model.factory``,
``objective.function``); the study file's folder is searched first, then
``sys.path``, so a module beside ``study.yaml`` needs no install.

Model factory::

    def build(params: dict, input_shape: tuple[int, ...], n_classes: int) -> torch.nn.Module

(for ``task: regression``, ``n_classes`` is 1: the model maps a batch to (batch, 1), the
target as tuner's networks learn it; tuner appends the layer back to the user's units)

called once per fold with the trial's parameters (every name in the search space;
with a factory, the space may name parameters tuner does not know) and the shape
of one sample. tuner puts its ``Standardize`` layer (training-fold statistics) in
front and trains the result with its own loop, so lr, optimizer, weight_decay,
batch_size, ... and the augmentation parameters keep working.

Custom objective::

    def objective(trial, data: FoldData, reporter: Reporter) -> torch.nn.Module

called once per fold (and once for the refit, with ``trial`` and ``data.X_val`` None); it trains
a model on ``data`` its own way and returns it; tuner scores the returned model on
the validation rows (or the test split after the refit) with the study's metric:
a fold's score is the validation score of the last ``reporter.epoch`` (or of the
returned model when the objective reported no epoch).
The reporter applies the divergence guard (``reporter.step``) and logs epochs to
MLflow and Optuna's pruner (``reporter.epoch``), which may raise
``optuna.TrialPruned``, or ``objectives.early_stopping.StopFold`` when early stopping
ends the fold; let both propagate. With early stopping's ``restore_best``, the fold is
scored at its best epoch. The refit gets ``data.max_epochs`` = the epochs it should train.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tuner.config.plugins import load_callable

__all__ = ["FoldData", "Reporter", "run_objective"]


@dataclass
class FoldData:
    """One fold's tensors (on ``device``) and what the objective may need.

    ``X_train, y_train`` are already over- or under-sampled per the trial's
    ``sampling`` (``hp.sampling``); ``X_val, y_val`` never are."""

    X_train: Any
    y_train: Any
    X_val: Any | None
    y_val: Any | None
    fold: int  # -1 for the refit
    params: dict[str, Any]
    hp: Any  # objectives.params.HParams: lr, batch_size, ... with defaults filled in
    n_classes: int
    input_shape: tuple[int, ...]
    device: Any
    seed: int
    max_epochs: int
    metric: str
    mean: Any  # training-fold normalization statistics
    std: Any
    augment: Callable[[Any], Any] | None = None
    task: str = "classification"
    # task: regression: the training rows' target scale (objectives.task.TargetScale);
    # y_train / y_val are in the user's units, and so must the returned model's predictions
    # be ((N,) or (N, 1)): ``target.transform(y)`` is what tuner's own networks learn.
    target: Any = None
    _gen: Any = field(default=None, repr=False)

    def standardize(self) -> Any:
        """tuner's ``Standardize`` layer with this fold's training statistics."""
        from objectives.models import Standardize

        return Standardize(self.mean, self.std)

    def batches(self, batch_size: int | None = None) -> Iterator[tuple[Any, Any]]:
        """Shuffled training mini-batches, augmented when the trial asks for it."""
        import torch

        if self._gen is None:
            self._gen = torch.Generator().manual_seed(self.seed)
        n = len(self.X_train)
        bs = min(batch_size or self.hp.batch_size, n)
        perm = torch.randperm(n, generator=self._gen).to(self.device)
        for start in range(0, n, bs):
            rows = perm[start : start + bs]
            if len(rows) < 2 and start > 0:
                break
            xb = self.X_train[rows]
            yield (self.augment(xb) if self.augment else xb), self.y_train[rows]


class Reporter:
    """What a custom objective reports: steps to the divergence guard, epochs to
    MLflow and the pruner (through the same path as the built-in loop)."""

    def __init__(self, data: FoldData, guard: Any, on_epoch: Callable[[Any], None]) -> None:
        from objectives.guard import EpochNorms

        self.data = data
        self.guard = guard
        self.on_epoch = on_epoch
        self.epochs = 0
        self._norms = EpochNorms()
        self._epoch = 0
        self._started: float | None = None
        guard.reset()

    def step(self, loss: Any, model: Any = None, grad_norm: float | None = None) -> None:
        """Call after ``loss.backward()`` and before clipping/``optimizer.step()``.

        Raises ``objectives.guard.Diverged`` (the trial is pruned with the reason)."""
        import time

        import torch

        if self._started is None:
            self._started = time.perf_counter()
        if grad_norm is None and model is not None:
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            grad_norm = float(torch.nn.utils.get_total_norm(grads)) if grads else 0.0
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        norm = float(grad_norm or 0.0)
        self._norms.add(norm)
        self.guard.observe([value], [norm], fold=self.data.fold, epoch=self._epoch)

    def epoch(self, epoch: int, model: Any) -> float | None:
        """Score ``model`` on the training rows and the validation rows; returns the
        validation score. May raise ``optuna.TrialPruned``."""
        import time

        import torch

        from objectives.guard import EpochNorms
        from objectives.task import task_for
        from objectives.training import TRAIN_EVAL_CAP, EpochRecord

        d = self.data
        task = task_for(d.task)
        first = torch.arange(min(len(d.X_train), TRAIN_EVAL_CAP), device=d.device)
        train_loss, train_score = task.evaluate(
            model, d.X_train.index_select(0, first), d.y_train[first], d.metric, None, d.target
        )
        val_loss = val_score = None
        if d.X_val is not None and d.y_val is not None:
            val_loss, val_score = task.evaluate(model, d.X_val, d.y_val, d.metric, None, d.target)
        model.train()
        seconds = time.perf_counter() - self._started if self._started else 0.0
        self.on_epoch(
            EpochRecord(
                fold=d.fold,
                epoch=epoch,
                train_loss=train_loss,
                train_score=train_score,
                val_loss=val_loss,
                val_score=val_score,
                grad_norm_mean=self._norms.mean,
                grad_norm_max=self._norms.max,
                seconds=seconds,
            )
        )
        self.epochs += 1
        self._epoch = epoch + 1
        self._norms, self._started = EpochNorms(), None
        return val_score


def run_objective(ref: str, trial: Any, data: FoldData, guard: Any, on_epoch: Callable[[Any], None]) -> Any:
    """Run the custom objective on one fold; returns the trained model."""
    import torch

    fn = load_callable(ref, key="objective.function")
    reporter = Reporter(data, guard, on_epoch)
    torch.manual_seed(data.seed)
    model = fn(trial, data, reporter)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"objective.function {ref} returned {type(model).__name__}; it must return the trained "
            "torch.nn.Module (tuner scores it on the validation rows)"
        )
    if reporter.epochs == 0:
        reporter.epoch(0, model)  # the objective reported nothing: score the model it returned
    return model
