"""Device, mixed-precision and cuDNN choices, resolved once per process.

- ``training.device``: ``auto`` (CUDA, then Apple MPS, then CPU), ``cpu``, ``cuda``,
  ``cuda:N`` or ``mps``. Naming a device this machine lacks is an error, not a
  silent fall-back to the CPU (a study meant for a GPU would take 50x longer).
- ``training.amp``: automatic mixed precision, on CUDA only. Unset means on for
  CUDA; ``true`` on a machine without CUDA is an error. bfloat16 where the GPU
  supports it (no loss scaling needed), else float16 with a ``GradScaler``.
- ``training.cuda_graphs``: each full training batch's step (forward, backward, gradient
  norm, clipping, optimizer) recorded once as a CUDA graph and replayed: one launch per
  step instead of a hundred, meant to keep a GPU busy with a small model. Off unless set
  (it has not yet run on a GPU: no GPU was lent when it was written); not with float16
  loss scaling, whose overflow check reads the host.
- ``torch.backends.cudnn.benchmark``: on for convolutional families on CUDA, where
  the input shape never changes within a study (so the one-off autotuning pays);
  off for the mlp (no convolutions, nothing to tune).

The functions take the availability facts as arguments so the CUDA branches are
unit-tested on machines without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuner.errors import TunerError

__all__ = [
    "AmpPolicy",
    "DeviceError",
    "configure_backends",
    "resolve_amp",
    "resolve_device",
    "use_cuda_graphs",
]

CONV_FAMILIES = ("cnn", "resnet18")


class DeviceError(TunerError):
    """The configured device or precision is not available on this machine."""


@dataclass(frozen=True)
class AmpPolicy:
    """How the training loop runs its forward pass."""

    enabled: bool = False
    dtype: Any = None  # torch.float16 or torch.bfloat16 when enabled
    scaler: bool = False  # float16 needs loss scaling; bfloat16 does not


def resolve_device(
    name: str,
    *,
    cuda_available: bool | None = None,
    cuda_count: int | None = None,
    mps_available: bool | None = None,
) -> Any:
    """``training.device`` → ``torch.device``; raises ``DeviceError`` when it is absent."""
    import torch

    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if cuda_count is None:
        cuda_count = torch.cuda.device_count() if cuda_available else 0
    if mps_available is None:
        mps = getattr(torch.backends, "mps", None)
        mps_available = bool(mps and mps.is_available())
    if name == "auto":
        if cuda_available:
            return torch.device("cuda")
        return torch.device("mps" if mps_available else "cpu")
    if name.startswith("cuda"):
        if not cuda_available:
            built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise DeviceError(
                f"training.device is {name}, but this machine has no usable CUDA GPU (torch "
                f"{torch.__version__}, {built}); use device: auto or cpu, or run on a GPU machine"
            )
        index = int(name.split(":", 1)[1]) if ":" in name else 0
        if index >= cuda_count:
            raise DeviceError(
                f"training.device is {name}, but this machine has {cuda_count} CUDA device(s) "
                f"(cuda:0..cuda:{cuda_count - 1}); pick one of them or use device: cuda"
            )
        return torch.device(name)
    if name == "mps" and not mps_available:
        raise DeviceError(
            "training.device is mps, but Apple's MPS backend is not available here; use auto or cpu"
        )
    return torch.device(name)


def resolve_amp(setting: bool | None, device: Any, *, bf16_supported: bool | None = None) -> AmpPolicy:
    """``training.amp`` on ``device`` → the precision policy."""
    import torch

    if device.type != "cuda":
        _refuse_without_cuda("amp", setting, device, " (it is on by default on CUDA)")
        return AmpPolicy()
    if setting is False:
        return AmpPolicy()
    if bf16_supported is None:
        bf16_supported = torch.cuda.is_bf16_supported()
    if bf16_supported:
        return AmpPolicy(True, torch.bfloat16, scaler=False)
    return AmpPolicy(True, torch.float16, scaler=True)


def _refuse_without_cuda(key: str, setting: bool | None, device: Any, note: str = "") -> None:
    """``training.<key>: true`` on a device that is not CUDA: a ``DeviceError``."""
    if setting:
        raise DeviceError(
            f"training.{key}: true needs a CUDA device, but the study runs on {device}; "
            f"remove training.{key}{note} or run on a GPU"
        )


def use_cuda_graphs(setting: bool | None, device: Any, amp: AmpPolicy) -> bool:
    """``training.cuda_graphs`` on ``device`` with ``amp`` → whether steps are graphed."""
    if device.type != "cuda":
        _refuse_without_cuda("cuda_graphs", setting, device)
        return False
    if amp.scaler:
        if setting:
            raise DeviceError(
                "training.cuda_graphs: true cannot graph float16 loss scaling (this GPU has no "
                "bfloat16); remove training.cuda_graphs or set training.amp: false"
            )
        return False
    return setting is True


def configure_backends(device: Any, family: str) -> bool:
    """Turn cuDNN autotuning on where it pays; returns the setting."""
    import torch

    on = device.type == "cuda" and family in CONV_FAMILIES
    torch.backends.cudnn.benchmark = on
    return on
