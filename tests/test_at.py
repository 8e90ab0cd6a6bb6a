"""``x.at[idx].add/set/get`` on traced arrays (frontend/at.py): against numpy
(``np.add.at``, assignment), repeated indices, traced indices, derivatives
against central finite differences, the dot-product test, and jvp(grad);
tuple indices (several axes, numpy's advanced indexing) and boolean masks."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.errors import (DTypeError, NonConcreteBooleanIndexError, ShapeError,
                            UnsupportedOperationError)
from opcheck import check_derivatives

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


# -- tuple indices (several axes), boolean masks: positions in x.ravel() ------------

X3 = np.random.default_rng(2).standard_normal((4, 5, 3))
I4, J4 = np.array([0, 3, 3, -1]), np.array([1, 4, 4, 0])      # (3, 4) repeats
MASK = X3[..., 0] > 0
TUPLES = [
    ("[0, 1]", (0, 1)),
    ("[i, j]", (I4, J4)),
    ("[i, 2]", (I4, 2)),
    ("[1:3, j]", (slice(1, 3), J4)),
    ("[i, :, 1]", (I4, slice(None), 1)),                 # non-adjacent: broadcast dims first
    ("[2, :, arr]", (2, slice(None), np.array([0, 2]))),
    ("[i[:, None], j]", (I4[:, None], J4[None, :])),     # broadcast to (4, 4)
    ("[..., arr]", (Ellipsis, np.array([2, 0]))),
    ("[mask]", MASK),
    ("[1, ::-2, 0]", (1, slice(None, None, -2), 0)),
    ("[:, 1:3]", (slice(None), slice(1, 3))),
]


def _np_set_mean(x, idx, v):
    """x with v written at idx, a position written several times getting the
    mean of its values (at.py's convention)."""
    total, count = np.zeros_like(x), np.zeros_like(x)
    np.add.at(total, idx, v)
    np.add.at(count, idx, np.ones_like(v))
    return np.where(count > 0, total / np.maximum(count, 1), x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("idx", [c[1] for c in TUPLES], ids=[c[0] for c in TUPLES])
def test_tuple_index_add_set_get_match_numpy(idx, dtype):
    x = X3.astype(dtype)
    v = np.random.default_rng(3).standard_normal(x[idx].shape).astype(dtype)
    got = ferrule.jit(lambda a, b: (a.at[idx].add(b), a.at[idx].set(b), a.at[idx].get(),
                                    a.at[idx].set(0.5)))(x, v)
    want = (_np_add(x, idx, v), _np_set_mean(x, idx, v), x[idx], _np_set_mean(x, idx, 0.5))
    for g, w in zip(got, want):
        assert g.dtype == dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("how", ["add", "set", "get"])
@pytest.mark.parametrize("idx", [c[1] for c in TUPLES], ids=[c[0] for c in TUPLES])
def test_tuple_index_derivatives(idx, how):
    """Both ways, in x and in the values, and at second order (tests/opcheck.py)."""
    rng = np.random.default_rng(4)
    v = rng.standard_normal(X3[idx].shape)
    if how == "get":
        check_derivatives(lambda a: a.at[idx].get() ** 2, (X3,), rng)
    elif how == "add":
        check_derivatives(lambda a, b: a.at[idx].add(b * b), (X3, v), rng)
    else:
        check_derivatives(lambda a, b: a.at[idx].set(b * a[idx]), (X3, v), rng)


@pytest.mark.parametrize("idx", [c[1] for c in TUPLES[1:4]], ids=[c[0] for c in TUPLES[1:4]])
def test_tuple_index_gradients_in_float32_agree_with_float64(idx):
    v = np.random.default_rng(5).standard_normal(X3[idx].shape)
    g = ferrule.grad(lambda a, b: fnp.sum(fnp.sin(a.at[idx].set(b * a[idx]))), argnums=(0, 1))
    g32, g64 = g(X3.astype(np.float32), v.astype(np.float32)), g(X3, v)
    for a, b in zip(g32, g64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_tuple_index_with_traced_integer_arrays():
    i = np.array([0, 3, 3, -1], np.int32)
    f = ferrule.jit(lambda a, p, q, b: (a.at[p, q, 1].add(b), a.at[p, :, q % 3].set(2.0)))
    v = np.arange(4.0)
    got = f(X3, i, J4, v)
    np.testing.assert_allclose(got[0], _np_add(X3, (i, J4, 1), v))
    np.testing.assert_allclose(got[1], _np_set_mean(X3, (i, slice(None), J4 % 3), 2.0))
    g = ferrule.grad(lambda b, a, p: fnp.sum(a.at[p, J4].add(b) ** 2), argnums=0)(
        np.ones((4, 3)), X3, i)
    np.testing.assert_allclose(g, 2 * _np_add(X3, (i, J4), np.ones((4, 3)))[i, J4])


def test_errors_name_the_problem_and_the_line():
    with pytest.raises(ShapeError, match=r"test_at.py:\d+: too many indices \(3\) for a 2-d"):
        ferrule.jit(lambda a: a.at[0, 1, 2].set(1.0))(X)
    with pytest.raises(IndexError, match=r"index 5 is out of bounds for axis 1 with size 3"):
        ferrule.jit(lambda a: a.at[0, 5].set(1.0))(X)
    with pytest.raises(ShapeError, match=r"test_at.py:\d+: shape mismatch: indexing arrays"):
        ferrule.jit(lambda a: a.at[np.array([0, 1]), np.array([0, 1, 2])].add(1.0))(X)
    with pytest.raises(ShapeError, match=r"cannot broadcast"):
        ferrule.jit(lambda a: a.at[0, :].set(np.ones(4)))(X)
    with pytest.raises(NonConcreteBooleanIndexError, match=r"test_at.py:\d+: x\[mask\] with a "):
        ferrule.jit(lambda a: a.at[a > 0].set(0.0))(X)
    with pytest.raises(UnsupportedOperationError, match=r"x.at\[...\].multiply is not supported"):
        ferrule.jit(lambda a: a.at[0].multiply(2.0))(X)
    with pytest.raises(DTypeError, match="updates float arrays"):
        ferrule.jit(lambda a: a.at[0].set(1))(np.arange(3))
