"""sort and argsort (frontend/sorting.py): numpy's results (stable order,
NaNs last) for floats, ints and bools along each axis, and sort's
derivative — the permutation's — against central finite differences, the
dot-product test and jvp(grad)."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.errors import UnsupportedOperationError


def _data(dtype):
    rng = np.random.default_rng(0)
    if dtype == np.int32:
        return rng.integers(-3, 4, (4, 6)).astype(dtype)           # many ties
    if dtype == np.bool_:
        return rng.integers(0, 2, (4, 6)).astype(bool)
    x = rng.standard_normal((4, 6)).astype(dtype)
    x[1, 2] = x[3, 0] = np.nan
    x[2, 1] = x[2, 4]
    x[0, 0] = -np.inf
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.bool_])
@pytest.mark.parametrize("axis", [-1, 0, None])
def test_sort_and_argsort_match_numpy(dtype, axis):
    x = _data(dtype)
    got = ferrule.jit(lambda a: fnp.sort(a, axis=axis))(x)
    want = np.sort(x, axis=axis, kind="stable")
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype
    order = ferrule.jit(lambda a: np.argsort(a, axis=axis, kind="stable"))(x)
    np.testing.assert_array_equal(order, np.argsort(x, axis=axis, kind="stable"))


def test_argsort_method_and_explain_lists_no_constants():
    x = _data(np.float64)
    np.testing.assert_array_equal(ferrule.jit(lambda a: a.argsort(axis=0))(x),
                                  np.argsort(x, axis=0, kind="stable"))
    assert "captured" not in ferrule.jit(fnp.sort).lower(x).explain().lower()


def test_sort_derivatives_are_the_permutation():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5))
    w, v = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    f = lambda a: fnp.sort(a, axis=1)                                # noqa: E731
    L = lambda a: fnp.sum(fnp.tanh(f(a)) * w)                        # noqa: E731
    gl = ferrule.jit(ferrule.grad(L))
    eps = 1e-6
    fd = (L(x + eps * v) - L(x - eps * v)) / (2 * eps)
    assert np.sum(gl(x) * v) == pytest.approx(fd, rel=1e-7)
    _, jv = ferrule.jvp(f, (x,), (v,))
    (jtw,) = ferrule.vjp(f, x)[1](w)
    assert np.sum(jv * w) == pytest.approx(np.sum(v * jtw), rel=1e-12)
    perm = np.argsort(x, axis=1)
    np.testing.assert_array_equal(jv, np.take_along_axis(v, perm, axis=1))
    hv = ferrule.jit(lambda a, t: ferrule.jvp(ferrule.grad(L), (a,), (t,))[1])(x, v)
    np.testing.assert_allclose(hv, (gl(x + eps * v) - gl(x - eps * v)) / (2 * eps),
                               rtol=1e-5, atol=1e-8)


def test_order_keyword_is_a_clear_error():
    with pytest.raises(UnsupportedOperationError, match=r"test_sorting.py:\d+: sort with order="):
        ferrule.jit(lambda a: fnp.sort(a, order="x"))(np.ones(3))
