"""Load a study file: read it safely, apply command-line overrides, validate it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tuner.config.document import MAX_FILE_BYTES, interpolate, safe_load
from tuner.config.explain import explain
from tuner.config.schema import StudyConfig
from tuner.errors import ConfigError
from tuner.secrets import mask_secrets

__all__ = ["load_config", "validate_config"]


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> StudyConfig:
    """Read, interpolate and validate a study file.

    Args:
        path: the study YAML file.
        overrides: dotted keys (``budget.n_trials``) → values from the command line;
            validated like the file itself.

    Raises:
        ConfigError: naming the file, key path, value and fix.
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise ConfigError(f"study file {path} is a folder: give the path of its study .yaml file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(
                f"study file {path} is {size / 1e6:.1f} MB, over the {MAX_FILE_BYTES // 10**6} MB "
                "limit: a study file holds settings, not data; point data.source at the data file"
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"study file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read study file {path}: {e}") from None
    raw = safe_load(text, path.name)
    if not isinstance(raw, Mapping):
        kind = "empty" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError(
            f"{path.name} must be a YAML mapping (name:, data:, search_space:, ...), got {kind}; "
            "run `tune init` for a starter file"
        )
    raw = interpolate(dict(raw), "")
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, Mapping) else {}
            node = node[key]
        node[leaf] = value
    return validate_config(raw, base_dir=path.resolve().parent, source=path.name)


def validate_config(raw: Mapping[str, Any], base_dir: Path, source: str) -> StudyConfig:
    """Validate an already-parsed document (see ``load_config``)."""
    for reserved in ("base_dir", "source_file"):
        if reserved in raw:
            raise ConfigError(f"unknown key {reserved} (in {source})")
    # base_dir first so search_space can resolve relative files against it.
    data = {"base_dir": base_dir, "source_file": source, **raw}
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(explain(e, source)) from None
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{mask_secrets(str(e))} (in {source})") from None
