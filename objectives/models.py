"""Model families built from a trial's hyperparameters: ``mlp``, ``cnn`` and
``resnet18`` (torchvision, untrained), or a ``model.factory`` plug-in.

``mlp`` and ``cnn`` honour dropout and batch-norm placement in every block
(``resnet18`` keeps its own BN after every convolution and takes dropout before
its head):

- ``none``:               Linear/Conv → activation → dropout
- ``before_activation``:  Linear/Conv → BatchNorm → activation → dropout
- ``after_activation``:   Linear/Conv → activation → BatchNorm → dropout

Inputs are standardized by a fixed first layer whose statistics come from the
training data only, so the saved model carries its own preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from search_spaces.params import HParams
from tuner.config.plugins import load_callable

__all__ = ["ModelSpec", "Standardize", "build_model", "input_stats"]

_ACT = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


@dataclass(frozen=True)
class ModelSpec:
    """What a family needs to know of the data."""

    family: str
    sample_shape: tuple[int, ...]
    n_classes: int
    factory: str | None = None  # model.factory plug-in, "module:function"


class Standardize(nn.Module):
    """``(x - mean) / std`` with fixed statistics (buffers, saved with the model)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def input_stats(
    X: np.ndarray, normalize: bool, rows: np.ndarray | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature (tables) or per-channel (images) mean and std of ``X`` (or of
    ``X[rows]``; a streamed uint8 image array is read a chunk at a time, as ``/ 255``).

    Call it with the training rows only: statistics from validation or test rows
    would leak them into training.
    """
    from objectives.lazy import is_streamed, stream_stats

    shape = (1, *X.shape[1:])
    if not normalize:
        return torch.zeros(shape), torch.ones(shape)
    if is_streamed(X):
        mean, std = stream_stats(X, np.arange(len(X)) if rows is None else rows)
    else:
        X = X if rows is None else X[rows]
        axes = (0, 2, 3) if X.ndim == 4 else (0,)
        mean = X.mean(axis=axes, keepdims=True, dtype=np.float64)
        std = X.std(axis=axes, keepdims=True, dtype=np.float64)
    std = np.where(std < 1e-6, 1.0, std)  # constant features (digits' blank corners)
    return torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)


def _block(layer: nn.Module, norm: nn.Module | None, hp: HParams, dropout: nn.Module) -> list[nn.Module]:
    act = _ACT[hp.activation]()
    if hp.batchnorm == "before_activation":
        mods = [layer, norm, act]
    elif hp.batchnorm == "after_activation":
        mods = [layer, act, norm]
    else:
        mods = [layer, act]
    if hp.dropout > 0:
        mods.append(dropout)
    return [m for m in mods if m is not None]


def _mlp(spec: ModelSpec, hp: HParams) -> list[nn.Module]:
    n_in = int(np.prod(spec.sample_shape))
    layers: list[nn.Module] = [nn.Flatten()]
    for _ in range(hp.depth):
        norm = nn.BatchNorm1d(hp.width) if hp.batchnorm != "none" else None
        layers += _block(nn.Linear(n_in, hp.width), norm, hp, nn.Dropout(hp.dropout))
        n_in = hp.width
    layers.append(nn.Linear(n_in, spec.n_classes))
    return layers


def _cnn(spec: ModelSpec, hp: HParams) -> list[nn.Module]:
    if len(spec.sample_shape) != 3:
        raise ValueError(
            f"the cnn family needs images (channels, height, width); this data has samples "
            f"of shape {spec.sample_shape}: use model.family: mlp"
        )
    c_in, h, w = spec.sample_shape
    layers: list[nn.Module] = []
    for i in range(hp.depth):
        c_out = hp.width * (2 ** min(i, 2))
        norm = nn.BatchNorm2d(c_out) if hp.batchnorm != "none" else None
        # Dropout2d drops whole channels: plain dropout on conv maps barely regularizes.
        layers += _block(nn.Conv2d(c_in, c_out, 3, padding=1), norm, hp, nn.Dropout2d(hp.dropout))
        if min(h, w) >= 4:  # keep at least 2x2 for the last blocks of small images
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if hp.dropout > 0:
        layers.append(nn.Dropout(hp.dropout))
    layers.append(nn.Linear(c_in, spec.n_classes))
    return layers


def _resnet18(spec: ModelSpec, hp: HParams) -> list[nn.Module]:
    """torchvision's ResNet-18, untrained (weights=None), dropout before the head.

    Batch-norm placement, width, depth and activation are the architecture's own
    (BN after every convolution), so the config rejects them for this family.
    Images under 64 pixels get the CIFAR stem (3x3 stride-1 conv, no max-pool):
    the ImageNet stem would shrink a 32x32 image to 1x1 before the last stage.
    """
    from torchvision.models import resnet18

    if len(spec.sample_shape) != 3:
        raise ValueError(
            f"the resnet18 family needs images (channels, height, width); this data has samples "
            f"of shape {spec.sample_shape}: use model.family: mlp"
        )
    c_in, h, w = spec.sample_shape
    net = resnet18(weights=None, num_classes=spec.n_classes)
    if min(h, w) < 64:
        net.conv1 = nn.Conv2d(c_in, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif c_in != 3:
        net.conv1 = nn.Conv2d(c_in, 64, 7, stride=2, padding=3, bias=False)
    net.fc = nn.Sequential(nn.Dropout(hp.dropout), net.fc) if hp.dropout > 0 else net.fc
    return [net]


FAMILIES = {"mlp": _mlp, "cnn": _cnn, "resnet18": _resnet18}


def build_factory_model(
    ref: str, params: dict[str, Any], shape: tuple[int, ...], n_classes: int
) -> nn.Module:
    """Call the model factory and check what it returns on a dummy batch."""
    model = load_callable(ref, key="model.factory")(dict(params), tuple(shape), n_classes)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model.factory {ref} returned {type(model).__name__}, not a torch.nn.Module")
    was = model.training
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros((2, *shape)))
    model.train(was)
    if tuple(out.shape) != (2, n_classes):
        raise ValueError(
            f"model.factory {ref}: the model maps a batch of 2 samples of shape {tuple(shape)} to "
            f"{tuple(out.shape)}; it must return logits of shape (batch, {n_classes})"
        )
    return model


def build_model(
    spec: ModelSpec,
    hp: HParams,
    mean: torch.Tensor,
    std: torch.Tensor,
    params: dict | None = None,
) -> nn.Sequential:
    """A fresh, randomly initialised model of ``spec.family`` for ``hp`` (or the
    ``model.factory`` plug-in's model for the trial's ``params``)."""
    if spec.factory:
        user = build_factory_model(spec.factory, params or {}, spec.sample_shape, spec.n_classes)
        return nn.Sequential(Standardize(mean, std), user)
    body = FAMILIES[spec.family](spec, hp)
    return nn.Sequential(Standardize(mean, std), *body)
