"""Parse human durations such as ``20m``, ``1h30m`` or ``90s`` into seconds."""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")


def parse_duration(value: str | int | float) -> float:
    """Return ``value`` in seconds.

    Accepts a number of seconds or a string of ``<number><unit>`` parts with units
    d, h, m, s (``"1h30m"``). Raises ``ValueError`` with the accepted forms otherwise.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90, '90s', '20m' or '1h30m', got a boolean")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif not isinstance(value, str):
        raise ValueError(
            f"expected a duration such as 90, '90s', '20m' or '1h30m', got a {type(value).__name__}"
        )
    else:
        text = value.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        else:
            parts = _PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"expected a duration such as 90, '90s', '20m' or '1h30m', got {value!r}")
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"a duration must be a positive, finite number of seconds, got {value!r}")
    return seconds
