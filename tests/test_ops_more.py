"""numpy's other float ufuncs (ferrule.mathops) and the newer activations
of ferrule.nn, each against numpy and its derivatives against finite
differences.

Per op, on a domain away from its singularities and jumps:
  * forward: float32 and float64 in one compiled call, against numpy in
    float64 cast to the dtype (numpy's ops are libm's: tolerances of 2-4 ulp);
  * derivatives, float64, one compiled call giving grad, jvp, vjp and the
    Hessian-vector product ``jvp(grad)``: grad against central differences
    of numpy's own function, the jvp/vjp dot-product identity, and the
    second order against central differences of the compiled grad.
Conventions at kinks and NaNs (docs/ops.md) are checked at the end.
"""

import math

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule import nn

F32_TOL = dict(rtol=4e-6, atol=1e-6)
F64_TOL = dict(rtol=1e-13, atol=1e-14)


def _dom(kind, rng, n=12):
    """Inputs from an op's domain (away from singularities and jumps)."""
    if kind == "normal":
        return rng.standard_normal(n) * 1.5
    if kind == "unit":
        return rng.uniform(-0.9, 0.9, n)
    if kind == "gt1":
        return rng.uniform(1.1, 4.0, n)
    if kind == "pos":
        return rng.uniform(0.1, 3.0, n)
    if kind == "tan":
        return rng.uniform(-1.3, 1.3, n)
    if kind == "nonzero":
        return rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 2.0, n)
    if kind == "offint":     # at least 0.05 from an integer (and a half)
        return np.floor(rng.uniform(-4, 4, n)) + rng.choice([0.2, 0.35, 0.65, 0.8], n)
    raise ValueError(kind)


def _erf(x):
    return np.vectorize(math.erf)(x)


def _np_gelu(x):
    return 0.5 * x * (1 + _erf(x / np.sqrt(2)))


def _np_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def _np_silu(x):
    return x / (1 + np.exp(-x))


# name: (ferrule function, numpy reference, domains, differentiable)
OPS = {
    "tan": (fnp.tan, np.tan, ("tan",), True),
    "arcsin": (fnp.arcsin, np.arcsin, ("unit",), True),
    "arccos": (fnp.arccos, np.arccos, ("unit",), True),
    "arctan": (fnp.arctan, np.arctan, ("normal",), True),
    "sinh": (fnp.sinh, np.sinh, ("normal",), True),
    "cosh": (fnp.cosh, np.cosh, ("normal",), True),
    "arcsinh": (fnp.arcsinh, np.arcsinh, ("normal",), True),
    "arccosh": (fnp.arccosh, np.arccosh, ("gt1",), True),
    "arctanh": (fnp.arctanh, np.arctanh, ("unit",), True),
    "exp2": (fnp.exp2, np.exp2, ("normal",), True),
    "log2": (fnp.log2, np.log2, ("pos",), True),
    "log10": (fnp.log10, np.log10, ("pos",), True),
    "floor": (fnp.floor, np.floor, ("offint",), True),
    "ceil": (fnp.ceil, np.ceil, ("offint",), True),
    "trunc": (fnp.trunc, np.trunc, ("offint",), True),
    "rint": (fnp.rint, np.rint, ("offint",), True),
    "round": (fnp.round, np.round, ("offint",), True),
    "round_1": (lambda x: fnp.round(x * 3.0, 1), lambda x: np.round(x * 3.0, 1),
                ("normal",), False),
    "sign": (fnp.sign, np.sign, ("nonzero",), True),
    "sinc": (fnp.sinc, np.sinc, ("normal",), True),
    "reciprocal": (fnp.reciprocal, np.reciprocal, ("nonzero",), True),
    "deg2rad": (fnp.deg2rad, np.deg2rad, ("normal",), True),
    "rad2deg": (fnp.rad2deg, np.rad2deg, ("normal",), True),
    "arctan2": (fnp.arctan2, np.arctan2, ("normal", "nonzero"), True),
    "hypot": (fnp.hypot, np.hypot, ("normal", "nonzero"), True),
    "logaddexp": (fnp.logaddexp, np.logaddexp, ("normal", "normal"), True),
    "logaddexp2": (fnp.logaddexp2, np.logaddexp2, ("normal", "normal"), True),
    "fmod": (lambda x, y: fnp.fmod(x * 3.0, y), lambda x, y: np.fmod(x * 3.0, y),
             ("offint", "nonzero"), True),
    "remainder": (lambda x, y: (x * 3.0) % y, lambda x, y: (x * 3.0) % y,
                  ("offint", "nonzero"), True),
    "mod": (lambda x, y: fnp.mod(x * 3.0, y), lambda x, y: np.mod(x * 3.0, y),
            ("offint", "nonzero"), False),
    "floor_divide": (lambda x, y: (x * 3.0) // y, lambda x, y: (x * 3.0) // y,
                     ("offint", "nonzero"), False),
    "fmax": (fnp.fmax, np.fmax, ("normal", "normal"), True),
    "fmin": (fnp.fmin, np.fmin, ("normal", "normal"), True),
    "gelu": (nn.gelu, _np_gelu, ("normal",), True),
    "gelu_tanh": (lambda x: nn.gelu(x, approximate="tanh"), _np_gelu_tanh, ("normal",), True),
    "silu": (nn.silu, _np_silu, ("normal",), True),
    "leaky_relu": (nn.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), ("nonzero",), True),
    "leaky_relu_0.2": (lambda x: nn.leaky_relu(x, negative_slope=0.2),
                       lambda x: np.where(x > 0, x, 0.2 * x), ("nonzero",), False),
    "elu": (nn.elu, lambda x: np.where(x > 0, x, np.expm1(x)), ("nonzero",), True),
    "elu_2": (lambda x: nn.elu(x, alpha=2.0), lambda x: np.where(x > 0, x, 2 * np.expm1(x)),
              ("nonzero",), True),
}


def _inputs(name, seed=0):
    rng = np.random.default_rng(seed)
    return [_dom(d, rng) for d in OPS[name][2]]


@pytest.mark.parametrize("name", OPS)
def test_forward_f32_and_f64(name):
    f, ref, _, _ = OPS[name]
    xs = _inputs(name)
    n = len(xs)
    both = ferrule.jit(lambda *a: (f(*a[:n]), f(*a[n:])))
    x32 = [x.astype(np.float32) for x in xs]
    got32, got64 = both(*x32, *xs)
    with np.errstate(all="ignore"):
        want = ref(*xs)
    assert got32.dtype == np.float32 and got64.dtype == np.float64
    np.testing.assert_allclose(got64, want, **F64_TOL)
    np.testing.assert_allclose(got32, ref(*[x.astype(np.float64) for x in x32]), **F32_TOL)


def _derivatives(f, n):
    """One compiled function: (grad of sum f, jvp, vjp, jvp of grad) at xs."""
    argnums = tuple(range(n))
    g = ferrule.grad(lambda *xs: fnp.sum(f(*xs)), argnums=argnums)

    def all_of(*a):
        xs, ts, ct = a[:n], a[n:2 * n], a[2 * n]
        _, jv = ferrule.jvp(f, xs, ts)
        _, pullback = ferrule.vjp(f, *xs)
        _, hv = ferrule.jvp(lambda *x: g(*x), xs, ts)
        return g(*xs), jv, pullback(ct), hv
    return ferrule.jit(all_of)


@pytest.mark.parametrize("name", [n for n, v in OPS.items() if v[3]])
def test_derivatives_f64(name):
    f, ref, _, _ = OPS[name]
    xs = _inputs(name)
    n = len(xs)
    rng = np.random.default_rng(1)
    ts = [rng.standard_normal(x.shape) for x in xs]
    ct = rng.standard_normal(xs[0].shape)
    d = _derivatives(f, n)
    grad, jv, vj, hv = d(*xs, *ts, ct)

    # grad against central differences of numpy (elementwise: one pass per operand)
    eps = 1e-6
    for k in range(n):
        up = [x + eps * (i == k) for i, x in enumerate(xs)]
        dn = [x - eps * (i == k) for i, x in enumerate(xs)]
        fd = (ref(*up) - ref(*dn)) / (2 * eps)
        np.testing.assert_allclose(grad[k], fd, rtol=1e-6, atol=1e-7, err_msg=f"∂{k}")
    # jvp / vjp: <J t, c> = <t, Jᵀ c>
    lhs = np.sum(jv * ct)
    rhs = sum(np.sum(t * v) for t, v in zip(ts, vj))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12)
    # the Hessian-vector product against central differences of the grad
    h = 1e-5
    gp = d(*[x + h * t for x, t in zip(xs, ts)], *ts, ct)[0]
    gm = d(*[x - h * t for x, t in zip(xs, ts)], *ts, ct)[0]
    for k in range(n):
        np.testing.assert_allclose(hv[k], (gp[k] - gm[k]) / (2 * h), rtol=1e-5, atol=1e-6,
                                   err_msg=f"H·t, operand {k}")


def test_numpy_dispatch_on_traced_arrays():
    """np.<ufunc>(tracer) and np.<function>(tracer) reach the ferrule ops."""
    x = np.linspace(-0.9, 0.9, 7)
    f = ferrule.jit(lambda x: (np.arctan(x), np.arctan2(x, 2.0), np.round(x, 1), np.sinc(x),
                               np.hypot(x, x), np.logaddexp(x, 0.5), np.fmax(x, 0.0),
                               np.mod(x, 0.3), x.round(1)))
    got = f(x)
    want = (np.arctan(x), np.arctan2(x, 2.0), np.round(x, 1), np.sinc(x), np.hypot(x, x),
            np.logaddexp(x, 0.5), np.fmax(x, 0.0), np.mod(x, 0.3), x.round(1))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-15)


# -- special values and conventions -------------------------------------------------

def test_special_values_as_numpy():
    inf, nan = np.inf, np.nan
    a = np.array([0.0, -0.0, inf, -inf, nan, 1.0, -inf, inf, 2.5, -2.5, 3.5, 0.0])
    b = np.array([0.0, 1.0, nan, -inf, 1.0, nan, -inf, inf, 0.0, 2.0, -2.0, -3.0])
    f = ferrule.jit(lambda a, b: (fnp.hypot(a, b), fnp.logaddexp(a, b), fnp.logaddexp2(a, b),
                                  fnp.fmax(a, b), fnp.fmin(a, b), fnp.sign(a), fnp.round(a),
                                  fnp.floor(a), fnp.ceil(a), fnp.sinc(a), fnp.fmod(a, b),
                                  a % b, a // b, fnp.arctan2(a, b)))
    with np.errstate(all="ignore"):
        want = (np.hypot(a, b), np.logaddexp(a, b), np.logaddexp2(a, b), np.fmax(a, b),
                np.fmin(a, b), np.sign(a), np.round(a), np.floor(a), np.ceil(a), np.sinc(a),
                np.fmod(a, b), a % b, a // b, np.arctan2(a, b))
    names = ["hypot", "logaddexp", "logaddexp2", "fmax", "fmin", "sign", "round", "floor",
             "ceil", "sinc", "fmod", "%", "//", "arctan2"]
    for name, g, w in zip(names, f(a, b), want):
        np.testing.assert_allclose(g, w, rtol=4e-16, atol=0, err_msg=name)


def _grad(f, x):
    return ferrule.grad(lambda x: fnp.sum(f(x)))(np.asarray(x, np.float64))


def test_conventions_at_kinks_and_nans():
    z = np.array([0.0, 1.0, -2.0, 2.5, np.nan])
    np.testing.assert_array_equal(_grad(fnp.sign, z), [0, 0, 0, 0, np.nan])
    for op in (fnp.floor, fnp.ceil, fnp.round, fnp.trunc, fnp.rint):
        np.testing.assert_array_equal(_grad(op, z), [0, 0, 0, 0, np.nan])
    # ties: ½ each, as maximum
    x = np.array([1.0, 2.0, np.nan])
    gx, gy = ferrule.grad(lambda x, y: fnp.sum(fnp.fmax(x, y)), argnums=(0, 1))(
        x, np.array([1.0, np.nan, 3.0]))
    np.testing.assert_array_equal(gx, [0.5, 1.0, 0.0])   # a NaN operand is ignored
    np.testing.assert_array_equal(gy, [0.5, 0.0, 1.0])
    gx, gy = ferrule.grad(lambda x, y: fnp.sum(fnp.logaddexp(x, y)), argnums=(0, 1))(
        np.array([0.5, -np.inf]), np.array([0.5, 0.0]))
    np.testing.assert_allclose(gx, [0.5, 0.0])
    np.testing.assert_allclose(gy, [0.5, 1.0])
    # hypot at the origin: 0
    np.testing.assert_array_equal(
        ferrule.grad(lambda x: fnp.sum(fnp.hypot(x, 0.0 * x)))(np.zeros(2)), [0.0, 0.0])
    # leaky_relu and elu at 0 (and NaN)
    np.testing.assert_allclose(_grad(nn.leaky_relu, [0.0, np.nan, 1.0]), [0.01, np.nan, 1.0])
    np.testing.assert_allclose(_grad(lambda x: nn.elu(x, 2.0), [0.0, np.nan, 1.0]),
                               [2.0, np.nan, 1.0])


def test_sinc_at_zero_to_second_order():
    x = np.zeros(3)
    d1 = lambda x: ferrule.grad(lambda x: fnp.sum(fnp.sinc(x)))(x)
    np.testing.assert_allclose(ferrule.jit(fnp.sinc)(x), 1.0)
    np.testing.assert_allclose(d1(x), 0.0, atol=1e-15)
    hv = ferrule.jvp(d1, (x,), (np.ones(3),))[1]
    np.testing.assert_allclose(hv, -np.pi ** 2 / 3, rtol=1e-12)


def test_float_remainder_gradient_wrt_divisor_is_minus_floor():
    x, y = np.array([7.3, -7.3, 7.3]), np.array([2.0, 2.0, -2.0])
    gy = ferrule.grad(lambda x, y: fnp.sum(x % y), argnums=1)(x, y)
    np.testing.assert_array_equal(gy, -np.floor(x / y))


def test_integer_operands():
    i = np.array([-3, 0, 2], np.int32)
    f = ferrule.jit(lambda i: (fnp.sign(i), fnp.floor(i), fnp.round(i), i % 2, fnp.tan(i)))
    s, fl, r, m, t = f(i)
    np.testing.assert_array_equal(s, np.sign(i))
    assert s.dtype == fl.dtype == r.dtype == np.int32
    np.testing.assert_array_equal(fl, i)
    np.testing.assert_array_equal(m, i % 2)
    assert t.dtype == np.float32   # float ops on integers: float32, as JAX
    with pytest.raises(TypeError, match="reciprocal"):
        ferrule.jit(fnp.reciprocal)(i)


# -- softmax / log_softmax: axis and second order --------------------------------------

@pytest.mark.parametrize("fn", [nn.softmax, nn.log_softmax], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_axis_and_second_order(fn, axis):
    rng = np.random.default_rng(0)
    x, t, w = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    sm = e / e.sum(axis=axis, keepdims=True)
    want = sm if fn is nn.softmax else np.log(sm)
    np.testing.assert_allclose(ferrule.jit(lambda x: fn(x, axis=axis))(x), want, rtol=1e-13)
    loss = lambda x: fnp.sum(fn(x, axis=axis) * w)
    g = ferrule.jit(ferrule.grad(loss))
    hv = ferrule.jvp(ferrule.grad(loss), (x,), (t,))[1]
    h = 1e-5
    np.testing.assert_allclose(hv, (g(x + h * t) - g(x - h * t)) / (2 * h), rtol=1e-6,
                               atol=1e-8)


# -- reductions: var, std, all, any, mean of a list ----------------------------------------

STATS = [  # (axis, ddof, keepdims)
    (None, 0, False), ((0, 2), 1, False), (-1, 2, True)]


@pytest.mark.parametrize("axis,ddof,keepdims", STATS, ids=str)
def test_var_std(axis, ddof, keepdims):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5)) + 3.0
    t = rng.standard_normal(x.shape)
    kw = dict(axis=axis, ddof=ddof, keepdims=keepdims)
    f = lambda m, x: (m.var(x, **kw), m.std(x, **kw))
    g32, g64 = ferrule.jit(lambda a, b: (f(fnp, a), f(fnp, b)))(x.astype(np.float32), x)
    for got, want in zip(g64, f(np, x)):
        np.testing.assert_allclose(got, want, rtol=1e-13)
    for got, want in zip(g32, f(np, x.astype(np.float32).astype(np.float64))):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=2e-5)
    # derivatives (float64): grad vs finite differences, dot product, jvp(grad)
    loss = lambda x: fnp.sum(fnp.var(x, **kw) * 0.7 + fnp.std(x, **kw))
    np_loss = lambda x: np.sum(np.var(x, **kw) * 0.7 + np.std(x, **kw))
    gl = ferrule.jit(ferrule.grad(loss))
    gr = gl(x)
    eps = 1e-6
    idx = [(0, 0, 0), (1, 2, 3), (2, 3, 4)]
    for i in idx:
        e = np.zeros_like(x)
        e[i] = eps
        np.testing.assert_allclose(gr[i], (np_loss(x + e) - np_loss(x - e)) / (2 * eps),
                                   rtol=1e-6)
    fs = lambda x: fnp.std(x, **kw)
    out, jv = ferrule.jvp(fs, (x,), (t,))
    ct = rng.standard_normal(np.shape(out))
    (vj,) = ferrule.vjp(fs, x)[1](ct)
    np.testing.assert_allclose(np.sum(jv * ct), np.sum(t * vj), rtol=1e-12)
    hv = ferrule.jvp(ferrule.grad(loss), (x,), (t,))[1]
    h = 1e-5
    np.testing.assert_allclose(hv, (gl(x + h * t) - gl(x - h * t)) / (2 * h), rtol=1e-5,
                               atol=1e-7)


def test_all_any_and_mean_of_a_list():
    x = np.array([[0.0, 1.0, np.nan], [2.0, 3.0, 4.0]])
    b = x > 1.0
    f = ferrule.jit(lambda x, b: (fnp.all(x), fnp.any(x, axis=0), fnp.all(x, axis=1),
                                  fnp.any(b, axis=1, keepdims=True), np.all(b), b.any(),
                                  fnp.mean([x, x * 2.0, x + 1.0], axis=0)))
    want = (np.all(x), np.any(x, axis=0), np.all(x, axis=1), np.any(b, axis=1, keepdims=True),
            np.all(b), b.any(), np.mean([x, x * 2.0, x + 1.0], axis=0))
    for g, w in zip(f(x, b), want):
        assert np.asarray(g).dtype == np.asarray(w).dtype
        np.testing.assert_allclose(g, w, rtol=1e-15)
    # bool results carry no derivative: the cotangent of x is the where's alone
    g = ferrule.grad(lambda x: fnp.sum(fnp.where(fnp.any(x > 0.0, axis=1, keepdims=True),
                                                  x * x, 0.0)))(np.array([[1.0, -1.0],
                                                                          [-2.0, -3.0]]))
    np.testing.assert_array_equal(g, [[2.0, -2.0], [0.0, 0.0]])


# -- prod, cumsum, cumprod (loops along the axis) --------------------------------------

LOOPS = {   # each compiles a scan and its derivatives to second order: a few cases
    "prod_axes_keep": lambda m, x: m.prod(x, axis=(0, 1), keepdims=True),
    "cumsum": lambda m, x: m.cumsum(x),
    "cumprod_method": lambda m, x: x.cumprod(1),
}


@pytest.mark.parametrize("name", LOOPS)
def test_prod_cumsum_cumprod(name):
    op = LOOPS[name]
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.5, (3, 4)) * rng.choice([-1.0, 1.0], (3, 4))
    x[1, 2] = 0.0                       # derivatives at a zero need no division
    f = lambda x: op(fnp, x)
    g32, g64 = ferrule.jit(lambda a, b: (f(a), f(b)))(x.astype(np.float32), x)
    np.testing.assert_allclose(g64, op(np, x), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(g32, op(np, x.astype(np.float32)), rtol=1e-6, atol=1e-7)
    assert g32.dtype == np.float32
    w = rng.standard_normal(np.shape(op(np, x)))
    loss = lambda x: fnp.sum(f(x) * w)
    gl = ferrule.jit(ferrule.grad(loss))
    gr = gl(x)
    eps = 1e-6
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        fd = (np.sum(op(np, x + e) * w) - np.sum(op(np, x - e) * w)) / (2 * eps)
        np.testing.assert_allclose(gr[i], fd, rtol=1e-6, atol=1e-8)
    t = rng.standard_normal(x.shape)
    _, jv = ferrule.jvp(f, (x,), (t,))
    (vj,) = ferrule.vjp(f, x)[1](w)
    np.testing.assert_allclose(np.sum(jv * w), np.sum(t * vj), rtol=1e-12, atol=1e-12)
    hv = ferrule.jvp(ferrule.grad(loss), (x,), (t,))[1]
    h = 1e-5
    np.testing.assert_allclose(hv, (gl(x + h * t) - gl(x - h * t)) / (2 * h), rtol=1e-5,
                               atol=1e-7)


def test_prod_cumsum_more_axes_and_integers():
    x = np.random.default_rng(0).standard_normal((2, 3, 2))
    f = lambda m, x: (m.prod(x), m.prod(x, axis=1), m.cumsum(x, axis=-1), m.cumprod(x, axis=0),
                      m.prod(x[:, :0], axis=1), m.cumsum(x[:0]))
    for g, w in zip(ferrule.jit(lambda x: f(fnp, x))(x), f(np, x)):
        np.testing.assert_allclose(g, w, rtol=1e-14)
        assert g.shape == w.shape
    i = np.array([[1, 2], [3, 4]], np.int32)
    p, c = ferrule.jit(lambda i: (fnp.prod(i, axis=0), fnp.cumsum(i)))(i)
    assert p.dtype == c.dtype == np.int64
    np.testing.assert_array_equal(p, np.prod(i, axis=0))
    np.testing.assert_array_equal(c, np.cumsum(i))
