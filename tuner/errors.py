"""Error hierarchy: everything tuner raises on purpose derives from ``TunerError``.

The CLI turns a ``TunerError`` into a one-paragraph message and exit status 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "LockboxError", "StorageError", "TunerError"]


class TunerError(Exception):
    """Root of all errors tuner reports to the user."""

    exit_code = 2


class ConfigError(TunerError, ValueError):
    """The study file (or a CLI override) is invalid."""


class DataError(TunerError, ValueError):
    """The dataset cannot be loaded or fails a blocking pre-flight check."""


class StorageError(TunerError):
    """The study storage cannot be reached or does not match this study."""


class LockboxError(TunerError):
    """The held-out test split was used in a way the lockbox forbids."""
