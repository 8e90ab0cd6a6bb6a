"""The native call path (runtime/cpu/call_path.py): data pointers read from
the arrays' objects, checked against numpy; the Python path where the check
fails gives the same results."""

import ctypes
import threading

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.runtime.cpu import call_path


def test_layout_check_holds_here():
    """On the supported CPython/numpy builds the ndarray layout is known, so
    calls take the native path (a failure here means every call is ~2 µs per
    array slower: see call_path's docstring)."""
    assert call_path._data_offset() == object.__basicsize__
    assert call_path.trampoline() is not None


def _program(x, y):
    return fnp.tanh(x) * y[None, :] + 1.0, fnp.sum(x, axis=0)


@pytest.fixture
def python_path(monkeypatch):
    """Calls as where the layout check failed: no trampoline."""
    monkeypatch.setitem(call_path._state, "done", True)
    monkeypatch.setitem(call_path._state, "fn", None)


def _check(f):
    rng = np.random.default_rng(0)
    big = rng.standard_normal((40, 7))
    x = big[3:11]                              # a view at an offset
    y = rng.standard_normal(17)[::2][:7]       # a strided view: copied by the signature check
    a, b = f(x, y)
    np.testing.assert_allclose(a, np.tanh(x) * y[None, :] + 1.0, rtol=1e-12)
    np.testing.assert_allclose(b, x.sum(0), rtol=1e-12)
    out = (np.empty((8, 7)), np.empty(7))
    a2, b2 = f(x, y, out=out)
    assert a2 is out[0] and b2 is out[1]
    np.testing.assert_array_equal(a2, a)


def test_native_path_results():
    _check(ferrule.jit(_program))


def test_python_path_results(python_path):
    _check(ferrule.jit(_program))


def test_empty_arrays_and_threads():
    f = ferrule.jit(lambda x: x * 2.0)
    e = np.empty((0, 3))
    assert f(e).shape == (0, 3)
    xs = [np.full((64, 33), float(i)) for i in range(8)]
    res = [None] * 8

    def work(i):
        for _ in range(200):
            res[i] = f(xs[i])
    ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for i in range(8):
        np.testing.assert_array_equal(res[i], 2.0 * xs[i])


def test_trampoline_releases_the_gil():
    fn = call_path.trampoline()
    assert not type(fn)._flags_ & ctypes._FUNCFLAG_PYTHONAPI
