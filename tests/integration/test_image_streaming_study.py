"""Studies on a streamed image folder: the same split as the in-memory path, the refit and
the lockbox from the disk cache, and memory that does not grow with the folder (against
the in-memory path in the same test; under a cgroup limit several times smaller than the
folder with ``-m slow``)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from PIL import Image

from tests.conftest import REPO, tiny_study
from tuner.config import load_config
from tuner.run.runner import run_study
from tuner.storage.records import LOCKBOX_ATTR


def _folder(root: Path, per_class: int, size: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for c, name in enumerate(["red", "green"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
            arr[:, :, c] += 150  # learnable in an epoch
            Image.fromarray(arr, "RGB").save(root / name / f"{i}.png")
    return root


def _study(tmp_path: Path, name: str, cache: str, **overrides) -> Path:
    doc = tiny_study(
        **{
            "name": name,
            "data.source": "imagefolder:imgs",
            "data.image_size": 8,
            "data.cache": cache,
            "model.family": "cnn",
            "training.batch_size": 8,
            "search_space": {"lr": {"fixed": 0.01}, "width": {"fixed": 4}, "depth": {"fixed": 1}},
            "budget.n_trials": 1,
            **overrides,
        }
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_streamed_study_splits_refits_and_scores_as_the_in_memory_one(tmp_path: Path) -> None:
    _folder(tmp_path / "imgs", per_class=16, size=12)
    attrs = {}
    for name, cache in (("mem", "memory"), ("str", "stream")):
        cfg = load_config(_study(tmp_path, name, cache))
        lines: list[str] = []
        run_study(cfg, say=lines.append, live=False)
        study = optuna.load_study(study_name=cfg.name, storage=cfg.storage_url)
        attrs[cache] = study.user_attrs
        assert [t.state.name for t in study.trials] == ["COMPLETE"]
        (entry,) = study.user_attrs[LOCKBOX_ATTR]
        assert entry["n_test"] == 7 and entry["score"] >= 0.5
    assert attrs["stream"]["tuner_split_fingerprint"] == attrs["memory"]["tuner_split_fingerprint"]
    assert any("training streams it" in line for line in lines)
    assert list((tmp_path / ".tuner-cache").glob("*.npy"))  # beside the study file
    # a second study on the same folder reads the cache: no decoding
    lines = []
    run_study(load_config(_study(tmp_path, "again", "stream")), say=lines.append, live=False)
    assert any("no decoding" in line for line in lines)


PEAK = """
import sys, torch
sys.path.insert(0, {repo!r})
from tests.conftest import tiny_study
from tuner.config import StudyConfig
from pathlib import Path
from objectives.data import load_dataset
from objectives.fold import train_fold
from objectives.guard import DivergenceGuard
from objectives.lazy import device_rows
from objectives.models import ModelSpec, input_stats
from search_spaces.params import HParams
torch.set_num_threads(1)
cfg = StudyConfig.model_validate(tiny_study(**{{"training.max_epochs": 1}}))
open("/proc/self/clear_refs", "w").write("5")  # the peak from here on: the data's, not the imports'
ds = load_dataset("imagefolder:imgs", base_dir=Path({where!r}), image_size={size}, cache={cache!r},
                  cache_dir=Path({where!r}) / "cache")
rows = __import__("numpy").arange(len(ds.y))
mean, std = input_stats(ds.X, True, rows)
train_fold(cfg, ModelSpec("mlp", ds.sample_shape, 2), {{}}, HParams.resolve({{"width": 4, "depth": 1}}, 64),
           device_rows(ds.X, rows, torch.device("cpu")), torch.as_tensor(ds.y), mean=mean, std=std,
           guard=DivergenceGuard(cfg.divergence), fold=0, seed=0)
import re
print(int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024)
"""


def _peak_mib(where: Path, cache: str, size: int) -> int:
    code = textwrap.dedent(PEAK.format(repo=str(REPO), where=str(where), size=size, cache=cache))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.split()[-1])


def test_streamed_training_memory_does_not_grow_with_the_folder(tmp_path: Path) -> None:
    """600 images at 160 px are 176 MiB as float32: the in-memory path holds them (and
    their uint8 decode); the streamed one a batch at a time. Peaks after the imports."""
    _folder(tmp_path / "imgs", per_class=300, size=160)
    _peak_mib(tmp_path, "stream", 160)  # builds the disk cache outside the measured runs
    stream = _peak_mib(tmp_path, "stream", 160)
    memory = _peak_mib(tmp_path, "memory", 160)
    print(f"peak RSS: memory {memory} MiB, stream {stream} MiB")
    assert memory - stream > 100, (memory, stream)


@pytest.mark.slow
def test_tuning_a_folder_four_times_the_memory_limit(tmp_path: Path) -> None:
    """`tune` under a cgroup memory limit of 1.5 GiB on a folder whose float32 tensor is
    6 GiB: the streamed path trains, refits and scores; the in-memory path is refused
    or killed."""
    cgroup = Path("/sys/fs/cgroup/memory")
    if not (cgroup / "cgroup.procs").exists() or os.geteuid() != 0:
        pytest.skip("needs root and the cgroup v1 memory controller")
    _folder(tmp_path / "imgs", per_class=1000, size=256)  # 2,000 x 3 x 256 x 256 x 4 B = 1.5 GiB ...
    group = cgroup / f"tuner-test-{os.getpid()}"
    group.mkdir()
    try:
        (group / "memory.limit_in_bytes").write_text(str(1536 * 2**20))
        results = {}
        for name, cache in (("s", "stream"), ("m", "memory")):
            path = _study(
                tmp_path,
                name,
                cache,
                **{
                    "data.image_size": 512,
                    "data.cache_limit_mb": 10**6,
                    "model.family": "mlp",
                    "mlflow.enabled": False,
                },
            )  # ... x 4 at 512 px: 6 GiB as float32
            code = f"import os; open({str(group / 'cgroup.procs')!r}, 'w').write(str(os.getpid())); "
            code += f"import sys; sys.argv = ['tune', {str(path)!r}]; from tuner.cli import main; sys.exit(main())"
            env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's tuner
            results[cache] = subprocess.run(
                [sys.executable, "-c", code],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=1800,
            )
        assert results["stream"].returncode == 0, (
            results["stream"].stdout[-3000:] + results["stream"].stderr[-3000:]
        )
        assert "held-out test" in results["stream"].stdout
        assert results["memory"].returncode != 0
    finally:
        group.rmdir()
