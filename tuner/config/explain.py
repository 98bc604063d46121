"""pydantic's validation errors as one paragraph a user can act on: each problem as
``path: what, got value``, an unknown key with the closest allowed one, then the file."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from pydantic import BaseModel, ValidationError

from tuner.config.schema import StudyConfig
from tuner.secrets import mask_secrets

__all__ = ["explain"]


def explain(err: ValidationError, source: str) -> str:
    """One paragraph: each problem as ``path: what, got value`` then the file."""
    parts = []
    for item in err.errors(include_url=False)[:5]:
        loc = [str(x) for x in item["loc"] if not str(x).startswith("function-")]
        loc = [x for x in loc if x not in ("params",)]
        where = ".".join(loc) or "(top level)"
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            parent = _model_at(loc[:-1])
            fields = [f.alias or n for n, f in parent.model_fields.items()] if parent else []
            fields = [f for f in fields if f not in ("base_dir", "source_file")]
            close = difflib.get_close_matches(loc[-1], fields, n=1)
            hint = f"did you mean {close[0]}?" if close else f"allowed: {', '.join(fields)}"
            parts.append(f"unknown key {where} ({hint})")
            continue
        if item["type"] == "missing":
            parts.append(f"{where} is required")
            continue
        if item["type"] in ("model_type", "dict_type") and not isinstance(item.get("input"), Mapping):
            model = _model_at(loc)
            fields = [f.alias or n for n, f in model.model_fields.items()] if model else []
            got = item.get("input")
            shown = "nothing (null)" if got is None else repr(got)
            keys = f" with keys among {', '.join(fields)}" if fields else ""
            parts.append(
                f"{where} must be a mapping{keys}, got {shown}: indent its settings under {loc[-1]}:"
            )
            continue
        got = item.get("input")
        shown = "" if isinstance(got, (Mapping, list)) or got is None else f", got {got!r}"
        if shown and shown in msg:  # our own validators already name the value
            shown = ""
        plain = _plain(msg)
        sep = " " if plain != msg else ": "
        parts.append(f"{where}{sep}{mask_secrets(plain)}{mask_secrets(shown)}")
    more = len(err.errors()) - 5
    tail = f" (and {more} more)" if more > 0 else ""
    return "; ".join(parts) + tail + f" (in {source})"


_PLAIN = [
    (re.compile(r"^Input should be greater than or equal to (.+)$"), r"must be >= \1"),
    (re.compile(r"^Input should be greater than (.+)$"), r"must be > \1"),
    (re.compile(r"^Input should be less than or equal to (.+)$"), r"must be <= \1"),
    (re.compile(r"^Input should be less than (.+)$"), r"must be < \1"),
    (re.compile(r"^Input should be a valid integer.*$"), "must be an integer"),
    (re.compile(r"^Input should be a valid number.*$"), "must be a number"),
    (re.compile(r"^Input should be a valid boolean.*$"), "must be true or false"),
    (re.compile(r"^Input should be a valid string.*$"), "must be a string"),
    (re.compile(r"^Input should be (.+)$"), r"must be \1"),
    (re.compile(r"^String should match pattern '(.+)'$"), r"must match the pattern \1"),
    (re.compile(r"^String should have at least (\d+) characters?$"), r"must have at least \1 character(s)"),
    (re.compile(r"^String should have at most (\d+) characters$"), r"must have at most \1 characters"),
]


def _plain(msg: str) -> str:
    """pydantic's "Input should be ..." as "must be ...", so the message reads as one sentence."""
    for pattern, repl in _PLAIN:
        if pattern.match(msg):
            return pattern.sub(repl, msg)
    return msg


def _model_at(loc: list[str]) -> type[BaseModel] | None:
    model: type[BaseModel] = StudyConfig
    for key in loc:
        field = model.model_fields.get(key)
        ann = getattr(field, "annotation", None)
        inner = [a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type)]
        nxt = next((a for a in inner if issubclass(a, BaseModel)), None)
        if nxt is None:
            return None
        model = nxt
    return model
