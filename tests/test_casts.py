"""Casting a traced array (issue 14): ``x.astype(int)``, ``x.astype(float)``,
``x.astype(np.int64)``... work; numpy's scalar types called on a traced
array (``np.int64(x)``, ``np.float32(x)``) cannot return a traced value
and are a ConcretizationError pointing at ``x.astype``.

Float casts are differentiable (forward and reverse checked against float64
finite differences, the dot-product test, and at second order); integer
results are not: their derivative contributes zero (a pullback gives zero
for the float input, a jvp gives ``float0`` tangents for the integer output).
"""

import re

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule import ConcretizationError

RNG = np.random.default_rng(0)
# Away from integers, so that finite differences do not cross a step of int().
X = (RNG.integers(-4, 5, (3, 4)) + RNG.uniform(0.2, 0.8, (3, 4))) * RNG.choice([-1, 1], (3, 4))
W = RNG.standard_normal((3, 4))
DTYPES = [np.float32, np.float64]
CASTS = [int, float, np.int64, np.int32, np.float32, np.float64, "int64", "float64"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("to", CASTS, ids=str)
def test_values_and_dtypes_against_numpy(to, dtype):
    x = X.astype(dtype)
    got = ferrule.jit(lambda a: (a.astype(to), fnp.astype(a * -1.0, to)))(x)
    for g, want in zip(got, (x.astype(to), (x * -1.0).astype(to))):
        assert g.dtype == want.dtype, (g.dtype, want.dtype)
        np.testing.assert_array_equal(g, want)


def _fd(f, x, t, eps):
    return (f(x + eps * t) - f(x - eps * t)) / (2 * eps)


# (id, function of a float64 x, eps and rtol of the finite differences):
# float casts on the derivative's path; integer casts beside it (zero).
FUNCTIONS = [
    ("astype(float)", lambda a: fnp.sin(a.astype(float)), 1e-6, 1e-7),
    ("astype(np.float64)", lambda a: fnp.sin(a.astype(np.float64)) * a, 1e-6, 1e-7),
    # float64 -> float32 -> float64 rounds: a coarser step and tolerance
    ("astype(np.float32)", lambda a: fnp.sin(a.astype(np.float32)).astype(float) * a, 1e-3, 1e-4),
    ("astype(int)", lambda a: a.astype(int) * fnp.sin(a), 1e-6, 1e-7),
    ("astype(np.int64)", lambda a: fnp.exp(a.astype(np.int64) * 0.1) * a ** 2, 1e-6, 1e-7),
    ("astype(np.int32)", lambda a: a.astype(np.int32).astype(float) * fnp.sin(a), 1e-6, 1e-7),
]


@pytest.mark.parametrize("f,eps,rtol", [c[1:] for c in FUNCTIONS], ids=[c[0] for c in FUNCTIONS])
def test_derivatives_finite_differences_dot_product_and_second_order(f, eps, rtol):
    loss = lambda a: fnp.sum(f(a) * W)                       # noqa: E731
    g, L = ferrule.jit(ferrule.grad(loss)), ferrule.jit(loss)
    t = RNG.standard_normal(X.shape)
    assert np.sum(g(X) * t) == pytest.approx(_fd(L, X, t, eps), rel=rtol)
    # dot-product test: <J t, c> == <t, J^T c>
    out, jt = ferrule.jvp(f, (X,), (t,))
    c = RNG.standard_normal(out.shape)
    _, pb = ferrule.vjp(f, X)
    dot_rtol = 1e-12 if rtol < 1e-6 else 1e-6        # a float32 step inside: its rounding
    assert np.sum(jt * c) == pytest.approx(np.sum(t * pb(c)[0]), rel=dot_rtol)
    # second order: jvp of grad against finite differences of grad
    hv = ferrule.jit(lambda a, d: ferrule.jvp(ferrule.grad(loss), (a,), (d,))[1])(X, t)
    np.testing.assert_allclose(hv, _fd(g, X, t, eps), rtol=100 * rtol, atol=100 * rtol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_float_casts_in_both_precisions(dtype):
    """grad through a cast to the other float dtype comes back in the input's dtype."""
    x = X.astype(dtype)
    other = np.float64 if dtype == np.float32 else np.float32
    g = ferrule.grad(lambda a: fnp.sum(fnp.sin(a.astype(other)) * W.astype(other)))(x)
    assert g.dtype == dtype
    np.testing.assert_allclose(g, np.cos(x.astype(other)) * W.astype(other), rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("to", [int, np.int64, np.int32, bool])
def test_integer_results_are_not_differentiable(to, dtype):
    x = X.astype(dtype)
    out, pb = ferrule.vjp(lambda a: a.astype(to), x)
    assert out.dtype == np.dtype(to)
    (gx,) = pb(np.zeros(out.shape, ferrule.float0))
    assert gx.dtype == dtype and not gx.any()
    y, ty = ferrule.jvp(lambda a: a.astype(to), (x,), (np.ones_like(x),))
    np.testing.assert_array_equal(y, x.astype(to))
    assert ty.dtype == ferrule.float0 and ty.shape == x.shape


SCALAR_TYPES = [np.int64, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("shape", [(3,), ()], ids=["1-d", "0-d"])
@pytest.mark.parametrize("ty", SCALAR_TYPES, ids=lambda t: t.__name__)
def test_numpy_scalar_types_on_traced_arrays_point_at_astype(ty, shape):
    """numpy's scalar constructors convert through ``__array__`` (float64
    tries ``__float__`` first), which must return a concrete ndarray: no
    traced value can come back, for 0-d arrays either."""
    name = np.dtype(ty).name
    with pytest.raises(ConcretizationError) as info:
        ferrule.jit(lambda a: ty(a))(np.ones(shape, np.float32))  # E:scalar-type
    msg = str(info.value)
    assert f"numpy.{name}(x)" in msg and f"x.astype(numpy.{name})" in msg, msg
    line = next(k for k, s in enumerate(open(__file__), 1)
                if s.rstrip().endswith("# E:scalar-type"))
    assert re.match(re.escape(f"{__file__}:{line}: "), msg), msg
