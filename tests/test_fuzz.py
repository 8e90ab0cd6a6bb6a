"""The random-program tester (tests/fuzz, docs/fuzzing.md) in CI's profile.

A fixed range of seeds, so a failure here is reproducible with
``python tests/fuzz/run.py --seed N --show``; ``make fuzz`` runs thousands.
Also checks the driver itself: a worker that aborts or hangs is recorded as
a crash or a timeout of its program, and the run goes on.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent / "fuzz" / "run.py"


def _run(*args, env=None, timeout=900):
    return subprocess.run([sys.executable, str(RUN), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_fast_profile_has_no_new_failures():
    """100 random programs, every mode: any failure not in
    known_failures.txt fails the test, with the report as the message."""
    r = _run("--count", "100", "--jobs", "2", "--strict")
    assert r.returncode == 0, r.stdout[-20000:] + r.stderr[-3000:]
    assert "100 programs" in r.stdout


@pytest.mark.parametrize("how, outcome", [("abort", "crash"), ("hang", "timeout")])
def test_a_dead_or_hung_worker_is_recorded_and_replaced(how, outcome):
    # seed 1's program dies (or hangs past --timeout); seeds 0 and 2 run on
    # the worker before it and on its replacement
    r = _run("--count", "3", "--start", "0", "--jobs", "1", "--timeout", "30",
             env={"FERRULE_FUZZ_SABOTAGE": f"{how}:1"})
    assert r.returncode == 0, r.stderr
    assert f"[NEW] seed 1: {outcome}" in r.stdout, r.stdout
    assert "seed 0:" not in r.stdout and "seed 2:" not in r.stdout, r.stdout
    assert "3 programs" in r.stdout


def test_strict_fails_on_an_unknown_failure():
    r = _run("--count", "1", "--start", "1", "--jobs", "1", "--timeout", "60", "--strict",
             env={"FERRULE_FUZZ_SABOTAGE": "abort:1"})
    assert r.returncode == 1
    assert "[NEW] seed 1: crash" in r.stdout
