"""The divergence guard: stop a fold whose training is blowing up.

It sees, per optimizer step, the training loss and the total gradient norm
*before* any clipping (so clipping cannot hide an explosion), and raises
``Diverged`` with a reason a person can read:

- a non-finite loss or gradient norm: at once (even with ``enabled: false``:
  nothing non-finite may ever be reported to the study);
- the gradient norm, averaged over the last ``patience`` steps, above
  ``max_grad_norm`` or above ``grad_norm_factor`` × the fold's baseline norm;
- the training loss, averaged over the last ``patience`` steps, above
  ``loss_factor`` × the fold's initial loss.

The baseline and the initial loss are the median of the fold's first
``baseline_steps`` steps (default 1: the first step alone). The first step is
computed before any update, so the learning rate cannot inflate the reference
it is judged against; measured on digits, an lr=10 SGD run explodes within its
first 2-3 steps, so a median over 10 steps would have included the explosion.

Why a windowed mean rather than "``patience`` consecutive steps over": a
diverging run often explodes for 2-3 steps and then sits in a dead state (all
ReLUs off, loss a few times the initial, tiny gradients); a consecutive count
misses that, while the window's mean keeps the explosion in view for
``patience`` steps. One ordinary noisy step cannot trip it: it would have to be
``patience`` × the limit on its own, and such a step (a 500x jump in the
gradient norm) has already wrecked the weights.

Plain floats in, so the rules are tested on synthetic sequences without torch.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuner.config import DivergenceConfig

__all__ = ["Diverged", "DivergenceGuard", "EpochNorms"]


class Diverged(Exception):
    """Training diverged; ``str(self)`` is the reason.

    ``epoch`` is the epoch it diverged in; the training loop attaches ``norms``, the
    gradient norms of that unfinished epoch, so they are logged like any other epoch's
    (they show the explosion).
    """

    def __init__(self, reason: str, *, epoch: int | None = None) -> None:
        super().__init__(reason)
        self.epoch = epoch
        self.norms: EpochNorms | None = None


@dataclass
class EpochNorms:
    """Running gradient-norm statistics of one epoch, for logging."""

    total: float = 0.0
    count: int = 0
    max: float = 0.0
    first_last: float | None = None  # first / last layer's gradient norm (``training.fit``)

    def add(self, norm: float) -> None:
        if math.isfinite(norm):
            self.total += norm
            self.count += 1
            self.max = max(self.max, norm)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


@dataclass
class DivergenceGuard:
    """Stateful per fold: call ``reset`` before each fold, ``observe`` after steps."""

    config: DivergenceConfig
    _first_norms: list[float] = field(default_factory=list)
    _first_losses: list[float] = field(default_factory=list)
    _norms: deque[float] = field(default_factory=deque)
    _losses: deque[float] = field(default_factory=deque)
    _step: int = 0

    def reset(self) -> None:
        self._first_norms.clear()
        self._first_losses.clear()
        self._norms.clear()
        self._losses.clear()
        self._step = 0

    @property
    def baseline_norm(self) -> float | None:
        """The median gradient norm of the fold's first ``baseline_steps`` steps."""
        if len(self._first_norms) < self.config.baseline_steps:
            return None
        return statistics.median(self._first_norms)

    @property
    def initial_loss(self) -> float | None:
        """The median training loss of the fold's first ``baseline_steps`` steps."""
        if len(self._first_losses) < self.config.baseline_steps:
            return None
        return statistics.median(self._first_losses)

    def norm_limit(self) -> tuple[float, str]:
        """The tighter of the absolute and the relative limit, and how to say it."""
        cfg = self.config
        limit, why = math.inf, ""
        if cfg.max_grad_norm is not None:
            limit, why = cfg.max_grad_norm, f"absolute limit {cfg.max_grad_norm:g}"
        base = self.baseline_norm
        # a zero baseline (no gradient at all on the first step) gives no scale to compare with
        if base is not None and base > 0 and cfg.grad_norm_factor is not None:
            rel = cfg.grad_norm_factor * base
            if rel < limit:
                limit, why = rel, f"{cfg.grad_norm_factor:g}x baseline {base:.3g}"
        return limit, why

    def observe(self, losses: Sequence[float], norms: Sequence[float], *, fold: int, epoch: int) -> None:
        """Check the steps since the last call; raise ``Diverged`` on a broken rule."""
        cfg = self.config
        for loss, norm in zip(losses, norms, strict=True):
            step = self._step
            self._step += 1
            where = f"(fold {fold}, epoch {epoch}, step {step})"
            if not math.isfinite(loss):
                raise Diverged(f"training loss is {loss} {where}", epoch=epoch)
            if not math.isfinite(norm):
                raise Diverged(f"grad_norm is {norm} {where}", epoch=epoch)
            if not cfg.enabled:
                continue
            if len(self._first_norms) < cfg.baseline_steps:
                self._first_norms.append(norm)
                self._first_losses.append(loss)
            self._norms.append(norm)
            self._losses.append(loss)
            if len(self._norms) > cfg.patience:
                self._norms.popleft()
                self._losses.popleft()
            if len(self._norms) < cfg.patience:
                continue
            over = f"over the last {cfg.patience} step{'s' if cfg.patience > 1 else ''}"
            mean_norm = statistics.fmean(self._norms)
            limit, why = self.norm_limit()
            if mean_norm > limit:
                raise Diverged(f"grad_norm {mean_norm:.3g} (mean {over}) > {why} {where}", epoch=epoch)
            init = self.initial_loss
            if init is not None and cfg.loss_factor is not None and init > 0:
                mean_loss = statistics.fmean(self._losses)
                if mean_loss > cfg.loss_factor * init:
                    raise Diverged(
                        f"training loss {mean_loss:.3g} (mean {over}) > {cfg.loss_factor:g}x "
                        f"initial {init:.3g} {where}",
                        epoch=epoch,
                    )
