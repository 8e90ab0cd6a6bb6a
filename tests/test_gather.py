"""Gathers: take, integer-array indexing and take_along_axis (ad.gather),
their scatter-add reverse rule (ad.scatter_add) and forward rule, checked
against numpy, finite differences (float64), the dot-product test, and at
second order."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp

RNG = np.random.default_rng(0)
A = RNG.standard_normal((5, 4, 3))
I2 = np.array([[0, 4, 4], [-1, 2, 0]], np.int32)          # repeats and a negative index
J = np.array([3, 0, 3, 1], np.int64)

# (id, ferrule/numpy function of (a, i, j)); the indices are traced arguments
INDEXING = [
    ("a[i]", lambda a, i, j: a[i]),
    ("a[:, j]", lambda a, i, j: a[:, j]),
    ("a[..., j % 3]", lambda a, i, j: a[..., j % 3]),
    ("a[1:, j, ::2]", lambda a, i, j: a[1:, j, ::2]),
    ("a[i, j[:3]]", lambda a, i, j: a[i, j[:3]]),            # two arrays, broadcast
    ("a[2, :, j[:2] % 3]", lambda a, i, j: a[2, :, j[:2] % 3]),  # non-adjacent: broadcast dims first
    ("a[:, 1, j % 3]", lambda a, i, j: a[:, 1, j % 3]),       # adjacent int and array
    ("a[[0, 3]]", lambda a, i, j: a[[0, 3]]),                 # static list
    ("a[np_array]", lambda a, i, j: a[:, np.array([[1, -1]])]),
    ("take axis=None", lambda a, i, j: fnp.take(a, i)),
    ("take axis=1", lambda a, i, j: fnp.take(a, j, axis=1)),
    ("take axis=-1", lambda a, i, j: fnp.take(a, i % 3, axis=-1)),
    ("take scalar", lambda a, i, j: fnp.take(a, i[0, 1], axis=0)),
    ("take_along_axis 0", lambda a, i, j: fnp.take_along_axis(a, (j % 5)[:, None, None], 0)),
    ("take_along_axis -1", lambda a, i, j: fnp.take_along_axis(
        a, (abs(i[:1, :2]) % 3).reshape(1, 1, 2), -1)),   # indices broadcast against a
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("f", [c[1] for c in INDEXING], ids=[c[0] for c in INDEXING])
def test_values_against_numpy(f, dtype):
    a = A.astype(dtype)
    got = ferrule.jit(f)(a, I2, J)
    want = f(a, I2, J)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_integer_and_bool_tables_and_uint32_indices():
    t = np.arange(12, dtype=np.int64).reshape(4, 3)
    u = np.array([3, 0], np.uint32)
    got = ferrule.jit(lambda t, u: (t[u], t > 4, (t > 4)[u], fnp.take(t, u, axis=1)))(t, u)
    want = (t[u], t > 4, (t > 4)[u], np.take(t, np.minimum(u, 2), axis=1))
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def test_traced_out_of_range_indices_clamp():
    """Compiled code cannot raise: a traced index wraps once when negative,
    then clamps to the axis (documented, as JAX's clamping)."""
    x = np.arange(5.0)
    i = np.array([-1, -5, -6, -100, 4, 5, 99], np.int32)
    np.testing.assert_array_equal(ferrule.jit(lambda x, i: x[i])(x, i), [4, 0, 0, 0, 4, 4, 4])
    g = ferrule.grad(lambda x, i: fnp.sum(x[i]))(x, i)
    np.testing.assert_array_equal(g, [3, 0, 0, 0, 4])    # the clamped element gets it
    with pytest.raises(IndexError, match="index 5 is out of bounds for axis 0 with size 5"):
        ferrule.jit(lambda x: x[np.array([5])])(x)        # static indices are checked


def _fd(f, args, k, eps=1e-6):
    g = np.zeros_like(args[k])
    for idx in np.ndindex(g.shape):
        ap, am = list(args), list(args)
        ap[k], am[k] = args[k].copy(), args[k].copy()
        ap[k][idx] += eps
        am[k][idx] -= eps
        g[idx] = (f(*ap) - f(*am)) / (2 * eps)
    return g


@pytest.mark.parametrize("f", [c[1] for c in INDEXING], ids=[c[0] for c in INDEXING])
def test_gradient_finite_differences_and_dot_product(f):
    W = RNG.standard_normal(np.shape(f(A, I2, J)))

    def loss(a, i, j):
        return fnp.sum(fnp.sin(f(a, i, j)) * W)

    g = ferrule.grad(loss)(A, I2, J)
    np.testing.assert_allclose(g, _fd(ferrule.jit(loss), [A, I2, J], 0), rtol=1e-7, atol=1e-8)
    # dot-product test: <J t, c> == <t, J^T c>
    t = RNG.standard_normal(A.shape)
    out, tout = ferrule.jvp(lambda a: f(a, I2, J), (A,), (t,))
    c = RNG.standard_normal(out.shape)
    _, pb = ferrule.vjp(lambda a: f(a, I2, J), A)
    assert np.sum(tout * c) == pytest.approx(np.sum(t * pb(c)[0]), rel=1e-12)


def test_scatter_add_accumulates_repeated_indices():
    E = RNG.standard_normal((6, 2))
    idx = np.array([[2, 2], [2, 5]], np.int32)
    g = ferrule.grad(lambda E, i: fnp.sum(E[i] * np.arange(8.0).reshape(2, 2, 2)))(E, idx)
    want = np.zeros_like(E)
    np.add.at(want, idx, np.arange(8.0).reshape(2, 2, 2))
    np.testing.assert_array_equal(g, want)


def test_second_order_grad_of_grad_and_jvp_of_grad():
    """The rules emit gathers and scatter-adds, which have rules: second
    order works, and agrees with finite differences of the first order."""
    i = np.array([1, 3, 1, 0], np.int32)

    def f(a):
        return fnp.sum(fnp.exp(fnp.take(a, i, axis=1)) * fnp.take(a, i[::-1], axis=1))

    g = ferrule.jit(ferrule.grad(f))
    t = RNG.standard_normal(A.shape)
    _, hvp = ferrule.jvp(ferrule.grad(f), (A,), (t,))
    eps = 1e-6
    np.testing.assert_allclose(hvp, (g(A + eps * t) - g(A - eps * t)) / (2 * eps),
                               rtol=1e-6, atol=1e-7)
    c = RNG.standard_normal(A.shape)
    gg = ferrule.grad(lambda a: fnp.sum(ferrule.grad(f)(a) * c))(A)
    np.testing.assert_allclose(np.sum(gg * t), np.sum(hvp * c), rtol=1e-10)   # symmetric Hessian


def test_gradient_of_an_embedding_in_float32_row_split():
    """A larger gather (embedding lookup) in float32, through the whole
    CPU pipeline, against numpy's add.at."""
    E = RNG.standard_normal((96, 64)).astype(np.float32)
    toks = RNG.integers(0, 96, (32, 16)).astype(np.int32)
    W = RNG.standard_normal((32, 16, 64)).astype(np.float32)
    v, g = ferrule.jit(ferrule.value_and_grad(lambda E, t: fnp.sum(E[t] * W)))(E, toks)
    want = np.zeros_like(E)
    np.add.at(want, toks, W)
    np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-5)
    assert v == pytest.approx(np.sum(E[toks] * W), rel=1e-5)


def test_take_along_axis_picks_per_row():
    logp = RNG.standard_normal((4, 7))
    y = np.array([[6], [0], [3], [3]])
    f = lambda l, y: fnp.take_along_axis(l, y, axis=1)   # noqa: E731
    np.testing.assert_array_equal(ferrule.jit(f)(logp, y), np.take_along_axis(logp, y, 1))
    g = ferrule.grad(lambda l, y: fnp.sum(f(l, y)))(logp, y)
    want = np.zeros_like(logp)
    want[np.arange(4), y[:, 0]] = 1.0
    np.testing.assert_array_equal(g, want)


def test_errors_name_the_line():
    x = np.ones((3, 4), np.float32)
    with pytest.raises(ferrule.UnsupportedOperationError, match=r"test_gather.py:\d+: x\[mask\] with a traced boolean"):
        ferrule.jit(lambda x: x[x > 0])(x)
    with pytest.raises(ferrule.DTypeError, match=r"test_gather.py:\d+: arrays used as indices must"):
        ferrule.jit(lambda x: fnp.take(x, x[0]))(x)
    with pytest.raises(ferrule.ShapeError, match="could not be broadcast together"):
        ferrule.jit(lambda x: x[np.array([0, 1]), np.array([0, 1, 2])])(x)
    with pytest.raises(ferrule.CompileError, match="gathers .* not supported for target"):
        ferrule.compile(lambda x, i: x[i], x, np.array([0], np.int32), target="cuda:sm_90")
