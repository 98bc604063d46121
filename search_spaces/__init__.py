"""Search spaces: the YAML parameter model (``space``), the hyperparameters a space may
name (``params``) and the preset spaces shipped with tuner (``presets/``).

Imports nothing of tuner's: the study file's schema and the objectives build on it."""

from __future__ import annotations

from pathlib import Path

from search_spaces.space import ParamSpec, Scalar, SearchSpace

__all__ = ["PRESET_DIR", "ParamSpec", "Scalar", "SearchSpace", "preset_names", "preset_path"]

PRESET_DIR = Path(__file__).parent / "presets"


def preset_names() -> list[str]:
    """Names of the preset spaces (``search_space: <name>`` in a study file)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path | None:
    """The file of preset ``name``, or None when there is no such preset."""
    path = PRESET_DIR / f"{name}.yaml"
    return path if path.is_file() else None
