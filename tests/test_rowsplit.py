"""Row-separable functions run on several threads; others say why not."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule import api
from ferrule.nn import sigmoid


@pytest.fixture
def two_threads(monkeypatch):
    monkeypatch.setenv("FERRULE_NUM_THREADS", "2")
    monkeypatch.setattr(api, "_ROW_SPLIT_MIN_ELEMENTS", 16)


def lstm_fb(G, c, dh, dc):
    def cell(G, c):
        i, f, g, o = fnp.split(G, 4, axis=1)
        c2 = sigmoid(f) * c + sigmoid(i) * fnp.tanh(g)
        return sigmoid(o) * fnp.tanh(c2), c2
    (h, c2), pb = ferrule.vjp(cell, G, c)
    return (h, c2, *pb((dh, dc)))


@pytest.mark.parametrize("rows", [8, 5])  # 5 rows: chunks of 2 and 3
def test_row_split_matches_one_thread(two_threads, monkeypatch, rows):
    rng = np.random.default_rng(0)
    G = rng.standard_normal((rows, 32)).astype(np.float32)
    c, dh, dc = (rng.standard_normal((rows, 8)).astype(np.float32) for _ in range(3))
    f = ferrule.jit(lstm_fb)
    low = f.lower(G, c, dh, dc)
    got = f(G, c, dh, dc)
    assert "CPU: 2 threads over row chunks" in low.explain()
    monkeypatch.setenv("FERRULE_NUM_THREADS", "1")
    want = ferrule.jit(lstm_fb)(G, c, dh, dc)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    out = tuple(np.empty_like(a) for a in got)
    f(G, c, dh, dc, out=out)
    for a, b in zip(out, want):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fn, why", [
    (lambda x, w: fnp.tanh(x @ w), "'linalg.matmul' is not known to be row-local"),
    (lambda x, w: x * fnp.sum(x, axis=0) + w, "a reduction over rows"),
    (lambda x, w: fnp.transpose(x) * w, "reads across rows"),
])
def test_not_row_separable_runs_on_one_thread(two_threads, fn, why):
    x, w = np.ones((4, 4)), np.ones((4, 4)) * 0.5
    low = ferrule.jit(fn).lower(x, w)
    want = ferrule.jit(fn, static_argnums=())(x, w)
    low.compile()
    assert "CPU: 1 thread (not row-separable" in low.explain() and why in low.explain()
    np.testing.assert_allclose(low.compile()(x, w)[0], want)


def test_reduction_over_rows_is_not_split(two_threads):
    x = np.arange(12.0).reshape(4, 3)
    f = ferrule.jit(lambda x: (x * 2.0, fnp.sum(x, axis=0, keepdims=True) * x))
    low = f.lower(x)
    a, b = f(x)
    np.testing.assert_allclose(b, x.sum(0, keepdims=True) * x)
    assert "not row-separable: 'arith.constant' produces tensor<3xf64>" in low.explain()
