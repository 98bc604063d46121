"""torch's default threads are the cores other work leaves free
(tuner.run.workers.default_threads): at a load of ~6 on 2 cores, 2 threads made the
quickstart 2.3x slower than 1."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tuner.run import workers


@pytest.mark.parametrize(
    ("cores", "busy", "threads"),
    [(2, 0, 2), (2, 1, 1), (2, 5, 1), (8, 3, 5), (1, 0, 1), (4, 4, 1)],
)
def test_the_free_cores_and_at_least_one(cores: int, busy: int, threads: int) -> None:
    assert workers.default_threads(cores, busy) == (threads, busy)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/loadavg")
def test_busy_processes_are_counted() -> None:
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        time.sleep(0.5)
        assert workers.busy_elsewhere() >= 2  # 3 spinning; a sample may catch one switched out
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def test_training_threads_and_a_workers_share_are_not_second_guessed(monkeypatch, tmp_path) -> None:
    import torch

    from tests.conftest import tiny_study
    from tuner.config import validate_config
    from tuner.run import runner

    def no_sampling(*a, **k):
        raise AssertionError("sampled the machine's load")

    doc = tiny_study()
    doc["training"].pop("threads")
    unset = validate_config(doc, tmp_path, "t.yaml")
    fixed = validate_config(tiny_study(), tmp_path, "t.yaml")  # training.threads: 1
    monkeypatch.setattr(workers, "busy_elsewhere", no_sampling)
    before = torch.get_num_threads()
    said: list[str] = []
    try:
        assert runner._claim_device(unset, 3, said.append)[1] == 0  # a worker's share
        assert torch.get_num_threads() == 3
        assert runner._claim_device(fixed, 3, said.append)[1] == 0  # the study file's, over the share
        assert torch.get_num_threads() == 1 and not said
        monkeypatch.setattr(workers, "busy_elsewhere", lambda: 7)
        assert runner._claim_device(unset, None, said.append)[1] == 7  # the session's, for write_mode
        import os

        assert torch.get_num_threads() == max(1, len(os.sched_getaffinity(0)) - 7)
        assert len(said) == 1 and "7 other task(s) busy" in said[0]
    finally:
        torch.set_num_threads(before)


def test_the_storage_writer_child_stays_off_busy_cores(monkeypatch) -> None:
    from tuner.run.write_behind import write_mode

    monkeypatch.delenv("TUNER_STORAGE_WRITER", raising=False)
    assert write_mode(threads=1, cores=2, busy=0) == "process"  # a core to spare
    assert write_mode(threads=1, cores=2, busy=1) == "inline"  # the other core is taken
    assert write_mode(threads=1, cores=2, busy=5) == "inline"
    assert write_mode(threads=2, cores=8, busy=3) == "process"
