"""The streamed image path against the in-memory one: epoch time and peak memory.

A generated image folder (``--images`` PNGs at ``--size`` px, two classes) is decoded once
into the disk cache (``data.cache: stream``); then each arm runs in a fresh process, so its
peak RSS is its own:

  memory      ``data.cache: memory``: the folder decoded into a float32 array in memory
  stream/wN   ``data.cache: stream`` from the disk cache, with N DataLoader workers
              (``data.loader_workers``) reading batches ahead of the training loop

Each arm trains a small CNN (width 8, depth 2, batch 64, ``--threads`` torch threads) for
``--epochs`` epochs on 80 % of the images and reports the median epoch time after the
first (training plus the per-epoch scoring of up to 4,096 training rows), its ratio to
the memory arm, and the process's peak RSS. ``--rounds`` repeats the arms interleaved and
takes the median per arm (the machine is shared).

    python benchmarks/streaming.py                               # 20,000 PNGs at 64 px
    python benchmarks/streaming.py --images 2000 --epochs 2      # a quick look
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

ARM = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
import numpy as np, torch
torch.set_num_threads({threads})
from pathlib import Path
from objectives.data import load_dataset
from objectives.fold import train_fold
from objectives.guard import DivergenceGuard
from objectives.lazy import device_rows
from objectives.models import ModelSpec, input_stats
from search_spaces.params import HParams
from tests.conftest import tiny_study
from tuner.config import StudyConfig

started = time.perf_counter()
ds = load_dataset("imagefolder:imgs", base_dir=Path({where!r}), image_size={size}, cache={cache!r},
                  cache_dir=Path({where!r}) / "cache", cache_limit_mb=10**6)
loaded = time.perf_counter() - started
rows = np.random.default_rng(0).permutation(len(ds.y))[: int(0.8 * len(ds.y))]
cfg = StudyConfig.model_validate(tiny_study(**{{"training.max_epochs": {epochs}}}))
mean, std = input_stats(ds.X, True, rows)
seconds = []
train_fold(cfg, ModelSpec("cnn", ds.sample_shape, 2), {{}}, HParams.resolve({{"width": 8, "depth": 2}}, 64),
           device_rows(ds.X, rows, torch.device("cpu"), {workers}), torch.as_tensor(ds.y[rows]),
           mean=mean, std=std, guard=DivergenceGuard(cfg.divergence), fold=0, seed=0,
           on_epoch=lambda r: seconds.append(r.seconds))
print(json.dumps({{"epochs": seconds, "load": loaded,
                   "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def make_folder(root: Path, n: int, size: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(["red", "green"]):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n // 2):
            arr = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
            arr[:, :, c] += 150
            Image.fromarray(arr, "RGB").save(root / name / f"{i}.png", compress_level=1)


def run_arm(where: Path, size: int, cache: str, workers: int, epochs: int, threads: int) -> dict[str, float]:
    import json

    code = ARM.format(
        repo=str(REPO),
        where=str(where),
        size=size,
        cache=cache,
        workers=workers,
        epochs=epochs,
        threads=threads,
    )
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    r = json.loads(out.stdout.strip().splitlines()[-1])
    warm = r["epochs"][1:] or r["epochs"]
    return {"epoch": statistics.median(warm), "load": r["load"], "peak": r["peak_mib"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--folder", type=Path, help="reuse a folder made by an earlier run")
    args = parser.parse_args()
    where = args.folder or Path(tempfile.mkdtemp(prefix="tuner-streaming-"))
    if not (where / "imgs").is_dir():
        started = time.perf_counter()
        make_folder(where / "imgs", args.images, args.size)
        print(f"made {args.images} PNGs at {args.size} px in {time.perf_counter() - started:.0f} s: {where}")
    float_mib = args.images * 3 * args.size**2 * 4 / 2**20
    print(f"{args.images} images, {float_mib:,.0f} MiB as float32; load {os.getloadavg()[0]:.1f}")
    sys.path.insert(0, str(REPO))
    from objectives.data import load_dataset

    started = time.perf_counter()
    load_dataset(
        "imagefolder:imgs", base_dir=where, image_size=args.size, cache="stream", cache_dir=where / "cache"
    )
    print(f"disk cache (decode once): {time.perf_counter() - started:.1f} s")
    arms = [("memory", 0)] + [("stream", w) for w in args.workers]
    results: dict[str, list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for cache, workers in arms:
            name = "memory" if cache == "memory" else f"stream/w{workers}"
            results.setdefault(name, []).append(
                run_arm(where, args.size, cache, workers, args.epochs, args.threads)
            )
    base = statistics.median(r["epoch"] for r in results["memory"])
    print(f"{'arm':<11} {'epoch s':>8} {'x memory':>9} {'load s':>7} {'peak RSS MiB':>13}")
    for name, rs in results.items():
        epoch = statistics.median(r["epoch"] for r in rs)
        load = statistics.median(r["load"] for r in rs)
        peak = statistics.median(r["peak"] for r in rs)
        print(f"{name:<11} {epoch:8.2f} {epoch / base:9.2f} {load:7.1f} {peak:13,.0f}")
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
