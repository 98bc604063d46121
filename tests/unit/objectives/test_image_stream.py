"""The streamed image path: the disk cache (decoded once, reused, rebuilt when the folder
changes), and training from it giving what the in-memory path gives: the same values,
fingerprint, splits, statistics and trained weights."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import objectives.images as images
from objectives.data import load_dataset
from objectives.lazy import LazyImages, device_rows
from objectives.models import input_stats
from objectives.splits import make_splits
from tuner.errors import DataError


def _folder(root: Path, per_class: int = 12) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(["cat", "dog"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 120, (10 + i % 3, 12, 3), dtype=np.uint8)
            arr[:, :, c] += 120
            Image.fromarray(arr, "RGB").save(root / name / f"{i}.png")
    return root


def _load(tmp_path: Path, cache: str, **kw):
    return load_dataset(
        "imagefolder:imgs", base_dir=tmp_path, image_size=8, cache=cache, cache_dir=tmp_path / "cache", **kw
    )


def test_stream_and_memory_paths_hold_the_same_data(tmp_path: Path) -> None:
    _folder(tmp_path / "imgs")
    memory, stream = _load(tmp_path, "memory"), _load(tmp_path, "stream")
    assert memory.X.dtype == np.float32 and stream.streamed and isinstance(stream.X, np.memmap)
    assert np.array_equal(stream.rows(slice(None)), memory.X)
    assert stream.fingerprint() == memory.fingerprint()
    assert stream.classes == memory.classes and np.array_equal(stream.y, memory.y)
    a = make_splits(memory.y, test_size=0.25, folds=2, seed=0)
    b = make_splits(stream.y, test_size=0.25, folds=2, seed=0)
    assert a.fingerprint(memory.fingerprint()) == b.fingerprint(stream.fingerprint())
    rows = a.folds[0][0]
    for got, want in zip(input_stats(stream.X, True, rows), input_stats(memory.X, True, rows), strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    disk = _load(tmp_path, "disk")  # the disk cache read into memory: the same float32 array
    assert disk.X.dtype == np.float32 and np.array_equal(disk.X, memory.X)


def test_the_cache_is_decoded_once_and_rebuilt_when_the_folder_changes(tmp_path: Path, monkeypatch) -> None:
    _folder(tmp_path / "imgs")
    first = _load(tmp_path, "stream")
    assert "decoded once" in first.notes[0]

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(images, "_decode", no_decoding)
    again = _load(tmp_path, "stream")
    assert "no decoding" in again.notes[0] and np.array_equal(again.X, first.X)
    assert "no decoding" in _load(tmp_path, "auto").notes[0]  # auto reads an existing cache too
    monkeypatch.undo()
    img = tmp_path / "imgs" / "cat" / "0.png"
    Image.new("RGB", (12, 12), (255, 0, 0)).save(img)
    os.utime(img, ns=(1, 1))
    changed = _load(tmp_path, "stream")
    assert "decoded once" in changed.notes[0] and not np.array_equal(changed.X, first.X)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 2 and not list(
        (tmp_path / "cache").glob("*partial*")
    )


def test_auto_streams_above_the_cache_limit_and_memory_refuses(tmp_path: Path) -> None:
    _folder(tmp_path / "imgs")
    big = load_dataset("imagefolder:imgs", base_dir=tmp_path, image_size=256, cache_limit_mb=1)
    assert big.streamed and "streams" in big.notes[0]
    assert (tmp_path / ".tuner-cache").is_dir()  # the default cache folder, beside the images
    with pytest.raises(DataError, match="data.cache: stream"):
        load_dataset("imagefolder:imgs", base_dir=tmp_path, image_size=256, cache_limit_mb=1, cache="memory")


def test_a_corrupt_image_is_named(tmp_path: Path) -> None:
    _folder(tmp_path / "imgs", per_class=3)
    (tmp_path / "imgs" / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken\.png"):
        _load(tmp_path, "stream")
    assert not list((tmp_path / "cache").glob("*.npy"))  # nothing half-written


def test_lazy_images_serve_batches_slices_and_views(tmp_path: Path) -> None:
    _folder(tmp_path / "imgs")
    stream = _load(tmp_path, "stream")
    X = device_rows(stream.X, np.array([5, 1, 9, 3]), torch.device("cpu"))
    assert isinstance(X, LazyImages) and len(X) == 4 and X.shape == (4, 3, 8, 8)
    want = torch.as_tensor(stream.rows([5, 1, 9, 3]))
    assert torch.equal(X[torch.arange(4)], want)
    assert torch.equal(X[torch.tensor([2, 0])], want[[2, 0]])  # any order, duplicates too
    assert torch.equal(X[1:3], want[1:3])
    sub = X.index_select(0, torch.tensor([3, 3, 0]))
    assert isinstance(sub, LazyImages) and torch.equal(sub[torch.arange(3)], want[[3, 3, 0]])
    assert float(X.max()) == 1.0


def test_training_from_the_stream_matches_training_in_memory(tmp_path: Path) -> None:
    """Same seed, same rows: the same weights after an epoch, from either path."""
    from objectives.fold import train_fold
    from objectives.guard import DivergenceGuard
    from objectives.models import ModelSpec
    from search_spaces.params import HParams
    from tests.conftest import tiny_study
    from tuner.config import StudyConfig

    _folder(tmp_path / "imgs")
    memory, stream = _load(tmp_path, "memory"), _load(tmp_path, "stream")
    cfg = StudyConfig.model_validate(
        tiny_study(**{"data.source": "imagefolder:imgs", "model.family": "cnn", "training.max_epochs": 2})
    )
    rows = np.arange(0, 24, 2)
    hp = HParams.resolve({"width": 4, "depth": 1}, 4)
    spec = ModelSpec("cnn", (3, 8, 8), 2)
    models = []
    for ds in (memory, stream):
        mean, std = input_stats(ds.X, True, rows)
        models.append(
            train_fold(
                cfg,
                spec,
                {"augment.hflip": 0.5},
                hp,
                device_rows(ds.X, rows, torch.device("cpu")),
                torch.as_tensor(ds.y[rows]),
                mean=mean,
                std=std,
                guard=DivergenceGuard(cfg.divergence),
                fold=0,
                seed=3,
            )  # fmt: skip
        )
    for a, b in zip(models[0].state_dict().values(), models[1].state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5)


def test_loader_workers_read_the_same_batches(tmp_path: Path) -> None:
    from objectives.lazy import batches

    _folder(tmp_path / "imgs")
    stream = _load(tmp_path, "stream")
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(0))
    inline = list(batches(device_rows(stream.X, None, torch.device("cpu")), perm, 5))
    ahead = list(batches(device_rows(stream.X, None, torch.device("cpu"), workers=2), perm, 5))
    assert [len(r) for r, _ in ahead] == [5, 5, 5, 5, 4]
    for (r1, x1), (r2, x2) in zip(inline, ahead, strict=True):
        assert torch.equal(r1, r2) and torch.equal(x1, x2)
