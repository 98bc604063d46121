"""Issue #6 from the command line: missing torchvision files and an unusable device
fail with exit status 2, a message saying what to do, and nothing created."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import tiny_study

TUNE = [sys.executable, "-m", "tuner.cli"]
ENV = {
    **os.environ,
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PYTHONWARNINGS": "ignore",
    "CUDA_VISIBLE_DEVICES": "",
}


def _tune(tmp_path: Path, doc: dict) -> subprocess.CompletedProcess[str]:
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(doc))
    return subprocess.run(
        [*TUNE, "study.yaml"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300
    )


def test_missing_torchvision_files_exit_2_and_create_nothing(tmp_path: Path) -> None:
    doc = tiny_study(**{"data.source": "torchvision:FashionMNIST", "data.root": "datasets"})
    out = _tune(tmp_path, doc)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert str(tmp_path / "datasets" / "FashionMNIST" / "raw") in out.stderr
    assert "data.download: true" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]


def test_cuda_device_without_a_gpu_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    out = _tune(tmp_path, tiny_study(**{"training.device": "cuda"}))
    assert out.returncode == 2, out.stderr
    assert "training.device is cuda, but this machine has no usable CUDA GPU" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]
