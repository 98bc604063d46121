"""What differs between the two tasks: the network's head, the loss, predictions and
their scoring. Classification trains on cross-entropy and predicts class
probabilities; regression trains on a transformed target and predicts numbers in the
user's units.

A regression network ends in a ``TargetScale`` layer: everything before it predicts
the target as the network learns it (standardized, or log1p then standardized, with
statistics of the training rows only); the layer maps that back to the user's units.
So the trained network, the refit and the exported model all predict in the user's
units, while the loss is computed where the network learns (``Task.train_view``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from objectives.guard import Diverged
from objectives.lazy import chunk_rows

__all__ = [
    "CLASSIFICATION",
    "Classification",
    "REGRESSION",
    "Regression",
    "TARGET_TRANSFORMS",
    "TargetScale",
    "Task",
    "predict_proba",
    "predict_values",
    "task_for",
]

TARGET_TRANSFORMS = ("none", "standardize", "log1p")


class TargetScale(nn.Module):
    """The last layer of a regression network: the learned target back to the user's units.

    ``kind``: ``standardize`` (``z = (y - mean) / std``), ``log1p`` (``z = (log1p(y) -
    mean) / std``) or ``none`` (mean 0, std 1). The statistics are buffers, saved with
    the model; ``kind`` is in the recipe (``objectives.export``).
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, kind: str = "standardize", mean: float = 0.0, std: float = 1.0) -> None:
        super().__init__()
        if kind not in TARGET_TRANSFORMS:
            raise ValueError(f"target transform must be one of {TARGET_TRANSFORMS}, got {kind!r}")
        self.kind = kind
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    @classmethod
    def fit(cls, kind: str, y: Any) -> TargetScale:
        """Fitted on ``y``: the training rows only (a fold's, or the refit's)."""
        v = torch.as_tensor(y).detach().double().cpu().numpy()
        if kind == "log1p":
            v = np.log1p(v)
        if kind == "none" or len(v) == 0:
            return cls(kind)
        std = float(v.std())
        return cls(kind, float(v.mean()), std if std > 1e-12 else 1.0)

    def transform(self, y: torch.Tensor) -> torch.Tensor:
        """User's units → what the network learns."""
        y = y.float()
        if self.kind == "log1p":
            y = torch.log1p(y)
        return (y - self.mean) / self.std

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """What the network learned (N, 1) or (N,) → the user's units (N,)."""
        y = z.float().reshape(-1) * self.std + self.mean  # -1, not len(z): a traced export keeps any batch
        return torch.expm1(y) if self.kind == "log1p" else y

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, mean={float(self.mean):.4g}, std={float(self.std):.4g}"


@torch.no_grad()
def predict_proba(model: nn.Module, X: torch.Tensor, batch: int = 2048) -> np.ndarray:
    """Class probabilities (N, C) in eval mode."""
    model.eval()
    batch = chunk_rows(tuple(X.shape), most=batch)  # fewer rows for large samples (64 MiB)
    outs = [torch.softmax(model(X[i : i + batch]).float(), dim=1) for i in range(0, len(X), batch)]
    return torch.cat(outs).cpu().numpy().astype(np.float64)


@torch.no_grad()
def predict_values(model: nn.Module, X: torch.Tensor, batch: int = 2048) -> np.ndarray:
    """A regression network's predictions (N,) in the user's units, in eval mode."""
    model.eval()
    batch = chunk_rows(tuple(X.shape), most=batch)  # fewer rows for large samples (64 MiB)
    outs = [model(X[i : i + batch]).float().reshape(-1) for i in range(0, len(X), batch)]
    return torch.cat(outs).cpu().numpy().astype(np.float64)


class Task:
    """What a task decides; ``Classification`` and ``Regression`` implement it."""

    name: str

    def head(self, y_train: Any, target_transform: str | None) -> nn.Module | None:
        raise NotImplementedError

    def criterion(self, hp: Any, y: torch.Tensor, n_outputs: int) -> nn.Module:
        raise NotImplementedError

    def train_view(self, model: nn.Module, y: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
        raise NotImplementedError

    def predict(self, model: nn.Module, X: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    def evaluate(
        self,
        model: nn.Module,
        X: torch.Tensor,
        y: torch.Tensor,
        metric: str,
        crit: nn.Module | None,
        scale: TargetScale | None = None,
    ) -> tuple[float, float]:
        raise NotImplementedError


class Classification(Task):
    """One logit per class, cross-entropy, class probabilities."""

    name = "classification"

    def head(self, y_train: Any, target_transform: str | None) -> nn.Module | None:
        """A layer to append to the network (regression's ``TargetScale``), or None."""
        return None

    def criterion(self, hp: Any, y: torch.Tensor, n_outputs: int) -> nn.Module:
        weights = None
        if hp.class_weight == "balanced":
            counts = torch.bincount(y, minlength=n_outputs).float().clamp(min=1)
            weights = (len(y) / (n_outputs * counts)).to(y.device)
        return nn.CrossEntropyLoss(weight=weights, label_smoothing=hp.label_smoothing)

    def train_view(self, model: nn.Module, y: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
        """The module whose outputs the loss reads, and the targets in its terms."""
        return model, y

    def predict(self, model: nn.Module, X: torch.Tensor) -> np.ndarray:
        """Class probabilities (N, C)."""
        return predict_proba(model, X)

    def evaluate(
        self,
        model: nn.Module,
        X: torch.Tensor,
        y: torch.Tensor,
        metric: str,
        crit: nn.Module | None,
        scale: TargetScale | None = None,
    ) -> tuple[float, float]:
        """``(loss, score)`` of ``model`` on ``X, y``: mean cross-entropy and ``metric``."""
        from objectives.metrics import score

        proba = self.predict(model, X)
        if not np.isfinite(proba).all():
            raise Diverged("the model's outputs became non-finite")
        y_np = y.cpu().numpy()
        loss = float(-np.mean(np.log(np.clip(proba[np.arange(len(y_np)), y_np], 1e-12, 1.0))))
        return loss, score(metric, y_np, proba)


class Regression(Task):
    """One number per sample; the loss (mse, mae, huber) on the learned scale."""

    name = "regression"

    def head(self, y_train: Any, target_transform: str | None) -> nn.Module:
        return TargetScale.fit(target_transform or "standardize", y_train).to(torch.as_tensor(y_train).device)

    def criterion(self, hp: Any, y: torch.Tensor, n_outputs: int) -> nn.Module:
        if hp.loss == "mae":
            return nn.L1Loss()
        if hp.loss == "huber":
            return nn.HuberLoss(delta=1.0)  # one standard deviation of a standardized target
        return nn.MSELoss()

    def train_view(self, model: nn.Module, y: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
        scale = _scale_of(model)
        body = nn.Sequential(*list(model.children())[:-1], nn.Flatten(0))
        return body, scale.transform(y)

    def predict(self, model: nn.Module, X: torch.Tensor) -> np.ndarray:
        return predict_values(model, X)

    def evaluate(
        self,
        model: nn.Module,
        X: torch.Tensor,
        y: torch.Tensor,
        metric: str,
        crit: nn.Module | None,
        scale: TargetScale | None = None,
    ) -> tuple[float, float]:
        """``(loss on the learned scale, metric in the user's units)``; ``scale``: the
        fold's target scale when ``model`` does not end in one (a plug-in's model)."""
        from objectives.metrics import score

        pred = self.predict(model, X)
        if not np.isfinite(pred).all():
            raise Diverged("the model's predictions became non-finite")
        scale = scale or _last_scale(model) or TargetScale()
        with torch.no_grad():
            p = torch.as_tensor(pred, dtype=torch.float32, device=scale.mean.device)
            t = y.to(scale.mean.device)
            loss = float((crit or nn.MSELoss())(scale.transform(p), scale.transform(t)))
        return loss, score(metric, y.cpu().numpy().astype(np.float64), pred)


def _last_scale(model: nn.Module) -> TargetScale | None:
    """The ``TargetScale`` a regression network ends in; None for a plug-in's model."""
    children = list(model.children())
    return children[-1] if children and isinstance(children[-1], TargetScale) else None


def _scale_of(model: nn.Module) -> TargetScale:
    scale = _last_scale(model)
    if scale is None:
        raise TypeError("a regression network must end in objectives.task.TargetScale")
    return scale


CLASSIFICATION = Classification()
REGRESSION = Regression()


def task_for(name: str) -> Task:
    """The task object for ``task:`` in the study file."""
    return REGRESSION if name == "regression" else CLASSIFICATION
