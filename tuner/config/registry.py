"""Allowlists of Optuna's own samplers and pruners, built from config by class name.

Only classes named here can be built; arguments are checked against the class's
signature at load time so a misspelt name or keyword fails before anything runs.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

__all__ = ["PRUNERS", "SAMPLERS", "build_pruner", "build_sampler", "check_args"]

SAMPLERS = (
    "TPESampler",
    "RandomSampler",
    "CmaEsSampler",
    "GPSampler",
    "QMCSampler",
    "NSGAIISampler",
)
PRUNERS = (
    "MedianPruner",
    "PercentilePruner",
    "SuccessiveHalvingPruner",
    "HyperbandPruner",
    "ThresholdPruner",
    "PatientPruner",
    "WilcoxonPruner",
    "NopPruner",
)
_WHY_NOT = {
    "GridSampler": "tuner's spaces may be continuous or conditional; use BruteForceSampler-like "
    "exhaustive search only on small categorical spaces (QMCSampler or RandomSampler otherwise)",
}


def _lookup(kind: str, name: str, allowed: tuple[str, ...], module: Any) -> type:
    if name not in allowed:
        hint = _WHY_NOT.get(name)
        close = difflib.get_close_matches(name, allowed, n=1)
        fix = hint or (f"did you mean {close[0]}?" if close else "")
        raise ValueError(
            f"unknown {kind} {name!r}; allowed: {', '.join(allowed)}" + (f" ({fix})" if fix else "")
        )
    return getattr(module, name)


def check_args(cls: type, args: Mapping[str, Any], where: str) -> None:
    """Raise ``ValueError`` when ``args`` holds a keyword ``cls`` does not take."""
    params = inspect.signature(cls).parameters
    accepted = [p for p in params if p not in ("self", "args", "kwargs")]
    for key in args:
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(
                f"{cls.__name__} takes no argument {key!r} in {where}; {hint}it takes: {', '.join(accepted)}"
            )
        # Optuna does not type-check its constructors: TPESampler(n_startup_trials="many")
        # builds fine and fails inside the first trial. Check against the annotation
        # (min_resource: "str | int" takes 1 and "auto"), else the default's type.
        kinds = _simple_types(params[key])
        if kinds is None:
            continue
        value = args[key]
        ok = any(_is(value, k) for k in kinds)
        if not ok:
            names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise ValueError(
                f"{where}.{key} of {cls.__name__} must be {names} "
                f"(default {params[key].default!r}), got {value!r}"
            )


_SIMPLE = {"int": int, "float": float, "str": str, "bool": bool, "None": type(None)}


def _simple_types(param: inspect.Parameter) -> tuple[type, ...] | None:
    """The plain types a parameter accepts, or None when that cannot be told simply."""
    ann = param.annotation
    if isinstance(ann, str) and ann:
        parts = [p.strip().strip("'\"") for p in ann.split("|")]
        if all(p in _SIMPLE for p in parts):
            return tuple(_SIMPLE[p] for p in parts)
        return None
    if ann is not inspect.Parameter.empty:
        return None
    default = param.default
    if default is inspect.Parameter.empty or default is None or type(default) not in _SIMPLE.values():
        return None
    return (type(default),)


def _is(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def build_sampler(name: str, args: Mapping[str, Any]) -> Any:
    """Instantiate an allowlisted Optuna sampler."""
    import optuna

    cls = _lookup("sampler", name, SAMPLERS, optuna.samplers)
    check_args(cls, args, "sampler")
    try:
        return cls(**args)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}({_fmt(args)}) is invalid: {e}") from e


def build_pruner(name: str, args: Mapping[str, Any]) -> Any:
    """Instantiate an allowlisted Optuna pruner (``PatientPruner`` wraps ``wrapped:``)."""
    import optuna

    cls = _lookup("pruner", name, PRUNERS, optuna.pruners)
    args = dict(args)
    if name == "PatientPruner":
        wrapped = args.pop("wrapped", None)
        if not isinstance(wrapped, Mapping) or "name" not in wrapped:
            raise ValueError("PatientPruner needs wrapped: {name: MedianPruner, ...}, the pruner it delays")
        inner = dict(wrapped)
        args["wrapped_pruner"] = build_pruner(str(inner.pop("name")), inner)
    check_args(cls, args, "pruner")
    try:
        return cls(**args)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}({_fmt(args)}) is invalid: {e}") from e


def _fmt(args: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in args.items())
