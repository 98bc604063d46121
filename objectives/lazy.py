"""Images that stay on disk: a uint8 memory-mapped array read a batch at a time.

``LazyImages`` stands where the in-memory path has a float32 tensor on the device, and
answers the few things the training loop asks of one: its length and shape, a batch of
rows (``X[rows]``: read from the memory map, scaled to ``[0, 1]`` as float32, moved to the
device, through pinned memory on CUDA), a slice for prediction, and a subset of rows
(``index_select``: a view, nothing is read). So a fold of a folder larger than memory
costs the memory of a batch, not of the fold.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = ["CHUNK_BYTES", "LazyImages", "batches", "chunk_rows", "device_rows", "is_streamed", "stream_stats"]

CHUNK_BYTES = 64 * 2**20  # what one chunk of a walk over the whole array may hold


def chunk_rows(shape: tuple[int, ...], itemsize: int = 4, most: int = 4096) -> int:
    """Rows per chunk for samples of ``shape`` (``(N, ...)`` or one sample's) at
    ``itemsize`` bytes a value: ``most`` at the most, and never above ``CHUNK_BYTES``, so a
    walk over 512-px images holds a few dozen of them, not thousands."""
    per_row = int(np.prod(shape[1:] if len(shape) > 1 else shape)) * itemsize
    return max(1, min(most, CHUNK_BYTES // max(per_row, 1)))


def is_streamed(X: Any) -> bool:
    """Whether ``X`` is a streamed image array (uint8 on disk), not float32 in memory."""
    return isinstance(X, np.ndarray) and X.dtype == np.uint8


def _read(store: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``store[rows]`` (uint8), read in ascending row order, which a memory map serves far
    faster, and put back in the order asked (duplicates too)."""
    order = np.argsort(rows, kind="stable")
    batch = np.empty((len(rows), *store.shape[1:]), dtype=np.uint8)
    batch[order] = store[rows[order]]
    return batch


class LazyImages:
    """Rows ``rows`` of a uint8 ``(N, C, H, W)`` array, fetched as float32 batches on ``device``."""

    ndim = 4

    def __init__(
        self, store: np.ndarray, rows: np.ndarray | None, device: torch.device, workers: int = 0
    ) -> None:
        self.store = store
        self.rows = np.arange(len(store)) if rows is None else np.asarray(rows, dtype=np.int64)
        self.device = torch.device(device)
        self.workers = workers  # DataLoader processes that read training batches ahead
        self._pin = self.device.type == "cuda"

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.store.shape[1:])

    def _positions(self, index: Any) -> np.ndarray:
        if isinstance(index, slice):
            return self.rows[index]
        if isinstance(index, torch.Tensor):
            index = index.detach().cpu().numpy()
        return self.rows[np.asarray(index, dtype=np.int64)]

    def __getitem__(self, index: Any) -> torch.Tensor:
        """A batch: the rows as float32 in ``[0, 1]`` on the device."""
        t = torch.from_numpy(_read(self.store, self._positions(index)))
        if self._pin:
            t = t.pin_memory()
        return t.to(self.device, non_blocking=self._pin).float().div_(255.0)

    def index_select(self, dim: int, index: Any) -> LazyImages:
        """A subset of the rows (a view: nothing is read)."""
        if dim != 0:
            raise ValueError("LazyImages selects rows (dim 0) only")
        return LazyImages(self.store, self._positions(index), self.device, self.workers)

    def max(self) -> torch.Tensor:
        """The scale of the images: they are read as ``uint8 / 255``, so at most 1."""
        return torch.tensor(1.0)


def device_rows(X: Any, rows: np.ndarray | None, device: torch.device, workers: int = 0) -> Any:
    """Rows of a dataset's ``X`` for training on ``device``: a float32 tensor for the
    in-memory path, a ``LazyImages`` view for the streamed one (read ahead by ``workers``
    DataLoader processes)."""
    if is_streamed(X):
        return LazyImages(X, rows, device, workers)
    return torch.as_tensor(X if rows is None else X[rows], device=device)


class _Batches(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """One epoch's training batches of a memory-mapped array, for DataLoader workers: each
    worker opens the file itself (a memory map does not travel to another process)."""

    def __init__(self, path: str, batches: list[np.ndarray]) -> None:
        self.path, self.batches = path, batches
        self._store: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self._store is None:
            self._store = np.load(self.path, mmap_mode="r")
        return torch.from_numpy(_read(self._store, self.batches[i]))


def batches(X: Any, perm: torch.Tensor, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """An epoch's training batches ``(positions, inputs)`` in the order of ``perm``: indexed
    from the device tensor in memory, read from the memory map for a streamed folder (by
    ``X.workers`` DataLoader processes ahead of the training loop when there are any, through
    pinned memory on CUDA)."""
    chunks = [perm[start : start + size] for start in range(0, len(perm), size)]
    if not isinstance(X, LazyImages) or X.workers == 0:
        for rows in chunks:
            yield rows, X[rows]
        return
    from torch.utils.data import DataLoader

    data = _Batches(str(X.store.filename), [X._positions(rows) for rows in chunks])  # type: ignore[attr-defined]
    loader = DataLoader(data, batch_size=None, num_workers=X.workers, pin_memory=X._pin, prefetch_factor=4)
    for rows, xb in zip(chunks, loader, strict=True):
        yield rows, xb.to(X.device, non_blocking=X._pin).float().div_(255.0)


def stream_stats(X: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of ``X[rows] / 255`` (shape (1, C, 1, 1), float64), read a
    chunk at a time: the streamed twin of ``objectives.models.input_stats``."""
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    c = X.shape[1]
    total = np.zeros(c)
    squares = np.zeros(c)
    count = 0
    step = chunk_rows(X.shape, itemsize=8)
    for start in range(0, len(rows), step):
        chunk = X[rows[start : start + step]].astype(np.float64) / 255.0
        total += chunk.sum(axis=(0, 2, 3))
        squares += np.square(chunk).sum(axis=(0, 2, 3))
        count += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
    mean = total / max(count, 1)
    var = np.maximum(squares / max(count, 1) - np.square(mean), 0.0)
    return mean.reshape(1, c, 1, 1), np.sqrt(var).reshape(1, c, 1, 1)
