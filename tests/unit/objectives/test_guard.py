"""The divergence guard's rules on synthetic loss / gradient-norm sequences (no torch)."""

from __future__ import annotations

import math

import pytest

from objectives.guard import Diverged, DivergenceGuard, EpochNorms
from tuner.config import DivergenceConfig


def _guard(**kw: object) -> DivergenceGuard:
    return DivergenceGuard(DivergenceConfig(**kw))


def _feed(guard: DivergenceGuard, losses: list[float], norms: list[float], *, chunk: int = 1) -> int:
    """Feed ``chunk`` steps per call (as a GPU would); return the steps seen before a trip."""
    for i in range(0, len(losses), chunk):
        guard.observe(losses[i : i + chunk], norms[i : i + chunk], fold=1, epoch=2)
    return len(losses)


def _tripped_at(guard: DivergenceGuard, losses: list[float], norms: list[float]) -> tuple[int, str]:
    for i, (lo, n) in enumerate(zip(losses, norms, strict=True)):
        try:
            guard.observe([lo], [n], fold=0, epoch=0)
        except Diverged as e:
            return i, str(e)
    raise AssertionError("the guard never tripped")


def _healthy(n: int = 300) -> tuple[list[float], list[float]]:
    """A decreasing loss and noisy norms that rise 5x and fall: ordinary training."""
    losses = [2.3 * math.exp(-i / 60) + 0.05 * ((i * 7) % 5) / 5 for i in range(n)]
    norms = [1.0 + 4.0 * math.sin(math.pi * i / n) + 0.5 * ((i * 13) % 7) / 7 for i in range(n)]
    return losses, norms


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_loss_trips_at_once(bad: float) -> None:
    g = _guard()
    with pytest.raises(Diverged, match=r"training loss is .*\(fold 1, epoch 2, step 3\)"):
        _feed(g, [2.3, 2.2, 2.1, bad], [1.0, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_norm_trips_at_once_on_the_first_step(bad: float) -> None:
    with pytest.raises(Diverged, match=r"grad_norm is (nan|inf) \(fold 1, epoch 2, step 0\)"):
        _feed(_guard(), [2.3], [bad])


def test_non_finite_trips_even_when_the_guard_is_disabled() -> None:
    # Nothing non-finite may ever reach Optuna: switching the thresholds off keeps this check.
    g = _guard(enabled=False)
    _feed(g, [2.3] * 20, [1e9] * 20)  # thresholds off: a huge finite norm passes
    with pytest.raises(Diverged, match="grad_norm is nan"):
        _feed(g, [2.3], [math.nan])


def test_healthy_sequence_never_trips() -> None:
    losses, norms = _healthy()
    assert _feed(_guard(), losses, norms) == 300
    assert _feed(_guard(patience=1), losses, norms, chunk=25) == 300


def test_relative_norm_rule_holds_the_window_mean_to_factor_x_baseline() -> None:
    g = _guard(max_grad_norm=None, baseline_steps=1, grad_norm_factor=10.0, patience=3)
    # baseline 2.0 (the first step) → limit 20; one spike of 45 in a window of 3 stays under
    _feed(g, [1.0] * 6, [2.0, 3.0, 2.5, 45.0, 3.0, 2.0])
    _feed(g, [1.0] * 2, [25.0, 30.0])  # window (2, 25, 30): mean 19
    with pytest.raises(Diverged) as e:
        _feed(g, [1.0], [40.0])  # window (25, 30, 40): mean 31.7
    msg = str(e.value)
    assert "grad_norm 31.7 (mean over the last 3 steps) > 10x baseline 2" in msg
    assert "(fold 1, epoch 2, step 8)" in msg


def test_baseline_is_the_median_of_the_first_steps() -> None:
    g = _guard(baseline_steps=4, patience=1)
    _feed(g, [2.0, 100.0, 2.4, 5.0], [2.0, 1.0, 3.0, 2.0])
    assert g.baseline_norm == 2.0 and g.initial_loss == pytest.approx(3.7)
    assert _guard().config.baseline_steps == 1  # default: the first step, before any update


def test_absolute_norm_limit_applies_before_the_baseline_exists() -> None:
    g = _guard(max_grad_norm=100.0, baseline_steps=50, patience=2)
    step, msg = _tripped_at(g, [2.3] * 10, [1.0, 150.0, 160.0, 1.0] + [1.0] * 6)
    assert step == 2
    assert "grad_norm 155 (mean over the last 2 steps) > absolute limit 100" in msg


def test_the_tighter_of_the_two_norm_limits_wins() -> None:
    # baseline 1.0 x 100 = 100 is tighter than the absolute 1e4
    g = _guard(patience=1)
    step, msg = _tripped_at(g, [2.3] * 6, [1.0, 1.0, 1.0, 50.0, 150.0, 1.0])
    assert step == 4 and "100x baseline 1 " in msg
    # baseline 1000 x 100 = 1e5 is looser than the absolute 1e4
    g = _guard(patience=1)
    step, msg = _tripped_at(g, [2.3] * 5, [1e3, 1e3, 1e3, 5e3, 2e4])
    assert step == 4 and "absolute limit 10000" in msg


def test_a_zero_first_norm_gives_no_relative_limit() -> None:
    g = _guard(patience=1, max_grad_norm=None)
    assert _feed(g, [2.3] * 4, [0.0, 1.0, 5.0, 3.0]) == 4


def test_loss_rule_holds_the_window_mean_to_factor_x_initial() -> None:
    g = _guard(loss_factor=10.0, patience=2, max_grad_norm=None, grad_norm_factor=None)
    losses = [2.0, 1.5, 25.0, 1.0, 19.0, 22.0]  # windows: 13.25, 13, 10, 20.5 → limit 20
    step, msg = _tripped_at(g, losses, [1.0] * len(losses))
    assert step == 5
    assert "training loss 20.5 (mean over the last 2 steps) > 10x initial 2" in msg


def test_explode_then_die_is_caught_within_the_window() -> None:
    """The shape lr=10 SGD on raw digits pixels takes (recorded from a real run): the
    norm explodes for 3 steps, then the dead network has tiny gradients and a loss a
    few times the initial one. A count of consecutive steps over a limit misses it."""
    losses = [2.48, 1651.4, 4.7e9, 9.2e11, 7.93, 7.23, 10.0, 10.46, 7.94, 11.87, 11.54, 8.58]
    norms = [2.66, 1737.1, 3.8e7, 1.25e10, 0.65, 0.32, 0.37, 0.53, 0.40, 0.41, 0.75, 0.29]
    step, msg = _tripped_at(_guard(), losses, norms)
    assert step == 4  # the first full window of 5 steps: within one epoch of the onset
    assert "grad_norm" in msg and "100x baseline 2.66" in msg


def test_each_rule_can_be_switched_off() -> None:
    exploding = [1.0] * 10 + [1e6] * 20
    climbing = [2.3] * 10 + [1e3] * 20
    off = dict(max_grad_norm=None, grad_norm_factor=None, loss_factor=None)
    assert _feed(_guard(**off), climbing, exploding) == 30
    assert _feed(_guard(enabled=False), climbing, exploding) == 30
    with pytest.raises(Diverged, match="training loss"):
        _feed(_guard(max_grad_norm=None, grad_norm_factor=None), climbing, [1.0] * 30)
    with pytest.raises(Diverged, match="grad_norm"):
        _feed(_guard(loss_factor=None), [2.3] * 30, exploding)


def test_chunked_observation_reports_the_true_step() -> None:
    """On a GPU the loop hands over ``check_every`` steps at a time; steps stay exact."""
    g = _guard(patience=3, max_grad_norm=None)
    norms = [1.0] * 10 + [200.0] * 10  # window means: 67, 134 > 100 (at step 11)
    with pytest.raises(Diverged, match=r"step 11\)"):
        _feed(g, [2.3] * 20, norms, chunk=8)


def test_reset_starts_a_new_baseline_per_fold() -> None:
    g = _guard(patience=1, max_grad_norm=None)
    _feed(g, [2.3] * 5, [100.0] * 5)  # fold 0: large but steady norms
    assert g.baseline_norm == 100.0
    g.reset()
    assert g.baseline_norm is None and g.initial_loss is None
    _feed(g, [2.3] * 3, [0.1] * 3)
    with pytest.raises(Diverged, match=r"step 3\)"):  # 100 > 100x the new fold's baseline 0.1
        _feed(g, [2.3], [100.0])


def test_epoch_norms_ignore_non_finite_values() -> None:
    s = EpochNorms()
    for v in (1.0, 3.0, math.nan, math.inf, 2.0):
        s.add(v)
    assert s.count == 3 and s.mean == pytest.approx(2.0) and s.max == 3.0
    assert EpochNorms().mean == 0.0


@pytest.mark.parametrize(
    "key, value",
    [
        ("patience", 0),
        ("patience", 10**20),
        ("check_every", 10**20),
        ("grad_norm_factor", 1.0),
        ("loss_factor", 0.5),
        ("max_grad_norm", 0),
        ("baseline_steps", 0),
    ],
)
def test_bad_thresholds_are_config_errors_naming_the_key(tmp_path, key: str, value: float) -> None:
    from tuner.config import validate_config
    from tuner.errors import ConfigError

    raw = {
        "name": "g",
        "data": {"source": "sklearn:iris", "folds": 2},
        "search_space": {"lr": 0.01},
        "divergence": {key: value},
    }
    with pytest.raises(ConfigError, match=rf"divergence\.{key}"):
        validate_config(raw, base_dir=tmp_path, source="g.yaml")


def test_gpu_checks_are_batched_by_default() -> None:
    # reading a CUDA value is a host sync: the default must not sync every step
    assert DivergenceConfig().check_every > 1
