"""The calibration set (``diagnosis_cases``): every case's trials get the diagnosis a
practitioner would give them. One case per diagnosis runs by default; all of them with
``-m slow`` (``benchmarks/diagnoses.py`` prints the confusion table)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.diagnosis_cases import CASES, Case, run_case
from tuner.views.diagnose import DIAGNOSES


def test_every_diagnosis_has_cases_and_a_fast_one() -> None:
    for name in DIAGNOSES:
        cases = [c for c in CASES if c.expect == name]
        assert len(cases) >= 5, f"{name}: {len(cases)} cases"
        assert any(c.fast for c in cases), f"{name} has no case in the default suite"
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.name, marks=() if c.fast else pytest.mark.slow) for c in CASES]
)
def test_case_gets_its_diagnosis(case: Case, tmp_path: Path) -> None:
    rows = run_case(case, tmp_path)
    assert rows, f"{case.name}: no trial to judge (judged: {case.judged})"
    wrong = [f"#{r['number']} {r['text']}" for r in rows if r["diagnosis"] != case.expect]
    assert not wrong, f"{case.name}, expected {case.expect}:\n" + "\n".join(wrong)
