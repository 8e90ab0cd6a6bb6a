"""An allocation that fails inside compiled code is a MemoryError, never a
crash (runtime/cpu/oom.py). Each case runs in a subprocess, so a
regression that kills the process is a failed test, not a dead pytest."""

import subprocess
import sys
import textwrap

import pytest

from ferrule.runtime.cpu import oom

PRELUDE = """
import numpy as np, ferrule, ferrule.numpy as N
from ferrule.runtime import cpu
# x[:, None] @ x[None, :] materialises an n x n temporary: 160 GB for n = 200,000,
# which malloc refuses on any machine these tests run on.
outer_sum = lambda x: N.sum(x[:, None] @ x[None, :])
"""


def _run(code: str):
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (f"exit status {proc.returncode} (negative: killed by "
                                  f"a signal)\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout


def test_a_temporary_too_large_for_memory_is_a_memory_error_and_the_process_goes_on():
    out = _run("""
        f = ferrule.jit(outer_sum)
        try:
            f(np.ones(200_000, np.float32))
        except MemoryError as e:
            print("MemoryError:", e)
        print("then:", f(np.ones(100, np.float32)), ferrule.jit(lambda a: a * 2.0)(np.ones(3))[0])
    """)
    assert "MemoryError: _lambda_: a temporary of 160,000,000,064 bytes could not be " \
           "allocated inside the compiled code" in out
    assert "then: 10000.0 2.0" in out


def test_under_row_splitting_each_thread_unwinds_its_own_call():
    out = _run("""
        cpu.set_defaults(cpu.CpuOptions(threads=2, split_min_elements=1, split_min_rows_with_sums=1))
        f = ferrule.jit(lambda a, x: N.tanh(a) @ (x[:, None] @ x[None, :]))
        a, x = np.ones((8, 100_000), np.float32), np.ones(100_000, np.float32)
        print(type(f.lower(a, x).compile()).__name__)
        for _ in range(2):
            try:
                f(a, x)
            except MemoryError as e:
                print("MemoryError:", str(e)[:40])
        a, x = np.ones((8, 10), np.float32), np.ones(10, np.float32)
        print("then:", np.allclose(f(a, x), np.tanh(a) @ np.outer(x, x)))
    """)
    assert "RowSplitFunction" in out and out.count("MemoryError: _lambda_") == 2
    assert "then: True" in out


def test_calls_nest_through_a_callback():
    # The inner jitted call (from a pure_callback) links its jmp_buf over the
    # outer's and restores it: a failure after it unwinds the outer call.
    out = _run("""
        inner = ferrule.jit(lambda y: y + 1.0)
        def host(y):
            return np.asarray(inner(np.asarray(y)))
        def outer(x):
            y = ferrule.pure_callback(host, ferrule.ShapeDtype(x.shape, x.dtype), x)
            return N.sum(y[:, None] @ y[None, :])
        f = ferrule.jit(outer)
        try:
            f(np.ones(200_000, np.float32))
        except MemoryError as e:
            print("MemoryError:", str(e)[:40])
        print("then:", f(np.ones(10, np.float32)))
    """)
    assert "MemoryError:" in out and "then: 400.0" in out


def test_every_malloc_call_is_checked():
    ir = ("declare ptr @malloc(i64)\n"
          "define void @__ferrule_f(ptr %0, i64 %1) {\n"
          "  %a = call ptr @malloc(i64 64)\n  %b = call ptr @malloc(i64 %1)\n  ret void\n}\n")
    out = oom.guard_allocations(ir, "__ferrule_f")
    body = out.split("define internal ptr @__ferrule_checked_malloc")[0]
    assert "@malloc(i64 64)" not in body and body.count("call ptr @__ferrule_checked_malloc(") == 2
    assert "define i32 @__ferrule_entry_f(ptr %slot, ptr %a0, i64 %a1)" in out
    with pytest.raises(ValueError, match="not defined"):
        oom.guard_allocations(ir, "__ferrule_g")
