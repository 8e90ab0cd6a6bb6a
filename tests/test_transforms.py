"""The transforms called outside jit are compiled once per signature, like
jit; and ``vjp(..., has_aux=True)`` returns the aux output (JAX semantics)."""

import gc
import weakref

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule import TracingError


def counted(fn):
    """``fn`` with a count of its calls: one call per trace of it."""
    def f(*args):
        f.calls += 1
        return fn(*args)
    f.calls = 0
    f.__name__ = fn.__name__
    return f


def loss(x, w):
    return fnp.sum(fnp.tanh(x * w) ** 2)


X, W = np.linspace(-1, 1, 6).reshape(2, 3), np.full((2, 3), 0.5)


def test_grad_outside_jit_traces_once_per_signature():
    f = counted(loss)
    first = ferrule.grad(f)(X, W)
    traces = f.calls
    assert traces >= 1
    for _ in range(3):
        np.testing.assert_array_equal(ferrule.grad(f)(X, W), first)   # a new grad(f) each time
    g = ferrule.grad(f)
    g(X, W), g(X, W)
    assert f.calls == traces
    ferrule.grad(f)(X[:1], W[:1])            # another signature: traced again
    assert f.calls == 2 * traces
    ferrule.grad(f, argnums=1)(X, W)         # another transform: traced again
    assert f.calls == 3 * traces


def test_value_and_grad_vjp_and_jvp_outside_jit_trace_once_per_signature():
    f = counted(loss)
    for _ in range(3):
        ferrule.value_and_grad(f, argnums=(0, 1))(X, W)
    once = f.calls
    out, pb = ferrule.vjp(f, X, W)
    pb(np.float64(1.0))
    after_vjp = f.calls
    for _ in range(3):
        out, pb = ferrule.vjp(f, X, W)
        pb(np.float64(1.0))
        ferrule.value_and_grad(f, argnums=(0, 1))(X, W)
    assert f.calls == after_vjp and after_vjp > once
    for _ in range(3):
        ferrule.jvp(f, (X, W), (W, X))
    assert f.calls == after_vjp + once


def test_the_cache_keeps_no_function_alive():
    f = counted(loss)
    ferrule.grad(f)(X, W)
    ref = weakref.ref(f)
    del f
    gc.collect()
    assert ref() is None


def test_vjp_has_aux_returns_the_aux_output():
    def f(x, w):
        y = fnp.tanh(x * w)
        return y, fnp.sum(y * y)                    # (output, aux)

    def step(x, w, ct):
        out, pb, aux = ferrule.vjp(f, x, w, has_aux=True)
        return out, aux, *pb(ct)

    ct = np.ones_like(X)
    out, aux, dx, dw = ferrule.jit(step)(X, W, ct)
    y = np.tanh(X * W)
    np.testing.assert_allclose(out, y)
    np.testing.assert_allclose(aux, (y * y).sum())
    np.testing.assert_allclose(dx, (1 - y ** 2) * W)   # aux is not differentiated
    np.testing.assert_allclose(dw, (1 - y ** 2) * X)
    out2, pb2, aux2 = ferrule.vjp(f, X, W, has_aux=True)   # outside jit
    np.testing.assert_allclose(out2, out)
    np.testing.assert_allclose(aux2, aux)
    for a, b in zip(pb2(ct), (dx, dw)):
        np.testing.assert_allclose(a, b)


def test_vjp_has_aux_needs_a_pair():
    with pytest.raises(TracingError, match="has_aux=True needs f to return"):
        ferrule.jit(lambda x: ferrule.vjp(lambda x: x * 2.0, x, has_aux=True)[0])(X)
