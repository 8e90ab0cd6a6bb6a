"""``x.at[idx].add/set/get`` on traced arrays (frontend/at.py): against numpy
(``np.add.at``, assignment), repeated indices, traced indices, derivatives
against central finite differences, the dot-product test, and jvp(grad)."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.errors import DTypeError, UnsupportedOperationError

X = np.random.default_rng(0).standard_normal((5, 3))
IDX = np.array([0, 3, 3, -1])


def _np_add(x, idx, v):
    out = x.copy()
    np.add.at(out, idx, v)
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_add_set_get_match_numpy(dtype):
    x = X.astype(dtype)
    v = np.arange(12.0).reshape(4, 3).astype(dtype)
    got = ferrule.jit(lambda a, b: a.at[IDX].add(b))(x, v)
    np.testing.assert_allclose(got, _np_add(x, IDX, v), rtol=1e-6)
    uniq = np.array([4, 0, 2])
    want = x.copy()
    want[uniq] = v[:3]
    np.testing.assert_allclose(ferrule.jit(lambda a, b: a.at[uniq].set(b))(x, v[:3]), want)
    want = x.copy()
    want[1:4] = 0.5
    np.testing.assert_allclose(ferrule.jit(lambda a: a.at[1:4].set(0.5))(x), want)
    want = x.copy()
    want[2] += v[0]
    np.testing.assert_allclose(ferrule.jit(lambda a, b: a.at[2].add(b[0]))(x, v), want,
                               rtol=1e-6)
    np.testing.assert_array_equal(ferrule.jit(lambda a: a.at[IDX].get())(x), x[IDX])
    assert got.dtype == dtype


def test_set_with_repeated_indices_takes_the_mean_and_traced_indices_work():
    v = np.stack([np.full(3, 1.0), np.full(3, 2.0), np.full(3, 6.0), np.full(3, 9.0)])
    got = ferrule.jit(lambda a, b: a.at[IDX].set(b))(X, v)
    want = X.copy()
    want[0], want[3], want[4] = 1.0, 4.0, 9.0       # row 3 set twice: mean of 2 and 6
    np.testing.assert_allclose(got, want)
    j = np.array([4, -5], np.int32)                # traced: -5 wraps to 0
    got = ferrule.jit(lambda a, k: a.at[k].add(1.0))(X, j)
    np.testing.assert_allclose(got, _np_add(X, j, 1.0))


@pytest.mark.parametrize("how", ["add", "set"])
def test_derivatives(how):
    rng = np.random.default_rng(1)
    v = rng.standard_normal((4, 3))
    w = rng.standard_normal(X.shape)
    f = (lambda a, b: a.at[IDX].add(b)) if how == "add" else (lambda a, b: a.at[IDX].set(b * b))
    L = lambda a, b: fnp.sum(fnp.tanh(f(a, b)) * w)                    # noqa: E731
    gl = ferrule.jit(ferrule.grad(L, argnums=(0, 1)))
    Lj = ferrule.jit(L)        # numpy arrays have no .at: the loss runs traced too
    g = gl(X, v)
    dx, dv = rng.standard_normal(X.shape), rng.standard_normal(v.shape)
    eps = 1e-6
    fd = (Lj(X + eps * dx, v + eps * dv) - Lj(X - eps * dx, v - eps * dv)) / (2 * eps)
    assert np.sum(g[0] * dx) + np.sum(g[1] * dv) == pytest.approx(fd, rel=1e-6)
    _, jv = ferrule.jvp(f, (X, v), (dx, dv))
    _, pb = ferrule.vjp(f, X, v)
    tx, tv = pb(w)
    assert np.sum(jv * w) == pytest.approx(np.sum(tx * dx) + np.sum(tv * dv), rel=1e-12)
    hv = ferrule.jit(lambda a, b, c, d: ferrule.jvp(ferrule.grad(L, argnums=(0, 1)),
                                                    (a, b), (c, d))[1])(X, v, dx, dv)
    gp, gm = gl(X + eps * dx, v + eps * dv), gl(X - eps * dx, v - eps * dv)
    for h, p, m in zip(hv, gp, gm):
        np.testing.assert_allclose(h, (p - m) / (2 * eps), rtol=1e-5, atol=1e-7)


def test_errors_name_the_problem_and_the_line():
    with pytest.raises(UnsupportedOperationError, match=r"test_at.py:\d+: x.at\[...\] with a tuple"):
        ferrule.jit(lambda a: a.at[0, 1].set(1.0))(X)
    with pytest.raises(UnsupportedOperationError, match=r"x.at\[...\].multiply is not supported"):
        ferrule.jit(lambda a: a.at[0].multiply(2.0))(X)
    with pytest.raises(DTypeError, match="updates float arrays"):
        ferrule.jit(lambda a: a.at[0].set(1))(np.arange(3))
