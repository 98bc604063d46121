"""Issue #6 without studies: image sources, CSV one-hot, training-fold normalization,
augmentation on training batches only, resnet18 shapes, config rules for the new
keys, and the device / mixed-precision resolution (CUDA branches mocked)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from objectives.augment import Augment, make_augmenter
from objectives.data import load_dataset
from objectives.devices import AmpPolicy, DeviceError, configure_backends, resolve_amp, resolve_device
from objectives.guard import Diverged, DivergenceGuard
from objectives.models import ModelSpec, build_model, input_stats
from search_spaces.params import HParams
from tuner.config import DivergenceConfig, validate_config
from tuner.errors import ConfigError, DataError

torch.set_num_threads(1)


def _png_folder(root: Path, mode: str = "RGB", per_class: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(["emergency", "non_emergency"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            size = (10 + i, 12)  # different sizes: the loader resizes them all
            channels = 3 if mode == "RGB" else 1
            arr = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
            arr[..., 0] = 40 + 160 * c  # the classes differ in the first channel
            img = Image.fromarray(arr if channels == 3 else arr[..., 0], mode)
            img.save(root / name / f"{i}.png")
    return root


# ----------------------------------------------------------------------------- images


def test_imagefolder_decodes_resizes_and_labels(tmp_path: Path) -> None:
    folder = _png_folder(tmp_path / "vehicles")
    ds = load_dataset("imagefolder:vehicles", base_dir=tmp_path, image_size=8)
    assert ds.X.shape == (8, 3, 8, 8) and ds.X.dtype == np.float32
    assert ds.classes == ["emergency", "non_emergency"]
    assert ds.y.tolist() == [0] * 4 + [1] * 4
    assert 0.0 <= ds.X.min() and ds.X.max() <= 1.0
    # the first channel encodes the class: the decode kept pixel order and values
    assert ds.X[ds.y == 0, 0].mean() < 0.3 < 0.7 < ds.X[ds.y == 1, 0].mean()
    ds2 = load_dataset(f"imagefolder:{folder}", image_size=[6, 9])
    assert ds2.X.shape == (8, 3, 6, 9)


def test_imagefolder_greyscale_is_one_channel(tmp_path: Path) -> None:
    _png_folder(tmp_path / "g", mode="L")
    ds = load_dataset("imagefolder:g", base_dir=tmp_path, image_size=8)
    assert ds.X.shape == (8, 1, 8, 8)


def test_imagefolder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        load_dataset("imagefolder:missing", base_dir=tmp_path)
    _png_folder(tmp_path / "big")
    with pytest.raises(DataError, match=r"data.cache_limit_mb=1\b.*data.cache: stream"):
        load_dataset("imagefolder:big", base_dir=tmp_path, image_size=512, cache_limit_mb=1, cache="memory")
    (tmp_path / "one" / "only").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(tmp_path / "one" / "only" / "a.png")
    with pytest.raises(DataError, match="need at least 2"):
        load_dataset("imagefolder:one", base_dir=tmp_path)


def _idx(path: Path, arr: np.ndarray) -> None:
    magic = 0x0800 | arr.ndim
    with open(path, "wb") as f:
        f.write(struct.pack(">i", magic) + b"".join(struct.pack(">i", d) for d in arr.shape))
        f.write(arr.astype(np.uint8).tobytes())


def test_torchvision_missing_files_say_where(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        load_dataset("torchvision:MNIST", base_dir=tmp_path, root="store")
    msg = str(e.value)
    assert str(tmp_path / "store" / "MNIST" / "raw") in msg and "data.download: true" in msg


def test_torchvision_mnist_from_local_files(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28))
    _idx(raw / "train-images-idx3-ubyte", images)
    _idx(raw / "train-labels-idx1-ubyte", np.array([0, 1, 2, 0, 1, 2]))
    _idx(raw / "t10k-images-idx3-ubyte", images[:2])  # torchvision wants both splits present
    _idx(raw / "t10k-labels-idx1-ubyte", np.array([0, 1]))
    ds = load_dataset("torchvision:MNIST", root=str(tmp_path), image_size=14)
    assert ds.X.shape == (6, 1, 14, 14) and ds.y.tolist() == [0, 1, 2, 0, 1, 2]
    assert len(ds.classes) == 10
    full = load_dataset("torchvision:MNIST", root=str(tmp_path))
    np.testing.assert_allclose(full.X[:, 0], images / 255.0, atol=1e-6)


# ----------------------------------------------------------------------------- tables


def test_csv_categorical_column_is_one_hot(tmp_path: Path) -> None:
    path = tmp_path / "cars.csv"
    path.write_text(
        "speed,colour,siren,label\n"
        "50,red,1,emergency\n60,white,0,other\n55,red,1,emergency\n40,blue,0,other\n"
    )
    ds = load_dataset("cars.csv", base_dir=tmp_path, target="label")
    assert ds.feature_names == ["speed", "colour_blue", "colour_red", "colour_white", "siren"]
    assert ds.X[:, 1:4].tolist() == [[0, 1, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]]
    assert ds.classes == ["emergency", "other"] and ds.y.tolist() == [0, 1, 0, 1]


# ----------------------------------------------------------------------------- normalization


def test_normalization_uses_training_rows_only() -> None:
    from objectives.cv import CrossValidatedObjective
    from objectives.splits import make_splits

    cfg = validate_config(
        {"name": "n", "data": {"source": "sklearn:wine", "folds": 2}, "search_space": {"lr": 0.01}},
        base_dir=Path("."),
        source="t.yaml",
    )
    ds = load_dataset("sklearn:wine")
    splits = make_splits(ds.y, test_size=0.2, folds=2, seed=0)
    obj = CrossValidatedObjective(cfg, ds, splits, torch.device("cpu"))
    all_mean, all_std = input_stats(ds.X, True)
    for k, (train_rows, _) in enumerate(splits.folds):
        mean, std = obj.fold_stats(k)
        want_mean, want_std = input_stats(ds.X[train_rows], True)
        torch.testing.assert_close(mean, want_mean)
        torch.testing.assert_close(std, want_std)
        assert not torch.allclose(mean, all_mean) and not torch.allclose(std, all_std)


# ----------------------------------------------------------------------------- augmentation


class _Spy(torch.nn.Module):
    """Records what the model is fed in training and in evaluation mode."""

    def __init__(self, n_in: int, n_classes: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(n_in, n_classes)
        self.seen: dict[bool, list[torch.Tensor]] = {True: [], False: []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen[self.training].append(x.detach().clone())
        return self.lin(x.flatten(1))


def test_augmentation_on_training_batches_only() -> None:
    from objectives.training import fit

    g = torch.Generator().manual_seed(0)
    X = torch.rand(32, 1, 6, 6, generator=g)
    X[:, :, :, :3] += 2.0  # left half brighter: a flip is visible
    y = torch.arange(32) % 2
    X_val, y_val = X[:8].clone(), y[:8].clone()
    aug = make_augmenter(Augment(hflip=1.0), (1, 6, 6))
    model = _Spy(36, 2)
    guard = DivergenceGuard(DivergenceConfig())
    hp = HParams(batch_size=32)
    fit(model, hp, X, y, epochs=1, metric="accuracy", n_classes=2, guard=guard, fold=0, seed=0,
        X_val=X_val, y_val=y_val, augment=aug)  # fmt: skip
    train_batch = model.seen[True][0]
    assert torch.equal(torch.sort(train_batch.flatten(1), 0)[0], torch.sort(X.flip(-1).flatten(1), 0)[0])
    assert train_batch[:, :, :, 3:].mean() > train_batch[:, :, :, :3].mean()  # flipped
    evals = model.seen[False]
    assert any(torch.equal(e, X_val) for e in evals)  # validation rows exactly as given
    assert all(e[:, :, :, :3].mean() > e[:, :, :, 3:].mean() for e in evals)  # never flipped


def test_augmenter_strengths() -> None:
    assert make_augmenter(Augment(), (3, 8, 8)) is None
    torch.manual_seed(0)
    x = torch.rand(64, 3, 8, 8)
    out = make_augmenter(Augment(rotation=30, crop_scale=0.5, color_jitter=0.4), (3, 8, 8))(x)
    assert out.shape == x.shape and not torch.allclose(out, x)
    digits_like = torch.rand(16, 1, 8, 8) * 16  # pixels 0..16: jitter must keep the range
    jittered = make_augmenter(Augment(color_jitter=0.5), (1, 8, 8), scale=16.0)(digits_like)
    assert jittered.max() > 8 and jittered.max() <= 16.0 + 1e-4


# ----------------------------------------------------------------------------- resnet18


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 16, 16), (3, 64, 64)])
def test_resnet18_shapes(shape: tuple[int, int, int]) -> None:
    spec = ModelSpec("resnet18", shape, 7)
    mean, std = torch.zeros(1, shape[0], 1, 1), torch.ones(1, shape[0], 1, 1)
    model = build_model(spec, HParams(dropout=0.3), mean, std)
    x = torch.rand(2, *shape)  # FakeData-style random images
    assert model(x).shape == (2, 7)
    net = model[1]
    assert isinstance(net.fc[0], torch.nn.Dropout) and net.fc[0].p == 0.3  # dropout before the head
    stride = net.conv1.stride[0]
    assert stride == (2 if shape[1] >= 64 else 1)


# ----------------------------------------------------------------------------- config


def _cfg(**over):
    raw = {"name": "t", "data": {"source": "sklearn:digits", "folds": 2}, "search_space": {"lr": 0.01}}
    for k, v in over.items():
        raw[k] = v
    return validate_config(raw, base_dir=Path("."), source="t.yaml")


@pytest.mark.parametrize(
    ("over", "match"),
    [
        (
            {"model": {"family": "resnet18"}, "search_space": {"batchnorm": {"categorical": ["none"]}}},
            "search_space.batchnorm does not apply to model.family resnet18",
        ),
        ({"model": {"family": "resnet18"}, "search_space": {"width": 32}}, "width"),
        ({"search_space": {"augment.rotaton": {"float": [0, 30]}}}, "did you mean 'augment.rotation'"),
        ({"search_space": {"augment.rotation": {"float": [0, 300]}}}, r"degrees in \[0, 180\], got 300"),
        ({"search_space": {"augment.hflip": 0.5}, "data": {"source": "sklearn:wine"}}, "is a table"),
        ({"model": {"family": "resnet18"}, "data": {"source": "sklearn:iris"}}, "needs images"),
        ({"data": {"source": "torchvision:SVHN"}}, "unknown torchvision dataset 'SVHN'"),
        ({"data": {"source": "sklearn:digits", "root": "x"}}, "data.root applies to"),
        ({"training": {"device": "cpu", "amp": True}}, "training.amp: true needs a CUDA device"),
        ({"model": {"family": "mlp", "factory": "a.b:c"}}, "model.family or model.factory, not both"),
        ({"model": {"factory": "no_such_module_p6:build"}}, "cannot import module 'no_such_module_p6'"),
        ({"model": {"factory": "not a ref"}}, "model.factory"),
        ({"objective": {"function": "os.path:join"}, "model": {"family": "cnn"}}, "remove the model section"),
        ({"search_space": {"hidden": 8}}, "search_space.hidden is not a parameter"),
    ],
)
def test_config_rejects(over: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _cfg(**over)


def test_config_accepts_new_keys(tmp_path: Path) -> None:
    (tmp_path / "p6_factory_mod.py").write_text("def build(params, shape, n):\n    return None\n")
    cfg = validate_config(
        {
            "name": "t",
            "data": {"source": "imagefolder:imgs", "image_size": [32, 48], "folds": 2},
            "model": {"factory": "p6_factory_mod:build"},
            "training": {"amp": False},
            "search_space": {"hidden": {"int": [4, 8]}, "augment.rotation": {"float": [0, 30]}},
        },
        base_dir=tmp_path,
        source="t.yaml",
    )
    assert cfg.model.factory == "p6_factory_mod:build" and cfg.data.image_size == (32, 48)
    assert _cfg(search_space="augmentation").search_space.names[0] == "augment.hflip"


# ----------------------------------------------------------------------------- devices and AMP


def test_device_resolution_without_a_gpu() -> None:
    assert resolve_device("auto", cuda_available=False, mps_available=False).type == "cpu"
    assert resolve_device("auto", cuda_available=False, mps_available=True).type == "mps"
    assert resolve_device("auto", cuda_available=True, cuda_count=1).type == "cuda"
    assert str(resolve_device("cuda:1", cuda_available=True, cuda_count=2)) == "cuda:1"
    with pytest.raises(DeviceError, match="no usable CUDA GPU"):
        resolve_device("cuda", cuda_available=False)
    with pytest.raises(DeviceError, match=r"has 2 CUDA device\(s\) \(cuda:0..cuda:1\)"):
        resolve_device("cuda:2", cuda_available=True, cuda_count=2)
    with pytest.raises(DeviceError, match="MPS"):
        resolve_device("mps", mps_available=False)


def test_amp_policy_and_cudnn() -> None:
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_amp(None, cpu) == AmpPolicy() and resolve_amp(False, cuda) == AmpPolicy()
    assert resolve_amp(None, cuda, bf16_supported=True) == AmpPolicy(True, torch.bfloat16, False)
    assert resolve_amp(True, cuda, bf16_supported=False) == AmpPolicy(True, torch.float16, True)
    with pytest.raises(DeviceError, match="needs a CUDA device"):
        resolve_amp(True, cpu)
    try:
        assert configure_backends(cuda, "resnet18") and torch.backends.cudnn.benchmark
        assert not configure_backends(cuda, "mlp") and not torch.backends.cudnn.benchmark
        assert not configure_backends(cpu, "cnn")
    finally:
        torch.backends.cudnn.benchmark = False


@pytest.mark.parametrize(
    "policy", [AmpPolicy(True, torch.bfloat16, False), AmpPolicy(True, torch.float16, True)]
)
def test_fit_runs_the_amp_path(policy: AmpPolicy) -> None:
    """The autocast + GradScaler code path, exercised on the CPU (CPU autocast exists)."""
    from objectives.training import fit

    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(64, 5, generator=g), torch.randint(0, 3, (64,), generator=g)
    model = build_model(
        ModelSpec("mlp", (5,), 3), HParams(width=8, depth=1), torch.zeros(1, 5), torch.ones(1, 5)
    )
    records = []
    fit(model, HParams(width=8, depth=1, batch_size=16), X, y, epochs=2, metric="accuracy", n_classes=3,
        guard=DivergenceGuard(DivergenceConfig()), fold=0, seed=0, X_val=X, y_val=y,
        on_epoch=records.append, amp=policy)  # fmt: skip
    assert len(records) == 2 and all(np.isfinite(r.train_loss) for r in records)


def test_guard_skips_loss_scaling_overflow_only() -> None:
    from objectives.guard import EpochNorms
    from objectives.training import _check

    guard = DivergenceGuard(DivergenceConfig())
    losses, norms = [torch.tensor(1.0), torch.tensor(1.1)], [torch.tensor(float("inf")), torch.tensor(2.0)]
    _check(guard, losses, norms, EpochNorms(), 0, 0, True)  # a scaled overflow: skipped
    with pytest.raises(Diverged, match="grad_norm is inf"):
        _check(guard, [torch.tensor(1.0)], [torch.tensor(float("inf"))], EpochNorms(), 0, 0, False)
    with pytest.raises(Diverged, match="training loss is nan"):
        _check(guard, [torch.tensor(float("nan"))], [torch.tensor(float("inf"))], EpochNorms(), 0, 0, True)
