"""jit's machinery around the op set: pytrees, static arguments, out=,
caching, the IR it produces (fusion, allocations, locations), memory, and
crashes reproduced in a child process."""

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule import nn
from opcheck import (F64, TOL, _np_sigmoid, assert_close, check)


# -- pytrees, static arguments, out= ------------------------------------------------------

def test_tuples_and_lists_as_arguments_and_results():
    rng = np.random.default_rng(11)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4,))
    c = rng.standard_normal((3, 4)).astype(np.float32)

    def f(pair, rest):
        x, y = pair
        (z,) = rest
        return [x * y, (z + 1.0, x - y)], z

    got = ferrule.jit(f)((a, b), [c])
    want = f((a, b), [c])
    assert_close(got, want, TOL[F64])


def test_results_alias_inputs_and_each_other():
    x = np.arange(6.0).reshape(2, 3)
    a, b, c = ferrule.jit(lambda x: (x, x, x * 2))(x)
    np.testing.assert_array_equal(a, x)
    np.testing.assert_array_equal(b, x)
    assert a is not x and not np.shares_memory(a, x) and not np.shares_memory(a, b)
    np.testing.assert_array_equal(c, 2 * x)


def test_one_computed_value_returned_twice():
    x = np.arange(6.0).reshape(2, 3)
    a, b = ferrule.jit(lambda x: (x * 2.0, x * 2.0))(x)  # CSE makes them one value
    assert not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, 2 * x)
    np.testing.assert_array_equal(b, 2 * x)


def test_python_ints_are_static_and_floats_traced():
    """Python ints (and bools, strings, None) specialise; Python floats are
    traced (weakly typed: x_f32 * lr stays float32), so a new learning rate
    does not recompile; static_argnums keeps a float static."""
    calls = []

    def f(x, k):
        calls.append(k)
        return x * k

    g = ferrule.jit(f)
    x = np.ones(3, np.float32)
    np.testing.assert_array_equal(g(x, 2), 2 * x)
    np.testing.assert_array_equal(g(x, 3), 3 * x)
    g(x, 2)
    assert calls == [2, 3]
    calls.clear()
    for lr in (0.5, 0.25, 1e-3):
        got = g(x, lr)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, x * np.float32(lr))
    assert len(calls) == 1                                            # traced once
    assert g(x.astype(np.float64), 0.1).dtype == np.float64          # float64 kept exactly
    np.testing.assert_array_equal(g(x.astype(np.float64), 0.1), np.full(3, 0.1))
    calls.clear()
    s = ferrule.jit(f, static_argnums=1)
    s(x, 2.0)
    s(x, 3.0)
    s(x, 2.0)
    assert calls == [2.0, 3.0]


def test_non_contiguous_and_0d_inputs():
    x = np.arange(24.0).reshape(4, 6)[::2, 1::2]
    s = np.float64(3.0)
    got = ferrule.jit(lambda x, s: x * s)(x, s)
    np.testing.assert_array_equal(got, x * 3.0)


def test_out_buffers_are_filled_and_returned():
    f = ferrule.jit(lambda x: (x + 1.0, x * 2.0))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    o1, o2 = np.empty_like(x), np.empty_like(x)
    r1, r2 = f(x, out=(o1, o2))
    assert r1 is o1 and r2 is o2
    np.testing.assert_array_equal(o1, x + 1)
    np.testing.assert_array_equal(o2, x * 2)
    g = ferrule.jit(lambda x: -x)
    o = np.empty_like(x)
    assert g(x, out=(o,)) is o
    np.testing.assert_array_equal(o, -x)
    with pytest.raises(TypeError, match=r"out\[0\] must be a writeable C-contiguous float32\[2, 3\]"):
        g(x, out=(np.empty((3, 2), np.float32),))


# -- jit caching --------------------------------------------------------------------------

def test_jit_traces_once_per_signature():
    calls = []

    @ferrule.jit
    def f(x, y):
        calls.append((x.shape, x.dtype))
        return fnp.tanh(x) * y + 1.0

    a = np.random.default_rng(12).standard_normal((3, 4)).astype(np.float32)
    r1 = f(a, a)
    r2 = f(a + 1, a)
    assert len(calls) == 1
    np.testing.assert_allclose(r2, np.tanh(a + 1) * a + 1, rtol=1e-6, atol=1e-6)
    assert f.lower(a, a) is f.lower(a * 2, a)
    f(a.astype(np.float64), a.astype(np.float64))           # new dtype
    assert len(calls) == 2
    f(a[:2], a[:2])                                          # new shape
    assert len(calls) == 3
    f(a, a[0])                                               # broadcasting signature
    assert len(calls) == 4
    np.testing.assert_array_equal(f(a, a), r1)               # cached again
    assert len(calls) == 4
    assert calls[1] == ((3, 4), np.dtype(np.float64))


def test_compiled_objects_go_to_the_session_cache_dir():
    d = os.environ["FERRULE_CACHE_DIR"]
    assert not d.startswith(os.path.expanduser("~/.cache"))
    ferrule.jit(lambda x: x * 7.0 - 3.0)(np.ones(5))
    assert any(n.endswith(".o") for n in os.listdir(d))


# -- IR text: fusion, allocation, locations ---------------------------------------------------

def _lstm_cell(G, c):
    i, fg, g, o = fnp.split(G, 4, axis=1)
    c2 = nn.sigmoid(fg) * c + nn.sigmoid(i) * fnp.tanh(g)
    return nn.sigmoid(o) * fnp.tanh(c2), c2


def test_lstm_cell_values():
    rng = np.random.default_rng(13)
    G = rng.standard_normal((3, 16)).astype(np.float32)
    c = rng.standard_normal((3, 4)).astype(np.float32)

    def ref(G, c):
        i, fg, g, o = np.split(G, 4, axis=1)
        c2 = _np_sigmoid(fg) * c + _np_sigmoid(i) * np.tanh(g)
        return _np_sigmoid(o) * np.tanh(c2), c2

    check(_lstm_cell, ref, [G, c])


def test_pointwise_chain_fuses_into_one_generic_without_temporaries():
    G, c = np.ones((3, 16), np.float32), np.ones((3, 4), np.float32)
    low = ferrule.jit(_lstm_cell).lower(G, c)
    assert low.as_text("ad").count("linalg.generic") == 1, low.as_text("ad")
    llvm = low.as_text("llvm")
    assert not re.search(r"@(malloc|aligned_alloc|posix_memalign|_mlir_memref_to_llvm_alloc)",
                         llvm), llvm


def test_traced_ir_carries_user_source_locations():
    def f(x):
        y = fnp.exp(x)  # LOC-exp
        return y[1:] * 2.0  # LOC-slice

    text = ferrule.jit(f).lower(np.ones(4)).as_text("traced")
    for marker in ("LOC-exp", "LOC-slice"):
        assert f'loc("{__file__}":{_line(marker)}:' in text, text


def _line(marker):
    with open(__file__) as fh:
        for k, line in enumerate(fh, 1):
            if line.rstrip().endswith("# " + marker):
                return k
    raise KeyError(marker)


# -- memory -----------------------------------------------------------------------------------

def _rss_bytes():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_repeated_calls_do_not_leak():
    f = ferrule.jit(lambda x, y: (fnp.tanh(x) * y + 1.0, (x @ y.T).sum(axis=0)))
    x = np.ones((8, 16), np.float32)
    for _ in range(500):  # warm up allocator pools
        f(x, x)
    before = _rss_bytes()
    for _ in range(10_000):
        f(x, x)
    grown = _rss_bytes() - before
    assert grown < 4 * 2 ** 20, f"RSS grew by {grown / 2 ** 20:.1f} MiB over 10,000 calls"


# -- crashes, reproduced in a child process ----------------------------------------------------

CRASHERS = {
    "duplicate_result": "f = ferrule.jit(lambda x: (x * 2, x * 2)); print(f(np.ones(3)))",
}


@pytest.mark.parametrize("name", list(CRASHERS))
def test_known_crash_in_subprocess(name):
    code = textwrap.dedent(f"""
        import numpy as np, ferrule, ferrule.numpy as fnp
        {CRASHERS[name]}
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, env=os.environ)
    assert r.returncode == 0, f"child died with {r.returncode}: {r.stderr[-400:]}"
