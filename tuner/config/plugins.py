"""User code named in the study file as ``module:function`` (``model.factory``,
``objective.function``): imported here, at load time, so that a typo or a module
that fails to import is a config error before any data is read. The study file's
folder is searched first, then ``sys.path``.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["load_callable"]

REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_cache: dict[str, Callable[..., Any]] = {}


def load_callable(ref: str, base_dir: Path | None = None, key: str = "plug-in") -> Callable[..., Any]:
    """Import ``module:function``; raises ``ValueError`` naming ``key`` and the fix."""
    if ref in _cache:
        return _cache[ref]
    if not REF.match(ref):
        raise ValueError(f"{key} must look like package.module:function, got {ref!r}")
    module_name, attr = ref.split(":")
    if base_dir is not None and str(base_dir) not in sys.path:
        sys.path.insert(0, str(base_dir))  # modules beside the study file
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise ValueError(
            f"{key}: cannot import module {module_name!r} ({e}); put {module_name.replace('.', '/')}.py "
            f"beside the study file or install it (pip install -e your package)"
        ) from None
    except Exception as e:
        raise ValueError(f"{key}: importing {module_name!r} raised {type(e).__name__}: {e}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"{key}: module {module_name!r} has no function {attr!r}")
    _cache[ref] = fn
    return fn
