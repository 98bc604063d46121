"""The search-space model: a YAML mapping of parameter specs → ``trial.suggest_*`` calls.

A spec is one of::

    lr:        {float: [1.0e-4, 1.0e-1], log: true}
    layers:    {int: [1, 4]}
    batchnorm: {categorical: [none, before_activation, after_activation]}
    momentum:  {float: [0.8, 0.99], when: {optimizer: sgd}}   # conditional
    epochs:    {fixed: 10}      # or simply ``epochs: 10``

``when`` maps parent parameters to a value or a list of values; the parameter is
sampled only when every parent was sampled with one of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ParamSpec", "SearchSpace", "Scalar"]

Scalar = bool | int | float | str | None


class ParamSpec(BaseModel):
    """One searchable (or fixed) hyperparameter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    float_: tuple[float, float] | None = Field(default=None, alias="float")
    int_: tuple[int, int] | None = Field(default=None, alias="int")
    categorical: tuple[Scalar, ...] | None = None
    fixed: Scalar = None
    log: bool = False
    step: float | None = Field(default=None, gt=0)
    when: dict[str, Scalar | list[Scalar]] | None = None

    @model_validator(mode="before")
    @classmethod
    def _scalar_is_fixed(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            if isinstance(data, (list, tuple)):
                raise ValueError(
                    "a list is ambiguous here: write {categorical: [...]} to search over its "
                    "values, or {float: [low, high]} / {int: [low, high]} for a range"
                )
            return {"fixed": data}
        if len(data) == 0:
            raise ValueError(
                "empty spec: give one of float: [low, high], int: [low, high], "
                "categorical: [choices] or fixed: value"
            )
        for key in ("float", "int", "step"):
            value = data.get(key)
            if isinstance(value, bool) or (
                isinstance(value, (list, tuple)) and any(isinstance(v, bool) for v in value)
            ):
                raise ValueError(f"{key} takes numbers, not true/false, got {value!r}")
        return data

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> ParamSpec:
        kinds = [
            k
            for k, v in (
                ("float", self.float_),
                ("int", self.int_),
                ("categorical", self.categorical),
            )
            if v is not None
        ]
        if "fixed" in self.model_fields_set:
            kinds.append("fixed")
        if len(kinds) != 1:
            raise ValueError(
                "give exactly one of float: [low, high], int: [low, high], categorical: [...] "
                f"or fixed: value, got {kinds or 'none'}"
            )
        rng = self.float_ if self.float_ is not None else self.int_
        if rng is not None:
            low, high = rng
            if not (math.isfinite(low) and math.isfinite(high)):
                raise ValueError(f"range bounds must be finite, got [{low}, {high}]")
            if low > high:
                raise ValueError(f"low must be <= high, got [{low}, {high}]: swap them")
            if self.log and low <= 0:
                raise ValueError(f"log: true needs low > 0, got low={low}: use a positive lower bound")
            if self.log and self.step is not None:
                raise ValueError("log: true and step cannot be combined (Optuna forbids it)")
            if self.int_ is not None and self.step is not None and self.step != int(self.step):
                raise ValueError(f"an int range needs an integer step, got {self.step}")
            if self.step is not None and high > low and self.step > high - low:
                raise ValueError(
                    f"step {self.step:g} is wider than the range [{low}, {high}]: only {low} could "
                    f"ever be drawn; use a step of at most {high - low:g}, or fixed: {low}"
                )
        elif self.log or self.step is not None:
            raise ValueError("log and step apply to float and int ranges only")
        if self.categorical is not None and len(self.categorical) == 0:
            raise ValueError("categorical needs at least one choice")
        if self.categorical is not None and len(set(map(repr, self.categorical))) != len(self.categorical):
            raise ValueError(f"categorical choices must be distinct, got {list(self.categorical)}")
        return self

    @property
    def kind(self) -> str:
        if self.float_ is not None:
            return "float"
        if self.int_ is not None:
            return "int"
        if self.categorical is not None:
            return "categorical"
        return "fixed"

    def choices(self) -> tuple[Scalar, ...] | None:
        """The values this parameter can take, when it is discrete."""
        if self.categorical is not None:
            return self.categorical
        if self.kind == "fixed":
            return (self.fixed,)
        return None


class SearchSpace(BaseModel):
    """An ordered set of named parameter specs, validated as a whole."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    params: dict[str, ParamSpec]

    @model_validator(mode="before")
    @classmethod
    def _wrap(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and set(data) != {"params"}:
            return {"params": dict(data)}
        return data

    @model_validator(mode="after")
    def _conditions_refer_to_known_values(self) -> SearchSpace:
        if not self.params:
            raise ValueError(
                "the search space is empty: name at least one parameter, "
                "e.g. lr: {float: [1.0e-4, 1.0e-1], log: true}"
            )
        for name, spec in self.params.items():
            for parent, wanted in (spec.when or {}).items():
                if parent == name:
                    raise ValueError(f"{name}.when refers to {name} itself")
                if parent not in self.params:
                    raise ValueError(
                        f"{name}.when refers to {parent!r}, which is not a parameter of this "
                        f"search space (parameters: {', '.join(self.params)})"
                    )
                choices = self.params[parent].choices()
                if choices is None:
                    raise ValueError(
                        f"{name}.when: {parent!r} is a continuous range; conditions need a "
                        "categorical or fixed parent"
                    )
                values = wanted if isinstance(wanted, list) else [wanted]
                missing = [v for v in values if v not in choices]
                if missing:
                    raise ValueError(
                        f"{name}.when: {parent} can never be {missing[0]!r} (its choices: {list(choices)})"
                    )
        self._order()  # raises on cycles
        return self

    def _order(self) -> list[str]:
        """Parameters with every parent before its children (stable otherwise)."""
        done: list[str] = []
        visiting: set[str] = set()

        def visit(n: str) -> None:
            if n in done:
                return
            if n in visiting:
                raise ValueError(f"the when: conditions form a cycle through {n!r}")
            visiting.add(n)
            for parent in self.params[n].when or {}:
                visit(parent)
            visiting.discard(n)
            done.append(n)

        for n in self.params:
            visit(n)
        return done

    @property
    def names(self) -> list[str]:
        return list(self.params)

    def suggest(self, trial: Any) -> dict[str, Scalar]:
        """Ask ``trial`` for every active parameter and return the chosen values."""
        values: dict[str, Scalar] = {}
        for name in self._order():
            spec = self.params[name]
            if not _active(spec, values):
                continue
            if spec.float_ is not None:
                low, high = spec.float_
                values[name] = trial.suggest_float(name, low, high, log=spec.log, step=spec.step)
            elif spec.int_ is not None:
                low, high = spec.int_
                values[name] = trial.suggest_int(name, low, high, log=spec.log, step=int(spec.step or 1))
            elif spec.categorical is not None:
                values[name] = trial.suggest_categorical(name, list(spec.categorical))
            else:
                values[name] = spec.fixed
        return values

    def complete(self, params: Mapping[str, Scalar]) -> dict[str, Scalar]:
        """A trial's ``params`` as Optuna stores them (the searched ones) with the fixed
        values the trial trained with too (those ``suggest`` returned without asking): what
        the refit of that trial must train."""
        values = dict(params)
        for name in self._order():
            spec = self.params[name]
            if spec.kind == "fixed" and name not in values and _active(spec, values):
                values[name] = spec.fixed
        return values

    def distributions(self) -> dict[str, Any]:
        """Optuna distributions of the searched parameters (fixed ones have none)."""
        import optuna.distributions as d

        out: dict[str, Any] = {}
        for name, spec in self.params.items():
            if spec.float_ is not None:
                out[name] = d.FloatDistribution(*spec.float_, log=spec.log, step=spec.step)
            elif spec.int_ is not None:
                out[name] = d.IntDistribution(*spec.int_, log=spec.log, step=int(spec.step or 1))
            elif spec.categorical is not None:
                out[name] = d.CategoricalDistribution(list(spec.categorical))
        return out


def _active(spec: ParamSpec, values: Mapping[str, Scalar]) -> bool:
    for parent, wanted in (spec.when or {}).items():
        allowed = wanted if isinstance(wanted, list) else [wanted]
        if parent not in values or values[parent] not in allowed:
            return False
    return True
