"""Local worker plans: GPUs, thread shares, ranks and seeds (no process is started)."""

from __future__ import annotations

import sys

import pytest

from tuner.errors import ConfigError
from tuner.run.identity import resolve_rank, unnamed_worker_offset
from tuner.run.workers import plan_workers, worker_argv, worker_env


def test_cpu_workers_share_the_cores() -> None:
    plan = plan_workers(2, None, cores=2)
    assert plan.gpus == (None, None) and plan.threads == 1
    assert plan_workers(3, None, cores=16).threads == 5
    assert plan_workers(4, None, cores=2).threads == 1  # never zero
    assert plan_workers(2, None, cores=16, threads=3).threads == 3  # training.threads wins


def test_gpu_list_pins_one_worker_per_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    plan = plan_workers(None, "0,2", cores=16)
    assert plan.gpus == ("0", "2") and plan.threads == 8
    assert worker_env("2", 8)["CUDA_VISIBLE_DEVICES"] == "2"
    assert worker_env(None, 1).get("CUDA_VISIBLE_DEVICES") == __import__("os").environ.get(
        "CUDA_VISIBLE_DEVICES"
    )


def test_gpus_all_uses_the_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,7")
    assert plan_workers(None, "all", cores=12).gpus == ("3", "5", "7")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
        plan_workers(None, "all")


def test_trials_per_gpu_pins_n_workers_to_each_gpu_and_shares_the_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    plan = plan_workers(None, "all", cores=16, per_gpu=4)
    assert plan.gpus == ("0", "0", "0", "0", "1", "1", "1", "1") and plan.threads == 2
    assert [worker_env(g, plan.threads)["CUDA_VISIBLE_DEVICES"] for g in plan.gpus[3:5]] == ["0", "1"]
    assert worker_env("1", plan.threads)["OMP_NUM_THREADS"] == "2"
    assert plan_workers(None, "1", cores=16, per_gpu=3).gpus == ("1", "1", "1")
    assert plan_workers(None, "0", cores=2, per_gpu=4).threads == 1  # never zero
    assert plan_workers(None, "0,1", cores=16).gpus == ("0", "1")  # default: one per GPU
    with pytest.raises(ConfigError, match="--trials-per-gpu 2: it needs --gpus"):
        plan_workers(2, None, per_gpu=2)
    with pytest.raises(ConfigError, match="integer >= 1"):
        plan_workers(None, "0", per_gpu=0)


@pytest.mark.parametrize(
    ("workers", "gpus", "message"),
    [
        (0, None, "--workers must be an integer >= 1, got 0"),
        (2, "0", "either --workers"),
        (None, "0,x", "--gpus must be 'all' or comma-separated GPU ids"),
        (None, "1,1", "lists a GPU twice"),
        (None, "0,9", "GPU 9 is not visible"),
    ],
)
def test_bad_worker_flags_are_explained(
    workers: int | None, gpus: str | None, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with pytest.raises(ConfigError, match=message):
        plan_workers(workers, gpus)


def test_worker_command_line_never_refits_and_carries_its_rank() -> None:
    argv = worker_argv(["study.yaml", "--n-trials", "8"], 3, 2)
    assert argv[:4] == [sys.executable, "-m", "tuner.cli", "run"]
    assert argv[4:7] == ["study.yaml", "--n-trials", "8"]
    assert "--no-refit" in argv
    assert argv[argv.index("--worker-rank") + 1] == "3" and argv[argv.index("--threads") + 1] == "2"


def test_rank_from_flag_env_or_kubernetes_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNER_WORKER_RANK", raising=False)
    monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)
    assert resolve_rank(None) is None
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "5")
    assert resolve_rank(None) == 5
    monkeypatch.setenv("TUNER_WORKER_RANK", "2")
    assert resolve_rank(None) == 2 and resolve_rank(0) == 0
    monkeypatch.setenv("TUNER_WORKER_RANK", "two")
    with pytest.raises(ConfigError, match="TUNER_WORKER_RANK must be a non-negative integer"):
        resolve_rank(None)


def test_unnamed_workers_get_distinct_stable_offsets() -> None:
    a, b = unnamed_worker_offset("host-a:100"), unnamed_worker_offset("host-b:100")
    assert a != b and a == unnamed_worker_offset("host-a:100") and min(a, b) >= 1000


def test_cli_rejects_bad_workers_before_anything_is_created(tmp_path, write_study) -> None:  # type: ignore[no-untyped-def]
    from tuner.cli import main

    study = write_study()
    assert main(["run", str(study), "--workers", "0"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.yaml"]


def test_workers_in_containers_on_the_host_network_are_told_apart(monkeypatch) -> None:
    # Host-networked containers share the host's name and each numbers its processes
    # from 1: the PID namespace in the name keeps "vm:7" in one from being "vm:7" in another.
    import os
    import socket

    from tuner.run import identity

    here = socket.gethostname()
    assert identity.worker_name(1234) == f"{here}:1234"  # this machine: the initial namespace
    real_stat = os.stat

    def in_container(path, *args, **kwargs):
        if str(path) == "/proc/self/ns/pid":
            return os.stat_result((0, 4026532178, 0, 0, 0, 0, 0, 0, 0, 0))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(identity.os, "stat", in_container)
    name = identity.worker_name(os.getpid() + 10_000_000)  # no process has this pid
    assert name == f"{here}/pidns-4026532178:{os.getpid() + 10_000_000}"
    assert identity.certainly_dead(name)  # same container, no such process
    # the host's process of that pid, or another container's: not this one's to judge
    assert not identity.certainly_dead(f"{here}:{os.getpid() + 10_000_000}")
    assert not identity.certainly_dead(f"{here}/pidns-4026532999:{os.getpid() + 10_000_000}")
