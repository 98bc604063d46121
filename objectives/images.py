"""Image sources: ``imagefolder:PATH`` and ``torchvision:MNIST|FashionMNIST|CIFAR10``.

Both end as a ``Dataset`` of images ``(N, C, H, W)`` in ``[0, 1]``. In memory (float32),
the training loop indexes tensors that already sit on the device, which for the
small-to-medium datasets tuner targets is far faster than a DataLoader per epoch
(every trial re-reads the data many times: K folds x epochs).

- ``imagefolder:PATH``: torchvision's ``ImageFolder`` layout (one sub-folder per
  class). Every image is decoded ONCE, in DataLoader worker processes (pinned
  memory when CUDA is present), resized to ``data.image_size``, and by
  ``data.cache`` kept as one float32 tensor in memory (``memory``; up to
  ``data.cache_limit_mb``), or written once to the disk cache
  (``objectives.image_cache``) and read back into memory (``disk``) or streamed
  from it a batch at a time (``stream``, ``objectives.lazy``: folders larger
  than memory). ``auto`` keeps it in memory while it fits, else streams.
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

from objectives.dataset import Dataset, unit_float
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
            f"tensor, above data.cache_limit_mb={limit_mb}. Use data.cache: stream (or auto, the "
            "default) to train from a decoded cache on disk a batch at a time, lower "
            "data.image_size, or raise data.cache_limit_mb if this machine has the memory"
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
    cache: str = "auto",
    cache_dir: Path | None = None,
) -> Any:
    """An ``ImageFolder`` tree as a ``Dataset`` (see the module docstring), by ``cache``:
    ``memory`` decodes into a float32 array in memory; ``disk`` decodes once into the disk
    cache (``objectives.image_cache``) and reads it into memory; ``stream`` trains from the
    disk cache a batch at a time (``objectives.lazy``); ``auto`` is ``memory`` while the
    float32 array fits under ``cache_limit_mb``, else ``stream``."""
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
    from objectives.image_cache import cache_key, is_cached

    where = cache_dir or path.parent / ".tuner-cache"
    key = None if cache == "memory" else cache_key(folder.samples, path, size)  # stats every image once
    if key is not None and (cache in ("disk", "stream") or is_cached(where, key)):
        return _from_disk_cache(folder, path, source, size, where, key, cache, cache_limit_mb, workers)
    mode = _colour_mode(folder)
    c = 1 if mode == "L" else 3
    n = len(folder.samples)
    if key is not None and n * c * size[0] * size[1] * 4 / 2**20 > cache_limit_mb:  # auto, too big
        return _from_disk_cache(
            folder, path, source, size, where, key, "stream", cache_limit_mb, workers, mode
        )
    _check_cache(n, c, size, cache_limit_mb, f"imagefolder {path}")
    X = np.empty((n, c, *size), dtype=np.uint8)
    y = np.empty(n, dtype=np.int64)
    _decode(folder, path, size, mode, workers, X, y)
    images = unit_float(X)
    return Dataset(X=images, y=y, classes=list(folder.classes), source=source)


def _colour_mode(folder: Any) -> str:
    """Greyscale only when every image is greyscale; a mixed folder becomes RGB. Opens
    every image's header, so a file that is no image is named here."""
    from PIL import Image

    modes = set()
    for p, _ in folder.samples:
        try:
            with Image.open(p) as im:
                modes.add(im.mode)
        except Exception as e:
            raise DataError(f"cannot read {p} as an image: {e}; remove or replace it") from None
    return "L" if modes <= {"L", "1", "I;16", "I"} else "RGB"


def _decode(
    folder: Any, path: Path, size: tuple[int, int], mode: str, workers: int | None, X: Any, y: np.ndarray
) -> None:
    """Decode every image of ``folder`` into ``X`` (uint8, in memory or a memory map) in
    DataLoader worker processes, with the labels into ``y``."""
    import torch
    from torch.utils.data import DataLoader

    n = len(folder.samples)
    folder.transform = _Decode(size, mode)
    if workers is None:
        # Worker start-up costs ~0.1-0.5 s each: only worth it beyond a few hundred images.
        workers = 0 if n < 512 else min(8, os.cpu_count() or 1)
    cuda = torch.cuda.is_available()
    from objectives.lazy import chunk_rows

    # batches of at most 64 MiB: large images in batches of 256 would need gigabytes in flight
    batch = chunk_rows((3, *size), itemsize=1, most=256)
    loader = DataLoader(folder, batch_size=batch, num_workers=workers, pin_memory=cuda, shuffle=False)
    at = 0
    try:
        for xb, yb in loader:
            X[at : at + len(xb)] = xb.numpy()
            y[at : at + len(xb)] = yb.numpy()
            at += len(xb)
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{path}: decoding the images failed: {e}") from None


def _from_disk_cache(
    folder: Any,
    path: Path,
    source: str,
    size: tuple[int, int],
    where: Path,
    key: str,
    cache: str,
    cache_limit_mb: int,
    workers: int | None,
    mode: str | None = None,
) -> Dataset:
    """The folder from its disk cache (decoded now when absent): streamed, or read into
    memory as float32 (``disk``; ``auto`` when it fits under the cache limit)."""
    from objectives.image_cache import cached_images

    def build() -> tuple[tuple[int, int, int], Any]:
        m = mode or _colour_mode(folder)
        shape = (1 if m == "L" else 3, *size)
        return shape, lambda X, y: _decode(folder, path, size, m, workers, X, y)

    entry = cached_images(path, key, len(folder.samples), list(folder.classes), where, build)
    note = (
        f"images read from the decoded cache {entry.path} (no decoding)"
        if entry.reused
        else f"images decoded once into {entry.path}"
    )
    X = entry.X
    fits = X.size * 4 / 2**20 <= cache_limit_mb
    if cache == "disk" or (cache == "auto" and fits):
        if not fits:
            _check_cache(len(X), X.shape[1], size, cache_limit_mb, f"imagefolder {path}")
        X = np.empty(X.shape, dtype=np.float32)
        from objectives.lazy import chunk_rows

        step = chunk_rows(X.shape)
        for start in range(0, len(X), step):  # a chunk at a time: no second full-size copy
            X[start : start + step] = unit_float(entry.X[start : start + step])
    else:
        note += "; training streams it a batch at a time"
    return Dataset(X=X, y=entry.y, classes=entry.classes, source=source, notes=(note,))


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
