"""A loaded dataset: features and targets in memory (integer class labels, or numbers
for ``task: regression``), with its fingerprint."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Dataset", "unit_float"]


def unit_float(images: np.ndarray) -> np.ndarray:
    """uint8 images as the models see them: float32 in ``[0, 1]``."""
    return images.astype(np.float32) / np.float32(255.0)


@dataclass(frozen=True)
class Dataset:
    """Features and labels in memory, plus what a model needs to know of them."""

    X: np.ndarray  # float32, (N, F) or (N, C, H, W); a streamed image folder: uint8 on disk
    y: np.ndarray  # classification: int64 in 0..C-1; regression: float64 in the user's units
    classes: list[str]  # regression: empty
    source: str
    feature_names: list[str] = field(default_factory=list)
    # What loading did that the user should hear once (e.g. float labels read as
    # integers); printed at pre-flight, never part of the fingerprint.
    notes: tuple[str, ...] = ()
    task: str = "classification"  # or "regression"

    @property
    def is_regression(self) -> bool:
        return self.task == "regression"

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_outputs(self) -> int:
        """Width of the network's head: one logit per class, or one number."""
        return 1 if self.is_regression else len(self.classes)

    @property
    def is_image(self) -> bool:
        return self.X.ndim == 4

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])

    @property
    def streamed(self) -> bool:
        """Images read from a uint8 memory map a batch at a time (``data.cache: stream``)."""
        from objectives.lazy import is_streamed

        return is_streamed(self.X)

    def rows(self, index: Any) -> np.ndarray:
        """``X[index]`` as float32, as the model sees it (streamed images scaled by 1/255)."""
        X = self.X[index]
        return unit_float(X) if self.streamed else X

    def fingerprint(self) -> str:
        """A hash of the features, labels and class names (what the splits depend on)."""
        h = hashlib.sha256()
        h.update(str(self.X.shape).encode())
        # a chunk at a time, as float32: a streamed folder hashes as its in-memory twin
        from objectives.lazy import chunk_rows

        step = chunk_rows(self.X.shape)
        for start in range(0, len(self.X), step):
            h.update(np.ascontiguousarray(self.rows(slice(start, start + step))).tobytes())
        h.update(np.ascontiguousarray(self.y).tobytes())
        h.update("\x00".join(self.classes).encode())
        if self.is_regression:  # the same numbers read as classes are another dataset
            h.update(b"\x00regression")
        return h.hexdigest()[:16]
