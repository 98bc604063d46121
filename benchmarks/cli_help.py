"""How fast `tune --help` answers (issue #7: under a second, thanks to lazy imports).

Times, in the same run and interleaved so machine load hits all alike:
  baseline   `python -c pass`                 (interpreter start-up: the floor)
  help       `tune --help` (python -m tuner.cli --help)
  eager      `python -c "import torch, mlflow, optuna"`  (what --help would cost eagerly)
and prints medians and ratios to the baseline. The machine may be shared and noisy:
read the ratios, and run it when `uptime` shows a low load.

    python benchmarks/cli_help.py [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "baseline": [sys.executable, "-c", "pass"],
    "help": [sys.executable, "-m", "tuner.cli", "--help"],
    "eager": [sys.executable, "-c", "import torch, mlflow, optuna"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    times: dict[str, list[float]] = {k: [] for k in CASES}
    for i in range(args.repeat + 1):
        for name, cmd in CASES.items():
            if name == "eager" and i % 3:  # slow; a few samples suffice
                continue
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if i:  # the first round warms the file cache
                times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["baseline"])
    print(f"{'case':<10} {'median s':>9} {'max s':>7} {'x baseline':>11}  n")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<10} {med:9.3f} {max(ts):7.3f} {med / base:11.1f}  {len(ts)}")
    help_med = statistics.median(times["help"])
    print(
        f"tune --help: {help_med:.3f} s median ({'under' if help_med < 1 else 'OVER'} the 1 s target), "
        f"{statistics.median(times['eager']) / help_med:.0f}x faster than importing torch+mlflow+optuna"
    )


if __name__ == "__main__":
    main()
