"""Image augmentation as hyperparameters, via ``torchvision.transforms.v2``.

Searchable parameters (names with a dot, e.g. ``augment.rotation: {float: [0, 30]}``):

- ``augment.hflip``, ``augment.vflip``: probability of a horizontal / vertical flip;
- ``augment.rotation``: largest rotation in degrees (uniform in ``[-r, r]``);
- ``augment.crop_scale``: smallest area fraction kept by a random resized crop
  (``1`` = no crop), resized back to the input size;
- ``augment.color_jitter``: brightness/contrast (and, for RGB, saturation) jitter
  strength. No hue jitter: its RGB-HSV round trip cost 10x the other jitters here.

Applied to training batches only, never to validation, refit-evaluation or test
batches, on the device where the batch already lives. A v2 transform called on a
batch draws ONE set of random parameters for the whole batch, so each batch is
split into ``GROUPS`` chunks transformed independently: 16 draws per batch,
batched on the device, instead of a Python loop over images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from search_spaces.params import AUGMENT_PARAMS, PREFIX

__all__ = ["Augment", "make_augmenter"]

GROUPS = 16


@dataclass(frozen=True)
class Augment:
    """One trial's augmentation strengths (defaults: off)."""

    hflip: float = 0.0
    vflip: float = 0.0
    rotation: float = 0.0
    crop_scale: float = 1.0
    color_jitter: float = 0.0

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Augment:
        values = {k[len(PREFIX) :]: float(v) for k, v in params.items() if k in AUGMENT_PARAMS}
        return cls(**values)

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) != f.default for f in fields(self))


def make_augmenter(
    aug: Augment, sample_shape: tuple[int, ...], scale: float = 1.0
) -> Callable[[Any], Any] | None:
    """A function ``batch → augmented batch`` for training, or None when nothing is on.

    Args:
        aug: the strengths.
        sample_shape: ``(C, H, W)`` of one image.
        scale: the largest pixel value of the training images: colour jitter works on
            ``[0, 1]`` images, so batches are divided by it and multiplied back.
    """
    if not aug.active:
        return None
    import torch
    from torchvision.transforms import v2

    c, h, w = sample_shape
    steps: list[Any] = []
    if aug.hflip > 0:
        steps.append(v2.RandomHorizontalFlip(aug.hflip))
    if aug.vflip > 0:
        steps.append(v2.RandomVerticalFlip(aug.vflip))
    if aug.rotation > 0:
        steps.append(v2.RandomRotation(aug.rotation))
    if aug.crop_scale < 1:
        steps.append(v2.RandomResizedCrop((h, w), scale=(aug.crop_scale, 1.0), antialias=True))
    jitter = None
    if aug.color_jitter > 0:
        s = aug.color_jitter
        rgb = {"saturation": s} if c == 3 else {}
        jitter = v2.ColorJitter(brightness=s, contrast=s, **rgb)
    geometric = v2.Compose(steps) if steps else None
    scale = float(scale) if scale > 0 else 1.0

    def augment(x: torch.Tensor) -> torch.Tensor:
        chunks = torch.tensor_split(x, min(GROUPS, len(x)))
        out = []
        for chunk in chunks:
            if geometric is not None:
                chunk = geometric(chunk)
            if jitter is not None:
                chunk = jitter(chunk / scale) * scale
            out.append(chunk)
        return torch.cat(out)

    return augment
