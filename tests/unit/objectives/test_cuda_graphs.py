"""CUDA-graphed training steps (``training.cuda_graphs``): the policy everywhere, the graphs
themselves where a CUDA GPU is (skipped here; run on the lent GPU machine)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from objectives.devices import AmpPolicy, DeviceError, use_cuda_graphs
from objectives.guard import Diverged, DivergenceGuard
from objectives.models import ModelSpec, build_model
from search_spaces.params import HParams
from tuner.config import DivergenceConfig, validate_config
from tuner.errors import ConfigError

CUDA = torch.device("cuda")
BF16 = AmpPolicy(True, torch.bfloat16, scaler=False)
FP32 = AmpPolicy()
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_graphs_are_opt_in_and_cuda_only() -> None:
    assert use_cuda_graphs(True, CUDA, BF16) and use_cuda_graphs(True, CUDA, AmpPolicy())
    assert not use_cuda_graphs(None, CUDA, BF16) and not use_cuda_graphs(False, CUDA, BF16)
    assert not use_cuda_graphs(None, torch.device("cpu"), AmpPolicy())
    # float16's loss scaling reads the host each step: refused when asked for
    fp16 = AmpPolicy(True, torch.float16, scaler=True)
    assert not use_cuda_graphs(None, CUDA, fp16)
    with pytest.raises(DeviceError, match="training.amp: false"):
        use_cuda_graphs(True, CUDA, fp16)
    with pytest.raises(DeviceError, match="needs a CUDA device"):
        use_cuda_graphs(True, torch.device("cpu"), AmpPolicy())


def test_config_refuses_graphs_on_the_cpu() -> None:
    doc = {
        "name": "s",
        "data": {"source": "sklearn:iris"},
        "training": {"device": "cpu", "cuda_graphs": True},
        "search_space": {"lr": {"float": [1e-3, 1e-2]}},
    }
    with pytest.raises(ConfigError, match="training.cuda_graphs: true needs a CUDA device"):
        validate_config(doc, base_dir=Path("."), source="t.yaml")


def _fit(graphs: bool, *, amp: AmpPolicy = FP32, hp: HParams | None = None, epochs: int = 3):
    from objectives.training import fit

    g = torch.Generator().manual_seed(0)
    X = torch.randn(200, 1, 8, 8, generator=g)
    y = (X.mean(dim=(1, 2, 3)) > 0).long() + (X[:, 0, 0, 0] > 0).long()
    hp = hp or HParams(width=8, depth=2, batchnorm="after_activation", dropout=0.0, batch_size=32)
    torch.manual_seed(0)
    model = build_model(ModelSpec("cnn", (1, 8, 8), 3), hp, X.mean(0, keepdim=True), X.std(0, keepdim=True))
    model = model.to(CUDA)
    records: list = []
    fit(model, hp, X.to(CUDA), y.to(CUDA), epochs=epochs, metric="accuracy", n_classes=3,
        guard=DivergenceGuard(DivergenceConfig()), fold=0, seed=0, X_val=X.to(CUDA), y_val=y.to(CUDA),
        on_epoch=records.append, amp=amp, graphs=graphs)  # fmt: skip
    return model, records


@needs_cuda
def test_graphed_steps_train_as_eager_steps_do() -> None:
    # 200 rows in batches of 32: 6 full batches (3 eager warm-up steps, then the graph) and
    # a short last one of 8, eager beside the graph, every epoch.
    eager, eager_records = _fit(False)
    graphed, graphed_records = _fit(True)
    for a, b in zip(eager_records, graphed_records, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-3)
        assert a.grad_norm_max == pytest.approx(b.grad_norm_max, rel=1e-3)
    for (name, p), q in zip(eager.state_dict().items(), graphed.state_dict().values(), strict=True):
        assert torch.allclose(p.float(), q.float(), rtol=1e-3, atol=1e-4), name  # BN statistics too


@needs_cuda
@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_graphed_steps_learn_with_dropout_and_bf16(optimizer: str) -> None:
    hp = HParams(width=8, depth=2, dropout=0.3, batch_size=32, optimizer=optimizer, lr=1e-2, max_norm=1.0)
    _, records = _fit(True, amp=BF16, hp=hp, epochs=8)
    assert records[-1].train_loss < records[0].train_loss
    assert all(torch.isfinite(torch.tensor(r.train_loss)) for r in records)


@needs_cuda
def test_the_guard_sees_a_graphed_step_diverge() -> None:
    hp = HParams(width=8, depth=2, batch_size=32, lr=1e6, optimizer="sgd", momentum=0.9)
    with pytest.raises(Diverged):
        _fit(True, hp=hp, epochs=5)
