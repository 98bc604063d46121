"""The training loop: mini-batches from in-memory tensors, the divergence guard on
every step, and one evaluation per epoch handed to ``on_epoch``.

Small datasets live on the device as tensors; indexing a tensor per batch is far
cheaper than a DataLoader for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from objectives.guard import Diverged, DivergenceGuard, EpochNorms
from objectives.lazy import batches
from objectives.task import CLASSIFICATION, Task, predict_proba
from search_spaces.params import HParams

__all__ = ["EpochRecord", "fit", "predict_proba", "resolve_device"]

TRAIN_EVAL_CAP = 4096  # rows of the training fold re-scored per epoch for train metrics


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch of one fold measured."""

    fold: int
    epoch: int
    train_loss: float
    train_score: float
    val_loss: float | None
    val_score: float | None
    grad_norm_mean: float
    grad_norm_max: float
    seconds: float
    # the first layer's gradient norm / the last layer's, on the epoch's last step: far
    # below 1 when gradients vanish on their way back through a deep or saturated net
    grad_ratio: float | None = None

    def as_metrics(self, metric: str) -> dict[str, float]:
        # the fields, not ``asdict`` (a recursive deep copy, 8x slower, once per epoch)
        out = {k: v for k in _FIELDS if isinstance(v := getattr(self, k), float)}
        out[f"train_{metric}"] = out.pop("train_score")
        if self.val_score is not None:
            out[f"val_{metric}"] = out.pop("val_score")
        return out


_FIELDS = tuple(f.name for f in fields(EpochRecord))


def resolve_device(name: str) -> torch.device:
    """``training.device`` → device; see ``objectives.devices`` (errors when absent)."""
    from objectives.devices import resolve_device as resolve

    return resolve(name)


def _optimizer(model: nn.Module, hp: HParams, graphs: bool = False) -> torch.optim.Optimizer:
    """The trial's optimizer; ``graphs``: Adam's step count kept on the device, so that a
    CUDA graph can replay the step (SGD keeps no count)."""
    params = model.parameters()
    if hp.optimizer == "sgd":
        return torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
    if hp.optimizer == "adam":
        return torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay, capturable=graphs)
    return torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay, capturable=graphs)


def fit(
    model: nn.Module,
    hp: HParams,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    metric: str,
    n_classes: int,
    guard: DivergenceGuard,
    fold: int,
    seed: int,
    X_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    on_epoch: Callable[[EpochRecord], None] = lambda r: None,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    amp: Any = None,
    task: Task = CLASSIFICATION,
    graphs: bool = False,
) -> nn.Module:
    """Train ``model`` in place; raise ``Diverged`` when the guard trips.

    ``task`` decides the loss and the scoring (``objectives.task``): for regression,
    ``model`` ends in its ``TargetScale`` and ``y`` is in the user's units.

    ``on_epoch`` runs after every epoch's evaluation and may raise (e.g.
    ``optuna.TrialPruned``) to stop training. ``augment`` transforms training
    batches only (never the evaluation ones); ``amp`` is an
    ``objectives.devices.AmpPolicy`` (mixed precision on CUDA); ``graphs``: replay each
    full batch's step as a CUDA graph (``objectives.devices.use_cuda_graphs``).
    """
    import time

    gen = torch.Generator(device="cpu").manual_seed(seed)
    torch.manual_seed(seed)
    loop = _Loop.build(model, hp, y, n_classes, guard, fold, amp, X.device, task, graphs)
    eval_rows = torch.randperm(len(X), generator=gen)[:TRAIN_EVAL_CAP].to(X.device)
    guard.reset()
    for epoch in range(epochs):
        started = time.perf_counter()
        model.train()
        perm = torch.randperm(len(X), generator=gen).to(X.device)
        norms = loop.epoch(X, y, perm, epoch, augment)
        train_loss, train_score = task.evaluate(
            model, X.index_select(0, eval_rows), y[eval_rows], metric, loop.crit
        )
        val_loss = val_score = None
        if X_val is not None and y_val is not None:
            val_loss, val_score = task.evaluate(model, X_val, y_val, metric, loop.crit)
        on_epoch(
            EpochRecord(
                fold=fold,
                epoch=epoch,
                train_loss=train_loss,
                train_score=train_score,
                val_loss=val_loss,
                val_score=val_score,
                grad_norm_mean=norms.mean,
                grad_norm_max=norms.max,
                seconds=time.perf_counter() - started,
                grad_ratio=norms.first_last,
            )
        )
    return model


@dataclass
class _Loop:
    """One fold's optimizer, loss, mixed precision and guard: what every step uses.
    ``net`` is what the loss reads (the model, or a regression model without its
    ``TargetScale``) and ``y_fit`` the targets in its terms."""

    model: nn.Module
    net: nn.Module
    y_fit: torch.Tensor
    hp: HParams
    opt: torch.optim.Optimizer
    crit: nn.Module
    scaler: torch.amp.GradScaler
    autocast: Callable[[], Any]
    use_amp: bool
    penalized: list[nn.Parameter]
    params: list[nn.Parameter]
    check_every: int
    guard: DivergenceGuard
    fold: int
    graph: _GraphedStep | None = None

    @classmethod
    def build(
        cls,
        model: nn.Module,
        hp: HParams,
        y: torch.Tensor,
        n_classes: int,
        guard: DivergenceGuard,
        fold: int,
        amp: Any,
        device: torch.device,
        task: Task = CLASSIFICATION,
        graphs: bool = False,
    ) -> _Loop:
        use_amp = bool(amp is not None and amp.enabled)
        scaler = torch.amp.GradScaler(device.type, enabled=use_amp and amp.scaler)
        # Without AMP the step takes the plain path: a disabled autocast and GradScaler
        # still cost 5-9% of a small model's CPU step.
        autocast = (lambda: torch.autocast(device.type, dtype=amp.dtype)) if use_amp else nullcontext
        opt = _optimizer(model, hp, graphs)
        crit = task.criterion(hp, y, n_classes)
        net, y_fit = task.train_view(model, y)
        penalized = [p for n, p in model.named_parameters() if p.ndim > 1]  # weights, not biases/BN
        params = [p for p in model.parameters() if p.requires_grad]
        # On a GPU, reading a loss or norm is a host sync: check every N steps instead.
        check_every = 1 if device.type == "cpu" else guard.config.check_every
        loop = cls(
            model, net, y_fit, hp, opt, crit, scaler, autocast, use_amp, penalized, params, check_every,
            guard, fold,
        )  # fmt: skip
        if graphs:
            loop.graph = _GraphedStep(loop)
        return loop

    def epoch(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        perm: torch.Tensor,
        epoch: int,
        augment: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> EpochNorms:
        """One pass over the shuffled training rows; the guard sees every step's
        loss and gradient norm (before clipping)."""
        norms = EpochNorms()
        pending_loss: list[torch.Tensor] = []
        pending_norm: list[torch.Tensor] = []
        bs = min(self.hp.batch_size, len(X))
        scaled = self.scaler.is_enabled()
        for i, (rows, xb) in enumerate(batches(X, perm, bs)):
            if len(rows) < 2 and i > 0:
                break  # a batch of one breaks batch norm and adds nothing
            xb = xb if augment is None else augment(xb)
            if self.graph is not None and len(rows) == bs:
                loss, norm = self.graph(xb, self.y_fit[rows])
            else:  # the CPU, or the short last batch beside a graph of full ones
                keep = self.graph is not None and self.graph.captured
                self.opt.zero_grad(set_to_none=not keep)  # a graph's gradients stay where it wrote them
                loss, norm = self.step(xb, self.y_fit[rows])
            pending_loss.append(loss)
            pending_norm.append(norm)
            if len(pending_loss) >= self.check_every:
                _check(self.guard, pending_loss, pending_norm, norms, self.fold, epoch, scaled)
        _check(self.guard, pending_loss, pending_norm, norms, self.fold, epoch, scaled)
        norms.first_last = _first_last(self.penalized)
        return norms

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on a batch whose gradients were cleared; returns its loss and
        gradient norm (before clipping: the guard's view), on the device."""
        hp, opt, scaler = self.hp, self.opt, self.scaler
        with self.autocast():
            out = self.net(xb)
            loss = self.crit(out.float(), yb)
        if hp.l1 > 0:
            loss = loss + hp.l1 * sum(p.abs().sum() for p in self.penalized)
        if self.use_amp:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)  # the guard and clipping see true norms
        else:
            loss.backward()
        grads = [p.grad for p in self.params if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads)
        if hp.max_norm is not None:
            torch.nn.utils.clip_grads_with_norm_(self.params, hp.max_norm, norm)
        if self.use_amp:
            scaler.step(opt)  # skips overflowed float16 steps
            scaler.update()
        else:
            opt.step()
        return loss.detach(), norm.detach()


class _GraphedStep:
    """``_Loop.step`` on full batches, recorded once as a CUDA graph and replayed: the
    whole step is one launch, so the GPU is not left waiting on Python between a hundred
    small kernels. PyTorch's recipe for whole-network capture: a few eager steps on a side
    stream first (lazy initialisation, cuDNN autotuning, the optimizer's state), then the
    capture, into static input tensors that each batch is copied into. Dropout's random
    numbers and batch norm's running statistics are replayed correctly by the graph."""

    WARMUP = 3

    def __init__(self, loop: _Loop) -> None:
        self.loop = loop
        self.warm = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self.outputs: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loop = self.loop
        if self.graph is None and self.warm < self.WARMUP:
            self.warm += 1
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                loop.opt.zero_grad(set_to_none=True)
                out = loop.step(xb, yb)
            torch.cuda.current_stream().wait_stream(side)
            return out
        if self.graph is None:
            self.inputs = (xb.clone(), yb.clone())
            loop.opt.zero_grad(set_to_none=True)  # the graph allocates the gradients it writes
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self.outputs = loop.step(*self.inputs)
            self.graph = graph  # recorded, not run: replayed below for this batch
        else:
            assert self.inputs is not None
            self.inputs[0].copy_(xb)
            self.inputs[1].copy_(yb)
        self.graph.replay()
        assert self.outputs is not None
        return self.outputs[0].clone(), self.outputs[1].clone()


def _first_last(weights: list[nn.Parameter]) -> float | None:
    """The first weight's gradient norm over the last one's, once per epoch (one host
    sync): how much of the gradient survives the way back to the input layer."""
    if len(weights) < 2 or weights[0].grad is None or weights[-1].grad is None:
        return None
    first, last = (float(w.grad.detach().float().norm()) for w in (weights[0], weights[-1]))  # type: ignore[union-attr]
    return first / last if last > 0 and math.isfinite(first) and math.isfinite(last) else None


def _check(
    guard: DivergenceGuard,
    losses: list[torch.Tensor],
    norms: list[torch.Tensor],
    stats: EpochNorms,
    fold: int,
    epoch: int,
    scaled: bool = False,
) -> None:
    if not losses:
        return
    values = torch.stack([torch.stack(losses), torch.stack(norms)]).float().cpu().tolist()
    losses.clear()
    norms.clear()
    if scaled:
        # float16 loss scaling overflows on purpose while it calibrates; GradScaler skips
        # those steps, so they are not divergence. A diverging loss still trips the guard.
        import math

        kept = [(lo, n) for lo, n in zip(*values, strict=True) if math.isfinite(n) or not math.isfinite(lo)]
        values = [[lo for lo, _ in kept], [n for _, n in kept]]
    for v in values[1]:
        stats.add(v)
    try:
        guard.observe(values[0], values[1], fold=fold, epoch=epoch)
    except Diverged as e:
        e.norms = stats  # the unfinished epoch's norms, the explosion included, for logging
        raise
