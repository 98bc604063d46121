"""Whether a file-backed storage can be created where the study file points, checked
before anything else exists (an MLflow experiment, an empty study file)."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from tuner.errors import StorageError
from tuner.storage.urls import is_file_storage

__all__ = ["PROBE_BYTES", "check_storage_writable"]

# What a study needs to start: its tables and first trials (a 2 MB disk fits a few).
PROBE_BYTES = 256 * 1024


def check_storage_writable(
    url: str, what: str = "the study storage", key: str = "storage: (or $TUNER_STORAGE)"
) -> None:
    """Refuse a file-backed storage whose folder cannot take the file, before anything
    (MLflow experiment, study file) is created; a server storage is checked by connecting.

    Raises:
        StorageError: naming the folder and the fix.
    """
    if not is_file_storage(url) or ":///" not in url:
        return
    path = Path(url.split(":///", 1)[1].split("?", 1)[0])
    if str(path) in ("", ":memory:"):
        return
    folder = path.parent
    try:
        # A real write of some pages, not os.access: root passes access checks on a
        # read-only mount, and a full disk still lets an empty file be created.
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(b"\0" * PROBE_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as e:
        problem = "is full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "is not a writable folder"
        raise StorageError(
            f"cannot {'write' if path.exists() else 'create'} {what} {path}: its folder "
            f"{folder} {problem} ({e.strerror or e}). Create the folder, free disk space or fix its "
            f"permissions, or point {key} elsewhere"
        ) from None
