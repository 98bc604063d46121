"""The ``mlflow:`` section of a study file: where runs are tracked, whether the refit
model is logged, and whether it is registered (``register:``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from tuner.config.sections import _Strict

__all__ = ["MlflowConfig", "RegisterConfig"]


class RegisterConfig(_Strict):
    """``mlflow.register``: the refit model as a new version in the MLflow Model Registry."""

    name: str = Field(min_length=1, max_length=250, description="the registered model's name")
    alias: str = Field(
        default="candidate", min_length=1, max_length=255, description="alias set on the new version"
    )
    allow_extra_looks: bool = Field(
        default=False,
        description="register even when the test split has been scored for more than one "
        "selection (that score is optimistic)",
    )

    @field_validator("name")
    @classmethod
    def _registry_name(cls, v: str) -> str:
        if v != v.strip() or any(c in v for c in "/:"):
            raise ValueError(
                f"{v!r} is not a registered model name MLflow accepts: no '/' or ':' and no blank "
                "space at its ends; e.g. digits-mlp"
            )
        return v

    @field_validator("alias")
    @classmethod
    def _alias(cls, v: str) -> str:
        import re

        if not re.fullmatch(r"[\w\-]+", v) or v.lower() == "latest" or re.fullmatch(r"[vV]\d+", v):
            raise ValueError(
                f"{v!r} is not an alias MLflow accepts: letters, digits, '_' and '-' only, and not "
                "'latest' or v<number> (reserved); e.g. candidate"
            )
        return v


class MlflowConfig(_Strict):
    enabled: bool = True
    tracking_uri: str | None = Field(
        default=None, description="default: sqlite:///mlflow.db beside the study file"
    )
    experiment: str | None = Field(default=None, min_length=1, description="default: the study name")
    log_model: bool = True
    # `register` is also ABCMeta's method on every pydantic model: the field is `registry`
    # in Python, `register` in the study file. A bare string is the name (the schema says
    # so); the validator makes it a RegisterConfig, which `register_config` returns.
    registry: RegisterConfig | str | None = Field(
        default=None,
        alias="register",
        description="register the refit model in the MLflow Model Registry: a name, or "
        "{name, alias, allow_extra_looks}",
    )

    @field_validator("registry", mode="before")
    @classmethod
    def _register_name(cls, v: Any) -> Any:
        if v is None or isinstance(v, dict):
            return v
        if isinstance(v, str):
            return {"name": v}
        raise ValueError(
            f"must be a registered model name (register: digits-mlp) or a mapping "
            f"({{name: digits-mlp, alias: candidate}}), got {v!r}"
        )

    @property
    def register_config(self) -> RegisterConfig | None:
        """``mlflow.register``, always in its long form."""
        return self.registry if isinstance(self.registry, RegisterConfig) else None

    @model_validator(mode="after")
    def _register_needs_model(self) -> MlflowConfig:
        if self.registry is not None and not (self.enabled and self.log_model):
            raise ValueError(
                "register needs the refit model logged to MLflow: set log_model: true and "
                "enabled: true under mlflow, or remove register"
            )
        return self

    @field_validator("experiment")
    @classmethod
    def _experiment_name(cls, v: str | None) -> str | None:
        if v is not None and (not v.strip() or v != v.strip()):
            raise ValueError(
                f"{v!r} has blank space at its ends (or is only spaces): MLflow would show an "
                "experiment that looks unnamed; give a name like my-study, or leave it out to "
                "use the study's name"
            )
        return v
