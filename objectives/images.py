"""Image sources: ``imagefolder:PATH`` and ``torchvision:MNIST|FashionMNIST|CIFAR10``.

Both end as an in-memory ``Dataset`` of float32 images in ``[0, 1]``, shape
``(N, C, H, W)``: the training loop indexes tensors that already sit on the device,
which for the small-to-medium datasets tuner targets is far faster than a
DataLoader per epoch (every trial re-reads the data many times: K folds x epochs).

- ``imagefolder:PATH``: torchvision's ``ImageFolder`` layout (one sub-folder per
  class). Every image is decoded ONCE, in DataLoader worker processes (pinned
  memory when CUDA is present), resized to ``data.image_size`` and cached as one
  tensor. The cache must fit under ``data.cache_limit_mb`` (default 4096 MiB);
  above it tuner refuses with a clear error rather than streaming from disk (a
  per-epoch decoding path is not implemented: lower ``data.image_size``, use a
  subset, or raise the limit if the machine has the memory).
- ``torchvision:NAME``: the official *training* split of the torchvision dataset
  read from ``data.root`` (tuner fences off its own test split from it).
  ``data.download: true`` lets torchvision fetch missing files; without it a
  missing file is an error saying where to put the files. Nothing is ever
  downloaded at import time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from objectives.dataset import Dataset
from tuner.errors import DataError

__all__ = ["TORCHVISION", "load_imagefolder", "load_torchvision", "parse_image_size"]

TORCHVISION = ("MNIST", "FashionMNIST", "CIFAR10")
DEFAULT_IMAGE_SIZE = 64
DEFAULT_CACHE_LIMIT_MB = 4096
EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# Where torchvision looks for each dataset's files under data.root.
_EXPECTED = {
    "MNIST": "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (the four files, unzipped)",
    "FashionMNIST": "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (unzipped)",
    "CIFAR10": "cifar-10-batches-py/ (data_batch_1..5, test_batch, batches.meta: the "
    "unpacked cifar-10-python.tar.gz)",
}


def parse_image_size(value: Any) -> tuple[int, int] | None:
    """``64`` or ``[h, w]`` → ``(h, w)``; None stays None."""
    if value is None:
        return None
    if isinstance(value, int):
        return (value, value)
    h, w = value
    return (int(h), int(w))


def _check_cache(n: int, c: int, size: tuple[int, int], limit_mb: int, what: str) -> None:
    need = n * c * size[0] * size[1] * 4 / 2**20
    if need > limit_mb:
        raise DataError(
            f"{what}: {n} images of {c}x{size[0]}x{size[1]} need {need:,.0f} MiB as a float32 "
            f"tensor, above data.cache_limit_mb={limit_mb}. tuner decodes images once and keeps "
            "them in memory (it has no streaming path); lower data.image_size, tune on a subset "
            "of the images, or raise data.cache_limit_mb if this machine has the memory"
        )


class _Decode:
    """Picklable per-image transform for the DataLoader workers: PIL → float tensor."""

    def __init__(self, size: tuple[int, int], mode: str) -> None:
        self.size = size
        self.mode = mode

    def __call__(self, img: Any) -> Any:
        import torch
        from PIL import Image

        img = img.convert(self.mode).resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
        arr = arr[:, :, None] if arr.ndim == 2 else arr
        return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def _pil_loader(path: str) -> Any:
    from PIL import Image

    with open(path, "rb") as f:
        img = Image.open(f)
        img.load()
        return img


def load_imagefolder(
    path: Path,
    source: str,
    *,
    image_size: tuple[int, int] | None,
    cache_limit_mb: int = DEFAULT_CACHE_LIMIT_MB,
    workers: int | None = None,
) -> Any:
    """Decode an ``ImageFolder`` tree once into a ``Dataset`` (see the module docstring)."""
    import torch
    from torch.utils.data import DataLoader
    from torchvision.datasets import DatasetFolder

    if not path.is_dir():
        raise DataError(
            f"{path} is not a folder (data.source: {source}); imagefolder: needs one sub-folder "
            "per class, e.g. PATH/emergency/*.jpg and PATH/non_emergency/*.jpg"
        )
    size = image_size or (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
    try:
        folder = DatasetFolder(str(path), loader=_pil_loader, extensions=EXTENSIONS)
    except (FileNotFoundError, RuntimeError) as e:
        raise DataError(
            f"{path} (data.source: {source}): {e}. imagefolder: needs one sub-folder per class, "
            "each with at least one image; remove empty class folders"
        ) from None
    if len(folder.classes) < 2:
        raise DataError(f"{path}: found one class folder ({folder.classes[0]}); need at least 2")
    # Greyscale only when every image is greyscale; a mixed folder becomes RGB.
    from PIL import Image

    modes = set()
    for p, _ in folder.samples:
        try:
            with Image.open(p) as im:
                modes.add(im.mode)
        except Exception as e:
            raise DataError(f"cannot read {p} as an image: {e}; remove or replace it") from None
    mode = "L" if modes <= {"L", "1", "I;16", "I"} else "RGB"
    c = 1 if mode == "L" else 3
    n = len(folder.samples)
    _check_cache(n, c, size, cache_limit_mb, f"imagefolder {path}")
    folder.transform = _Decode(size, mode)
    cuda = torch.cuda.is_available()
    if workers is None:
        # Worker start-up costs ~0.1-0.5 s each: only worth it beyond a few hundred images.
        workers = 0 if n < 512 else min(8, os.cpu_count() or 1)
    loader = DataLoader(folder, batch_size=256, num_workers=workers, pin_memory=cuda, shuffle=False)
    X = torch.empty((n, c, *size), dtype=torch.uint8)
    y = np.empty(n, dtype=np.int64)
    at = 0
    try:
        for xb, yb in loader:
            X[at : at + len(xb)] = xb
            y[at : at + len(xb)] = yb.numpy()
            at += len(xb)
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{path}: decoding the images failed: {e}") from None
    images = X.numpy().astype(np.float32) / 255.0
    return Dataset(X=images, y=y, classes=list(folder.classes), source=source)


def load_torchvision(
    name: str,
    source: str,
    *,
    root: Path,
    download: bool,
    image_size: tuple[int, int] | None,
    cache_limit_mb: int = DEFAULT_CACHE_LIMIT_MB,
) -> Any:
    """The training split of torchvision's ``name`` from ``root`` as a ``Dataset``."""
    import torch
    import torchvision.datasets as tvd

    if name not in TORCHVISION:
        raise DataError(f"unknown torchvision dataset {name!r}; choose from {', '.join(TORCHVISION)}")
    try:
        ds = getattr(tvd, name)(str(root), train=True, download=download)
    except RuntimeError as e:
        if download:
            raise DataError(
                f"{source}: downloading into {root} failed ({e}); check the network, or copy "
                f"the files to {root}/{_EXPECTED[name]} and set data.download: false"
            ) from None
        raise DataError(
            f"{source}: no dataset files under data.root={root} (torchvision expects "
            f"{root}/{_EXPECTED[name]}). Copy them there, or set data.download: true on a "
            "machine with internet access"
        ) from None
    except Exception as e:  # a corrupt or truncated file
        raise DataError(f"{source}: cannot read the files under {root}: {e}") from None
    data = ds.data
    arr = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    arr = arr[:, None] if arr.ndim == 3 else arr.transpose(0, 3, 1, 2)  # (N, C, H, W)
    n, c, h, w = arr.shape
    size = image_size or (h, w)
    _check_cache(n, c, size, cache_limit_mb, source)
    X = torch.from_numpy(np.ascontiguousarray(arr))
    if size != (h, w):
        import torch.nn.functional as F

        X = (
            torch.cat(
                [
                    F.interpolate(X[i : i + 4096].float(), size=size, mode="bilinear", antialias=True)
                    for i in range(0, n, 4096)
                ]
            )
            .round()
            .clamp(0, 255)
        )
    images = X.float().numpy() / 255.0
    y = np.asarray(ds.targets, dtype=np.int64)
    return Dataset(X=images.astype(np.float32), y=y, classes=[str(k) for k in ds.classes], source=source)
