"""An allocation that fails inside compiled code is a MemoryError, never a
crash (runtime/cpu/oom.py). Each case runs in a subprocess, so a
regression that kills the process is a failed test, not a dead pytest."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ferrule
import ferrule.numpy as N
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


def test_allocations_go_through_the_guard():
    """The CPU pipeline allocates through upstream's generic functions (no
    direct malloc), and link_guard defines them and the entry point in the
    function's own module, internal to it."""
    import llvmlite.binding as llvm
    from ferrule.runtime import pipelines
    assert pipelines.GUARDED_ALLOCATIONS in pipelines.cpu_lowering()
    low = ferrule.jit(lambda x: N.sum(x[:, None] * x[None, :])).lower(np.ones(3, np.float32))
    text = low.as_text("llvm")
    assert f"llvm.call @{oom.ALLOC}" in text and "llvm.call @malloc" not in text
    ir = (f"declare ptr @{oom.ALLOC}(i64)\ndeclare void @{oom.FREE}(ptr)\n"
          "define void @__ferrule_f(ptr %0, i64 %1) {\n"
          f"  %a = call ptr @{oom.ALLOC}(i64 %1)\n  call void @{oom.FREE}(ptr %a)\n  ret void\n}}\n")
    ctx = llvm.create_context()
    mod = llvm.parse_assembly(ir, context=ctx)
    oom.link_guard(mod, "__ferrule_f", ctx)
    mod.verify()
    assert mod.get_function(oom.ALLOC).linkage.name == "internal"
    assert not mod.get_function(oom.ALLOC).is_declaration
    entry = mod.get_function("__ferrule_entry_f")
    assert [str(a.type) for a in entry.arguments] == ["ptr", "ptr"]   # slot, argv
    with pytest.raises(ValueError, match="not defined"):
        oom.link_guard(llvm.parse_assembly(ir, context=ctx), "__ferrule_g", ctx)
    assert set(oom.externals([oom.ALLOC, "expf"])) == {"expf", *oom.EXTERNALS}
