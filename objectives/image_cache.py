"""The on-disk image cache: an image folder decoded ONCE into a uint8 ``.npy`` beside the
study (``data.cache_dir``), keyed by the folder's fingerprint and the decoding settings,
and reused by every trial, worker and re-run.

The key hashes every image's path (relative to the folder), size and modification time,
with the image size: a changed, added or removed image is a new key, so a stale cache is
never read. The array is written under a temporary name and renamed
into place after its record (``.json``: classes, labels, shape) is written, so a killed
decode leaves no cache that looks complete; an exclusive lock makes the workers of one
machine that start together decode once: the first decodes, the others wait and read.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CacheEntry", "cache_key", "cached_images", "is_cached"]

FORMAT = "tuner-image-cache/1"


class CacheEntry:
    """A decoded folder on disk: the uint8 images (memory-mapped), labels, classes."""

    def __init__(self, array: Path, record: dict[str, Any], reused: bool) -> None:
        self.path = array
        self.X: np.ndarray = np.load(array, mmap_mode="r")
        self.y = np.asarray(record["labels"], dtype=np.int64)
        self.classes: list[str] = list(record["classes"])
        self.reused = reused


def cache_key(samples: list[tuple[str, int]], root: Path, size: tuple[int, int]) -> str:
    """A hash of the folder's images (relative path, class, bytes, mtime) and the size."""
    h = hashlib.sha256(f"{FORMAT}|{size[0]}x{size[1]}".encode())
    for path, label in samples:
        st = os.stat(path)
        h.update(f"{os.path.relpath(path, root)}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    return cache_dir / f"{key}.npy", cache_dir / f"{key}.json"


def is_cached(cache_dir: Path, key: str) -> bool:
    """Whether a complete cache entry (array and record) exists under ``key``."""
    return all(p.is_file() for p in _paths(cache_dir, key))


def cached_images(
    folder: Path,
    key: str,
    n: int,
    classes: list[str],
    cache_dir: Path,
    build: Callable[[], tuple[tuple[int, int, int], Callable[[np.ndarray, np.ndarray], None]]],
) -> CacheEntry:
    """The cache entry ``key`` (``cache_key``) of ``folder``'s ``n`` images: read when
    present, else made under an exclusive lock by ``build()``, which returns the sample
    shape ``(C, H, W)`` and ``decode(X, y)`` (filling a uint8 array ``(n, C, H, W)`` and the
    labels)."""
    import fcntl

    cache_dir.mkdir(parents=True, exist_ok=True)
    array, record_path = _paths(cache_dir, key)
    with open(cache_dir / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker decoding the same folder: wait for it
        if is_cached(cache_dir, key):
            return CacheEntry(array, json.loads(record_path.read_text()), reused=True)
        shape, decode = build()
        partial = cache_dir / f"{key}.partial.npy"
        X = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=(n, *shape))
        y = np.empty(n, dtype=np.int64)
        try:
            decode(X, y)
            X.flush()
        except BaseException:
            del X
            partial.unlink(missing_ok=True)  # a failed or interrupted decode leaves nothing behind
            raise
        del X
        record = {
            "format": FORMAT,
            "folder": str(folder),
            "classes": classes,
            "labels": y.tolist(),
            "shape": [n, *shape],
        }
        record_path.write_text(json.dumps(record))
        os.replace(partial, array)
    return CacheEntry(array, record, reused=False)
