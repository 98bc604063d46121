"""Model families honour every regularization parameter (no silent no-ops)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from objectives.models import ModelSpec, Standardize, build_model, input_stats
from search_spaces.params import HParams


def _kinds(model: nn.Module) -> list[str]:
    return [type(m).__name__ for m in model if not isinstance(m, Standardize)]


@pytest.mark.parametrize("family,shape", [("mlp", (20,)), ("cnn", (1, 8, 8))])
def test_batchnorm_placement(family, shape):
    spec = ModelSpec(family, shape, 3)
    mean, std = torch.zeros(1, *shape), torch.ones(1, *shape)
    layer = "Linear" if family == "mlp" else "Conv2d"
    bn = "BatchNorm1d" if family == "mlp" else "BatchNorm2d"
    none = _kinds(build_model(spec, HParams(batchnorm="none", depth=2), mean, std))
    before = _kinds(build_model(spec, HParams(batchnorm="before_activation", depth=2), mean, std))
    after = _kinds(build_model(spec, HParams(batchnorm="after_activation", depth=2), mean, std))
    assert bn not in none
    assert before.count(bn) == after.count(bn) == 2
    i = before.index(layer)
    assert before[i + 1 : i + 3] == [bn, "ReLU"]
    i = after.index(layer)
    assert after[i + 1 : i + 3] == ["ReLU", bn]


@pytest.mark.parametrize("family,shape", [("mlp", (20,)), ("cnn", (1, 8, 8))])
def test_dropout_in_every_block_and_none_when_zero(family, shape):
    spec = ModelSpec(family, shape, 3)
    z = torch.zeros(1, *shape), torch.ones(1, *shape)
    with_dropout = build_model(spec, HParams(dropout=0.3, depth=3), *z)
    drops = [m for m in with_dropout.modules() if isinstance(m, (nn.Dropout, nn.Dropout2d))]
    assert len(drops) >= 3 and all(d.p == 0.3 for d in drops)
    assert not [
        m
        for m in build_model(spec, HParams(dropout=0.0), *z).modules()
        if isinstance(m, (nn.Dropout, nn.Dropout2d))
    ]


def test_width_and_depth_are_honoured():
    spec = ModelSpec("mlp", (10,), 2)
    z = torch.zeros(1, 10), torch.ones(1, 10)
    m = build_model(spec, HParams(width=24, depth=3), *z)
    linears = [x for x in m.modules() if isinstance(x, nn.Linear)]
    assert len(linears) == 4 and linears[0].out_features == 24


def test_forward_shapes():
    x = torch.randn(5, 1, 8, 8)
    for family in ("mlp", "cnn"):
        m = build_model(
            ModelSpec(family, (1, 8, 8), 10),
            HParams(batchnorm="before_activation"),
            torch.zeros(1, 1, 8, 8),
            torch.ones(1, 1, 8, 8),
        )
        m.eval()
        assert m(x).shape == (5, 10)


def test_input_stats_per_channel_and_constant_features():
    X = np.zeros((4, 2, 3, 3), dtype=np.float32)
    X[:, 1] = np.arange(4, dtype=np.float32)[:, None, None]
    mean, std = input_stats(X, True)
    assert mean.shape == (1, 2, 1, 1)
    assert std[0, 0].item() == 1.0  # a constant channel is not divided by zero
    assert mean[0, 1].item() == pytest.approx(1.5)
    mean, std = input_stats(X, False)
    assert mean.abs().sum() == 0 and (std == 1).all()


def test_unknown_hparam_values_are_rejected():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        HParams.resolve({"optimizer": "lbfgs"}, 32)
