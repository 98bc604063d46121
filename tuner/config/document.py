"""Reading a YAML document safely: plain YAML only, no duplicate keys, bounded size,
and ``${VAR}`` / ``${VAR:-default}`` taken from the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import yaml

from tuner.errors import ConfigError

__all__ = ["MAX_FILE_BYTES", "interpolate", "safe_load"]

# A study or search-space file holds settings: larger ones are refused before parsing
# (YAML took minutes and gigabytes on a 50 MB file before any check could run).
MAX_FILE_BYTES = 1_000_000

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(node: Any, path: str) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of the document."""
    if isinstance(node, Mapping):
        return {k: interpolate(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):

        def sub(m: re.Match[str]) -> str:
            value = os.environ.get(m.group(1), m.group(2))
            if value is None:
                raise ConfigError(
                    f"{path} refers to ${{{m.group(1)}}}, but the environment variable "
                    f"{m.group(1)} is not set: export it, or write ${{{m.group(1)}:-default}}"
                )
            return value

        return _ENV.sub(sub, node)
    return node


class _StrictLoader(yaml.SafeLoader):
    """``safe_load``, except that a key given twice is an error, not a silent overwrite."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.MarkedYAMLError(
                        problem=f"duplicate key {key_node.value!r} (YAML would silently keep the "
                        "last one): remove one of them",
                        problem_mark=key_node.start_mark,
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


# YAML aliases can make a tiny file expand to billions of values or refer to itself.
MAX_NODES, MAX_DEPTH = 100_000, 64


def _check_size(doc: Any, source: str) -> None:
    count = 0

    def walk(node: Any, where: str, depth: int) -> None:
        nonlocal count
        count += 1
        if depth > MAX_DEPTH or count > MAX_NODES:
            shown = where if len(where) < 80 else where[:60] + "..."
            raise ConfigError(
                f"{source}: {shown or '(top level)'} nests deeper than {MAX_DEPTH} levels or the "
                f"file expands to more than {MAX_NODES} values (recursive or repeated YAML "
                "aliases?): write the study out plainly"
            )
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, f"{where}.{k}" if where else str(k), depth + 1)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]", depth + 1)

    walk(doc, "", 0)


def safe_load(text: str, source: str) -> Any:
    try:
        doc = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
        _check_size(doc, source)
        return doc
    except yaml.constructor.ConstructorError as e:
        raise ConfigError(
            f"{source}: YAML tag not allowed ({e.problem}); tuner reads plain YAML only (no !!python tags)"
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{source} is not valid YAML{where}: {getattr(e, 'problem', e)}") from None
