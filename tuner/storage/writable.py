"""Whether a file-backed storage can be created where the study file points, checked
before anything else exists (an MLflow experiment, an empty study file)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from tuner.errors import StorageError
from tuner.storage.urls import scheme

__all__ = ["check_storage_writable"]


def check_storage_writable(url: str) -> None:
    """Refuse a file-backed storage whose folder cannot take the file, before anything
    (MLflow experiment, study file) is created; a server storage is checked by connecting.

    Raises:
        StorageError: naming the folder and the fix.
    """
    if scheme(url) not in ("sqlite", "journal") or ":///" not in url:
        return
    path = Path(url.split(":///", 1)[1].split("?", 1)[0])
    if str(path) in ("", ":memory:") or path.exists():
        return
    folder = path.parent
    try:
        # A real write, not os.access: root passes access checks on a read-only mount.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise StorageError(
            f"cannot create the study storage {path}: its folder {folder} is not a writable "
            f"folder ({e.strerror or e}). Create the folder, free disk space or fix its "
            "permissions, or point storage: (or $TUNER_STORAGE) elsewhere"
        ) from None
