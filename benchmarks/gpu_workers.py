"""Several trials per GPU: trials/hour and GPU busy time with 1, 2 and 4 workers on one GPU.

The quickstart-sized CNN (``examples/digits.yaml``: 8-16 channels, digits' 8x8 images, data
on the device) leaves a large GPU mostly idle: each step is a handful of tiny kernels, and the
Python between them is the bottleneck. ``tune STUDY --gpus 0 --trials-per-gpu N`` runs N
workers (N trials at once) on the GPU. For each N this script runs the same study (a copy in
a fresh temporary folder, MLflow off, the default SQLite storage or ``--storage journal``, no
refit) and samples ``nvidia-smi`` every 200 ms while it runs:

  trials/h   finished trials per hour of wall time from the first trial's start to the
             last trial's end (process start-up is not charged), and its ratio to N=1
  busy       the GPU's utilization (the share of time a kernel ran), mean over the samples
             taken between the first trial's start and the last trial's end
  memory     the most GPU memory in use (MiB)

    python benchmarks/gpu_workers.py                       # N = 1, 2, 4; 24 trials each
    python benchmarks/gpu_workers.py --per-gpu 1 4 8 --trials 32
    python benchmarks/gpu_workers.py --cuda-graphs both    # each N with graphed steps off, then on

``--cuda-graphs`` sets ``training.cuda_graphs`` (off by default in a study; ``off`` is the
step-by-step loop); the ratios are against the first row, measured in the same run.

Needs a CUDA GPU and ``nvidia-smi``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


class Sampler:
    """``nvidia-smi`` utilization and memory, every ``ms`` milliseconds, with timestamps."""

    def __init__(self, ms: int = 200) -> None:
        self.ms = ms
        self.samples: list[tuple[float, float, float]] = []  # (time, util %, memory MiB)
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        cmd = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
        self._proc = subprocess.Popen([*cmd, f"-lms={self.ms}"], stdout=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                util, mem = (float(v) for v in line.split(",")[:2])
            except ValueError:
                continue
            self.samples.append((time.time(), util, mem))

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)

    def between(self, start: float, end: float) -> list[tuple[float, float, float]]:
        return [s for s in self.samples if start <= s[0] <= end]


def run_one(
    study: Path,
    per_gpu: int,
    trials: int,
    gpu: str,
    device: str = "cuda",
    storage: str = "sqlite",
    graphs: bool | None = None,
) -> dict[str, float]:
    """One study with ``per_gpu`` workers on ``gpu``; its throughput and GPU use."""
    import optuna

    tmp = Path(tempfile.mkdtemp(prefix=f"gpu-workers-{per_gpu}-"))
    try:
        doc = yaml.safe_load(study.read_text())
        doc["name"] = f"gpu-workers-{per_gpu}"
        doc["storage"] = "journal:///study.log" if storage == "journal" else "sqlite:///study.db"
        doc.setdefault("training", {})["device"] = device
        if graphs is not None:
            doc["training"]["cuda_graphs"] = graphs
        doc["mlflow"] = {"enabled": False}
        doc.setdefault("budget", {})["n_trials"] = trials
        doc["budget"]["timeout"] = None
        (tmp / "study.yaml").write_text(yaml.safe_dump(doc))
        cmd = [sys.executable, "-m", "tuner.cli", "run", "study.yaml", "--no-refit", "--gpus", gpu]
        cmd += ["--trials-per-gpu", str(per_gpu)]
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        with Sampler() as sampler:
            started = time.time()
            out = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=1800)
            wall = time.time() - started
        if out.returncode != 0:
            raise RuntimeError(f"tune exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        if storage == "journal":
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            store: object = JournalStorage(JournalFileBackend(str(tmp / "study.log")))
        else:
            store = f"sqlite:///{tmp / 'study.db'}"
        loaded = optuna.load_study(study_name=doc["name"], storage=store)  # type: ignore[arg-type]
        done = [t for t in loaded.trials if t.datetime_complete and t.state.name in ("COMPLETE", "PRUNED")]
        first = min(t.datetime_start.timestamp() for t in done)  # type: ignore[union-attr]
        last = max(t.datetime_complete.timestamp() for t in done)  # type: ignore[union-attr]
        window = sampler.between(first, last)
        busy = sum(s[1] for s in window) / max(len(window), 1)
        return {
            "trials": len(done),
            "span": last - first,
            "wall": wall,
            "per_hour": len(done) / (last - first) * 3600,
            "busy": busy,
            "memory": max((s[2] for s in sampler.samples), default=0.0),
            "samples": len(window),
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=REPO / "examples" / "digits.yaml")
    parser.add_argument("--per-gpu", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--gpu", default="0")
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the script itself")
    parser.add_argument("--storage", choices=("sqlite", "journal"), default="sqlite")
    parser.add_argument("--cuda-graphs", choices=("on", "off", "both"), default="both")
    args = parser.parse_args()
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.cuda_graphs]
    info = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(
        f"GPU {args.gpu}: {info}; {os.cpu_count()} CPU cores; study {args.study.name}, {args.trials} trials"
    )
    print(
        f"{'graphs':>6} {'per GPU':>7} {'trials':>6} {'span s':>7} {'wall s':>7} {'trials/h':>9} {'x first':>7} {'busy %':>7} {'mem MiB':>8}"
    )
    base = None
    for n in args.per_gpu:
        for graphs in modes:
            graphs_arg = graphs if args.device == "cuda" else None  # the CPU dry run has none
            r = run_one(args.study, n, args.trials, args.gpu, args.device, args.storage, graphs_arg)
            base = base or r["per_hour"]
            print(
                f"{'on' if graphs else 'off':>6} {n:>7} {r['trials']:>6.0f} {r['span']:>7.1f} {r['wall']:>7.1f} {r['per_hour']:>9.0f} "
                f"{r['per_hour'] / base:>7.2f} {r['busy']:>7.1f} {r['memory']:>8.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
