"""The hyperparameters a search space may name: those the built-in model families and
training loop read (``HParams``) and the image augmentations (``augment.*``).

A search space may only name parameters listed here: a searched parameter that
nothing reads would silently do nothing, which is a defect, so it fails at load.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = [
    "AUGMENT_PARAMS",
    "EARLY_STOPPING_PARAMS",
    "HParams",
    "KNOWN_PARAMS",
    "SAMPLINGS",
    "augment_params",
    "check_augment",
    "check_early_stopping",
    "early_stopping_params",
    "check_params",
    "check_value",
]

BATCHNORM = ("none", "before_activation", "after_activation")
OPTIMIZERS = ("adamw", "adam", "sgd")
ACTIVATIONS = ("relu", "gelu", "tanh", "silu")
CLASS_WEIGHTS = ("none", "balanced")
SAMPLINGS = ("none", "oversample", "undersample")  # of the training rows: objectives.sampling
LOSSES = ("mse", "mae", "huber")  # task: regression; classification trains on cross-entropy


@dataclass(frozen=True)
class HParams:
    """One trial's resolved hyperparameters (defaults where the space is silent)."""

    lr: float = 1e-3
    weight_decay: float = 0.0  # L2: decoupled for adamw, added to the gradient for adam/sgd
    l1: float = 0.0  # L1 penalty on weights, added to the loss
    dropout: float = 0.0
    batchnorm: str = "none"
    optimizer: str = "adamw"
    momentum: float = 0.9
    width: int = 64
    depth: int = 2
    activation: str = "relu"
    batch_size: int = 64
    max_norm: float | None = None  # gradient clipping; the guard sees the norm before it
    class_weight: str = "none"
    sampling: str = "none"  # over/under-sample the training rows per class (objectives.sampling)
    label_smoothing: float = 0.0
    loss: str = "mse"  # task: regression only (training.loss, or searched)

    @classmethod
    def resolve(cls, params: Mapping[str, Any], batch_size: int, loss: str | None = None) -> HParams:
        """Defaults ⊕ ``batch_size`` and ``loss`` from the training section ⊕ the trial's params."""
        hp = replace(cls(), batch_size=batch_size, loss=loss or "mse")
        known = {k: v for k, v in params.items() if k in KNOWN_PARAMS}
        for k, v in known.items():
            check_value(k, v)
        return replace(hp, **known)


KNOWN_PARAMS: dict[str, str] = {f.name: str(f.type) for f in fields(HParams)}

_CHOICES = {
    "batchnorm": BATCHNORM,
    "optimizer": OPTIMIZERS,
    "activation": ACTIVATIONS,
    "class_weight": CLASS_WEIGHTS,
    "sampling": SAMPLINGS,
    "loss": LOSSES,
}
_RANGES: dict[str, tuple[float, float, bool]] = {  # low, high, low inclusive
    "lr": (0.0, math.inf, False),
    "weight_decay": (0.0, math.inf, True),
    "l1": (0.0, math.inf, True),
    "dropout": (0.0, 1.0, True),
    "momentum": (0.0, 1.0, True),
    "width": (1, 1 << 16, True),
    "depth": (1, 64, True),
    "batch_size": (1, 1 << 16, True),
    "max_norm": (0.0, math.inf, False),
    "label_smoothing": (0.0, 1.0, True),
}
_INTS = ("width", "depth", "batch_size")


def check_value(name: str, value: Any) -> None:
    """Raise ``ValueError`` when ``value`` is not a legal value of parameter ``name``."""
    if name in _CHOICES:
        if value not in _CHOICES[name]:
            raise ValueError(f"{name} must be one of {list(_CHOICES[name])}, got {value!r}")
        return
    if name == "max_norm" and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if name in _INTS and value != int(value):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    low, high, inclusive = _RANGES[name]
    ok = (value >= low if inclusive else value > low) and value <= high
    if name == "dropout" and value >= 1.0:
        ok = False
    if not ok:
        bracket = "[" if inclusive else "("
        raise ValueError(f"{name} must lie in {bracket}{low}, {high}], got {value!r}")


def check_params(space: Any, family: str, handled: Collection[str] = ()) -> str | None:
    """A message naming the first unknown parameter or impossible value, or None.

    ``handled``: names checked elsewhere (augmentation, plug-in parameters).
    """
    for name in space.names:
        if name in handled:
            continue
        if name not in KNOWN_PARAMS:
            import difflib

            close = difflib.get_close_matches(name, list(KNOWN_PARAMS), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            return (
                f"search_space.{name} is not a parameter the {family} family or the training "
                f"loop reads, so searching it would do nothing; {hint}known: "
                f"{', '.join(KNOWN_PARAMS)}"
            )
        spec = space.params[name]
        rng = spec.float_ if spec.float_ is not None else spec.int_
        values = list(rng) if rng is not None else list(spec.choices() or ())
        for value in values:
            try:
                check_value(name, value)
            except ValueError as e:
                return f"search_space.{name}: {e}"
    return None


# ------------------------------------------------------------ augmentation parameters
# Read by objectives.augment; names with a dot, e.g. ``augment.rotation: {float: [0, 30]}``.

PREFIX = "augment."
# name → (low, high, low inclusive, meaning)
AUGMENT_PARAMS: dict[str, tuple[float, float, bool, str]] = {
    "augment.hflip": (0.0, 1.0, True, "a probability in [0, 1]"),
    "augment.vflip": (0.0, 1.0, True, "a probability in [0, 1]"),
    "augment.rotation": (0.0, 180.0, True, "degrees in [0, 180]"),
    "augment.crop_scale": (0.0, 1.0, False, "an area fraction in (0, 1]; 1 means no crop"),
    "augment.color_jitter": (0.0, 1.0, True, "a strength in [0, 1]"),
}


def augment_params(names: Iterable[str]) -> list[str]:
    """The names that start with ``augment.`` (known or not: check them with ``check_augment``)."""
    return [n for n in names if n.startswith(PREFIX)]


def check_augment(name: str, values: Iterable[Any]) -> str | None:
    """A message when ``name`` is no augmentation parameter or a value is out of range."""
    return _check_prefixed(name, values, AUGMENT_PARAMS, "an augmentation parameter")


def _check_prefixed(
    name: str, values: Iterable[Any], table: Mapping[str, tuple[float, float, bool, str]], what: str
) -> str | None:
    if name not in table:
        import difflib

        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"search_space.{name} is not {what}; {hint}known: {', '.join(table)}"
    low, high, inclusive, meaning = table[name]
    for v in values:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        ok = ok and (v >= low if inclusive else v > low) and v <= high
        if ok and name in _INTEGER_SETTINGS and v != int(v):
            ok = False
        if not ok:
            return f"search_space.{name} must be {meaning}, got {v!r}"
    return None


# ------------------------------------------------------------ early-stopping settings
# Read by objectives.early_stopping, on top of training.early_stopping; searching one turns
# early stopping on for the trial.

ES_PREFIX = "early_stopping."
EARLY_STOPPING_PARAMS: dict[str, tuple[float, float, bool, str]] = {
    "early_stopping.patience": (1, 10_000, True, "an integer number of epochs in [1, 10000]"),
    "early_stopping.min_delta": (0.0, math.inf, True, "a fall of the validation loss >= 0"),
}
_INTEGER_SETTINGS = ("early_stopping.patience",)


def early_stopping_params(names: Iterable[str]) -> list[str]:
    """The names that start with ``early_stopping.``."""
    return [n for n in names if n.startswith(ES_PREFIX)]


def check_early_stopping(name: str, values: Iterable[Any]) -> str | None:
    """A message when ``name`` is no early-stopping setting or a value is out of range."""
    return _check_prefixed(name, values, EARLY_STOPPING_PARAMS, "an early-stopping setting")
