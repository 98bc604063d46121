"""Over- and under-sampling of training rows: the ``sampling`` hyperparameter.

A remedy for class imbalance beside ``class_weight``. ``oversample`` repeats rows of
the smaller classes, drawn at random with replacement, until every class present
has as many rows as the largest; ``undersample`` keeps a random subset of each class
as large as the smallest. ``objectives.fold.train_fold`` applies it to the training
rows of each fold and of the refit, never to the validation or test rows, so every
score is measured on the data's own class balance.

Classes absent from the rows stay absent: there is nothing to repeat, and the
smallest class is the smallest one present.
"""

from __future__ import annotations

import zlib

import torch

from search_spaces.params import SAMPLINGS

__all__ = ["resample", "resample_index"]


def resample_index(y: torch.Tensor, mode: str, seed: int) -> torch.Tensor | None:
    """Which rows of ``y`` to train on under ``sampling: mode``.

    Args:
        y: class labels (int64), on any device.
        mode: ``none``, ``oversample`` or ``undersample``.
        seed: the fold's seed; the same seed gives the same rows.

    Returns:
        Ascending row indices (int64, on the CPU; a row repeated under ``oversample``
        appears several times), or None when nothing changes: ``none``, a single
        class, or classes already of equal size.

    Raises:
        ValueError: ``mode`` is not one of ``SAMPLINGS``.
    """
    if mode not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {list(SAMPLINGS)}, got {mode!r}")
    if mode == "none" or len(y) == 0:
        return None
    labels = y.detach().to("cpu", torch.int64)
    classes, counts = torch.unique(labels, return_counts=True)
    if int(counts.min()) == int(counts.max()):
        return None
    # its own stream, so the rows drawn do not shift the training loop's shuffles
    gen = torch.Generator().manual_seed(zlib.crc32(f"{seed}/sampling".encode()))
    target = int(counts.max()) if mode == "oversample" else int(counts.min())
    parts: list[torch.Tensor] = []
    for c, n in zip(classes.tolist(), counts.tolist(), strict=True):
        rows = (labels == c).nonzero().flatten()
        if mode == "oversample":
            parts += [rows, rows[torch.randint(n, (target - n,), generator=gen)]]
        else:
            parts.append(rows[torch.randperm(n, generator=gen)[:target]])
    return torch.cat(parts).sort().values


def resample(X: torch.Tensor, y: torch.Tensor, mode: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``X, y`` over- or under-sampled per ``mode`` (see ``resample_index``), on their device.

    Returns the inputs themselves when nothing changes; otherwise new tensors (an
    oversampled copy holds up to ``n_classes`` times the largest class's rows).
    """
    index = resample_index(y, mode, seed)
    if index is None:
        return X, y
    index = index.to(y.device)
    return X.index_select(0, index), y.index_select(0, index)
