"""The forward (non-differentiated) op set under ``ferrule.jit``.

In the style of JAX's lax tests: tables of op specs (name, ferrule function,
numpy reference, input domains) drive parametrized tests over float32 and
float64 and over shapes that broadcast. Every jitted result is compared with
numpy computed in float64 and cast to the dtype numpy itself would return.
jit's own machinery (pytrees, caching, IR shape, memory) is in test_jit.py.
"""

import re
from dataclasses import dataclass
from typing import Callable, Tuple

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule import nn
from opcheck import (ACC_TOL, DTYPES, F32, F64, TOL, _np_sigmoid, alias, both, check, op, op_cases, sample, sid, to64)


# -- unary ops --------------------------------------------------------------------



UNARY = [
    op("neg", lambda m, x: -x),
    alias(op("negative", lambda m, x: m.negative(x))),
    alias(op("pos", lambda m, x: +x)),
    op("exp", lambda m, x: m.exp(x)),
    op("log", lambda m, x: m.log(x), "pos"),
    op("log1p", lambda m, x: m.log1p(x), "gt-1"),
    op("expm1", lambda m, x: m.expm1(x)),
    op("tanh", lambda m, x: m.tanh(x)),
    op("sin", lambda m, x: m.sin(x)),
    op("cos", lambda m, x: m.cos(x)),
    op("sqrt", lambda m, x: m.sqrt(x), "pos"),
    op("abs", lambda m, x: m.abs(x)),
    alias(op("abs_builtin", lambda m, x: abs(x))),
    alias(op("absolute", lambda m, x: m.absolute(x))),
    op("square", lambda m, x: m.square(x)),
    op("pow0", lambda m, x: x ** 0),
    op("pow1", lambda m, x: x ** 1),
    op("pow2", lambda m, x: x ** 2),
    op("pow3", lambda m, x: x ** 3),
    op("pow4_neg_base", lambda m, x: x ** 4),
    op("pow_half", lambda m, x: x ** 0.5, "pos"),
    op("pow_minus1", lambda m, x: x ** -1, "nonzero"),
    op("pow_frac", lambda m, x: x ** 1.7, "pos"),
    alias(op("np_ufunc_exp", lambda m, x: np.exp(x))),        # numpy ufunc on a tracer
    alias(op("np_ufunc_tanh", lambda m, x: np.tanh(x))),
    op("scalar_chain", lambda m, x: 2 * x - 1 + x / 4),  # Python int constants
    op("sigmoid", lambda x: nn.sigmoid(x), ref=_np_sigmoid),
    op("sigmoid_large", lambda x: nn.sigmoid(x * 50), ref=lambda x: _np_sigmoid(x * 50)),
    op("relu", lambda x: nn.relu(x), ref=lambda x: np.maximum(x, 0)),
    op("softplus", lambda x: nn.softplus(x * 30),
       ref=lambda x: np.logaddexp(0, x * 30)),
]
UNARY_SHAPES = [(), (7,), (2, 3, 4)]


@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=sid)
@pytest.mark.parametrize("spec,dtype", op_cases(UNARY))
def test_unary(spec, dtype, shape):
    x = sample(spec.domains[0], shape, dtype, np.random.default_rng(0))
    check(spec.fn, spec.ref, [x], spec.tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["log1p", "expm1"])
def test_log1p_expm1_small_arguments(name, dtype):
    """The point of log1p/expm1: full relative precision near 0."""
    x = np.array([1e-10, -3e-9, 1e-7, 2e-5, -1e-4], dtype)
    got = ferrule.jit(getattr(fnp, name))(x)
    want = getattr(np, name)(x.astype(np.float64)).astype(dtype)
    np.testing.assert_allclose(got, want, rtol=TOL[np.dtype(dtype)]["rtol"] * 10, atol=0)


# -- binary ops ---------------------------------------------------------------------

BINARY = [
    op("add", lambda m, x, y: m.add(x, y), "normal", "normal"),
    op("subtract", lambda m, x, y: m.subtract(x, y), "normal", "normal"),
    op("multiply", lambda m, x, y: m.multiply(x, y), "normal", "normal"),
    op("divide", lambda m, x, y: m.divide(x, y), "normal", "nonzero"),
    alias(op("true_divide", lambda m, x, y: m.true_divide(x, y), "normal", "nonzero")),
    op("power", lambda m, x, y: m.power(x, y), "pos", "normal"),
    op("maximum", lambda m, x, y: m.maximum(x, y), "ties", "ties"),
    op("minimum", lambda m, x, y: m.minimum(x, y), "ties", "ties"),
    alias(op("+", lambda m, x, y: x + y, "normal", "normal")),
    alias(op("-", lambda m, x, y: x - y, "normal", "normal")),
    alias(op("*", lambda m, x, y: x * y, "normal", "normal")),
    alias(op("/", lambda m, x, y: x / y, "normal", "nonzero")),
    alias(op("**", lambda m, x, y: x ** y, "pos", "normal")),
    alias(op("np_ufunc_add", lambda m, x, y: np.add(x, y), "normal", "normal")),
]

PY = "py"  # a Python float constant (a static argument of the jitted function)
BINARY_SHAPES = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((4,), (3, 4)),
    ((3, 1), (1, 4)),
    ((), (3, 4)),            # 0-d array
    ((3, 4), ()),
    ((2, 1, 4), (3, 1)),
    (PY, (3, 4)),
    ((3, 4), PY),
]


def make_args(domains, shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [float(sample(d, (), np.float64, rng)) if s == PY else sample(d, s, dtype, rng)
            for d, s in zip(domains, shapes)]


@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=sid)
@pytest.mark.parametrize("spec,dtype", op_cases(BINARY))
def test_binary(spec, dtype, shapes):
    check(spec.fn, spec.ref, make_args(spec.domains, shapes, dtype), spec.tol)


_A32 = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
PROMOTION = [  # (id, function, arguments, expected dtype)
    ("f32*f32", lambda a, b: a * b, (_A32, _A32), F32),
    ("f32*f64", lambda a, b: a * b, (_A32, _A32.astype(F64)), F64),
    ("f64*f32", lambda a, b: a * b, (_A32.astype(F64), _A32), F64),
    ("f32*0d-f64", lambda a, b: a * b, (_A32, np.array(1.5)), F64),  # 0-d: not weak
    ("f32*py", lambda a: a * 1.5, (_A32,), F32),                     # Python: weak
    ("py*f64", lambda a: 1.5 * a, (_A32.astype(F64),), F64),
    ("f32*np.float64", lambda a: a * np.float64(1.5), (_A32,), F64),
    ("f32**np.float64", lambda a: a ** np.float64(2), (_A32,), F64),
    ("f32+f64-const", lambda a: a + np.ones(3), (_A32,), F64),
]


@pytest.mark.parametrize("f,args,want", [p[1:] for p in PROMOTION],
                         ids=[p[0] for p in PROMOTION])
def test_dtype_promotion(f, args, want):
    got = ferrule.jit(f)(*args)
    assert np.asarray(f(*args)).dtype == want  # numpy agrees
    assert got.dtype == want
    np.testing.assert_allclose(got, f(*to64(list(args))), rtol=1e-6)


# -- comparisons and where -----------------------------------------------------------

COMPARE = [
    op("<", lambda m, x, y: x < y), op("<=", lambda m, x, y: x <= y),
    op(">", lambda m, x, y: x > y), op(">=", lambda m, x, y: x >= y),
    op("==", lambda m, x, y: x == y), op("!=", lambda m, x, y: x != y),
    *map(alias, [
        op("less", lambda m, x, y: m.less(x, y)), op("less_equal", lambda m, x, y: m.less_equal(x, y)),
        op("greater", lambda m, x, y: m.greater(x, y)),
        op("greater_equal", lambda m, x, y: m.greater_equal(x, y)),
        op("equal", lambda m, x, y: m.equal(x, y)), op("not_equal", lambda m, x, y: m.not_equal(x, y))]),
]
COMPARE_SHAPES = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((), (4,)), (PY, (3, 4)), ((3, 4), PY)]


@pytest.mark.parametrize("shapes", COMPARE_SHAPES, ids=sid)
@pytest.mark.parametrize("spec,dtype", op_cases(COMPARE))
def test_comparison(spec, dtype, shapes):
    """Bool outputs, and the same comparison consumed by where()."""
    x, y = make_args(("ties", "ties"), shapes, dtype, seed=1)
    got, chosen = ferrule.jit(lambda x, y: (spec.fn(x, y), fnp.where(spec.fn(x, y), x, y)))(x, y)
    want = spec.ref(x, y)
    assert got.dtype == np.bool_ and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(chosen, np.where(want, x, y))


@pytest.mark.parametrize("spec,pred", list(zip(COMPARE[:6], ["olt", "ole", "ogt", "oge", "oeq", "une"])),
                         ids=lambda v: getattr(v, "name", v))
def test_comparison_predicates_and_nan(spec, pred):
    """Ordered predicates (False on NaN) except !=, which is True on NaN, as numpy."""
    x = np.array([np.nan, 1.0, 2.0, np.nan], np.float32)
    y = np.array([1.0, np.nan, 2.0, np.nan], np.float32)
    g = lambda x, y: fnp.where(spec.fn(x, y), 1.0, -1.0)  # noqa: E731
    text = ferrule.jit(g).lower(x, y).as_text("traced")
    assert re.search(rf"arith\.cmpf {pred}, %arg0, %arg1 : tensor<4xf32>", text), text
    assert "tensor<4xi1>" in text
    np.testing.assert_array_equal(ferrule.jit(g)(x, y), np.where(spec.ref(x, y), 1.0, -1.0))


WHERE_SHAPES = [
    ((3, 4), (3, 4), (3, 4)), ((3, 4), (4,), PY),
    ((3, 1), (1, 4), (3, 4)),  # the bool condition is broadcast
    ((), (3, 4), (3, 4)),
    ((4,), PY, PY)]


@pytest.mark.parametrize("shapes", WHERE_SHAPES, ids=sid)
@pytest.mark.parametrize("dtype", DTYPES)
def test_where(dtype, shapes):
    c, x, y = make_args(("normal",) * 3, shapes, dtype, seed=2)
    fn, ref = both(lambda m, c, x, y: m.where(c > 0, x, y))
    # Only Python scalars to choose from: ferrule's default float32, numpy's float64.
    check(fn, ref, [c, x, y], dtype=F32 if shapes[1:] == (PY, PY) else None)


def test_where_with_numpy_condition_constant():
    mask = np.array([True, False, True, False])
    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    check(lambda x: fnp.where(mask, x, -x), lambda x: np.where(mask, x, -x), [x])


# -- matmul ----------------------------------------------------------------------------

MATMUL = [((3, 4), (4, 5)), ((4,), (4, 5)), ((3, 4), (4,)), ((4,), (4,)), ((1, 1), (1, 1))]


@pytest.mark.parametrize("shapes", MATMUL, ids=sid)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("form", ["@", "matmul", "dot", "np.matmul"])
def test_matmul(form, dtype, shapes):
    f = {"@": lambda m, a, b: a @ b, "matmul": lambda m, a, b: m.matmul(a, b),
         "dot": lambda m, a, b: m.dot(a, b), "np.matmul": lambda m, a, b: np.matmul(a, b)}[form]
    fn, ref = both(f)
    check(fn, ref, make_args(("normal", "normal"), shapes, dtype, seed=3), ACC_TOL)


def test_matmul_with_numpy_constant_and_mixed_dtypes():
    w = np.random.default_rng(4).standard_normal((4, 2))            # float64 constant
    x = np.random.default_rng(5).standard_normal((3, 4)).astype(np.float32)
    check(lambda x: x @ w, lambda x: x @ w, [x], ACC_TOL)
    check(lambda x: w.T @ x.T, lambda x: w.T @ x.T, [x], ACC_TOL)  # reflected @


# -- reductions ------------------------------------------------------------------------

AXES = [None, 0, 1, -1, (0, 2), (-1, 0), ()]
REDUCE = {
    "sum": lambda m, x, a, k: m.sum(x, axis=a, keepdims=k),
    "mean": lambda m, x, a, k: m.mean(x, axis=a, keepdims=k),
    "max": lambda m, x, a, k: m.max(x, axis=a, keepdims=k),
    "amax": lambda m, x, a, k: m.amax(x, axis=a, keepdims=k),
    "x.sum": lambda m, x, a, k: x.sum(axis=a, keepdims=k),
    "x.mean": lambda m, x, a, k: x.mean(axis=a, keepdims=k),
    "x.max": lambda m, x, a, k: x.max(axis=a, keepdims=k),
    "logsumexp": None,
}


def _np_logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    r = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return r if keepdims else np.squeeze(r, axis=axis if axis is not None else None)


REDUCE_CASES = [  # methods: float32 only (same code path); logsumexp: some axes
    (name, dtype, axis) for name in REDUCE for dtype in (F32, F64) for axis in AXES
    if not (name.startswith("x.") or name == "amax") or dtype == F32
    if not (name == "logsumexp" and axis == ())]


@pytest.mark.parametrize("keepdims", [False, True], ids=["", "keepdims"])
@pytest.mark.parametrize("name,dtype,axis", REDUCE_CASES,
                         ids=[f"{n}-{d.name}-{str(a).replace(' ', '')}" for n, d, a in REDUCE_CASES])
def test_reduction(name, dtype, axis, keepdims):
    if name == "logsumexp":
        fn = lambda x: nn.logsumexp(x * 40, axis=axis, keepdims=keepdims)  # noqa: E731
        ref = lambda x: _np_logsumexp(x * 40, axis=axis, keepdims=keepdims)  # noqa: E731
    else:
        fn, ref = both(lambda m, x: REDUCE[name](m, x, axis, keepdims))
    x = sample("normal", (2, 3, 4), dtype, np.random.default_rng(6))
    check(fn, ref, [x], ACC_TOL)


@pytest.mark.parametrize("shape", [(), (5,)], ids=sid)
@pytest.mark.parametrize("name", ["sum", "mean", "max"])
def test_reduction_small_ranks(name, shape):
    fn, ref = both(lambda m, x: getattr(m, name)(x))
    check(fn, ref, [sample("normal", shape, F64, np.random.default_rng(7))], ACC_TOL)


@pytest.mark.parametrize("name,f", [
    ("sum", lambda m, x: m.sum(x)),
    ("sum of squares", lambda m, x: m.sum(x * x)),
    ("mean", lambda m, x: m.mean(x + 3.0)),
    ("row sums", lambda m, x: m.sum(x * x, axis=1)),
    ("column sums", lambda m, x: m.sum(x + 1.0, axis=0)),
])
def test_large_float32_sums_are_accurate(name, f):
    """float32 sums accumulate in float64 (widen-accumulators): one float32
    accumulator would lose the low bits of every term once it is large
    (sum(x * x) over 16M normals came out 2.8% low)."""
    x = np.random.default_rng(0).standard_normal((4096, 4096)).astype(np.float32)
    got = ferrule.jit(lambda x: f(fnp, x))(x)
    want = f(np, x.astype(np.float64))
    scale = f(np, np.abs(x.astype(np.float64))) if name != "mean" else want
    np.testing.assert_array_less(np.abs(got - want), 2e-7 * np.abs(scale) + 1e-30)


def test_bias_gradient_over_many_rows_is_accurate():
    """A broadcast's cotangent is a sum over rows: accurate for 65536 rows."""
    x = np.random.default_rng(1).standard_normal((65536, 64)).astype(np.float32)
    b = np.full(64, 0.25, np.float32)
    g = ferrule.jit(ferrule.grad(lambda b, x: ((x + b) ** 2).sum()))(b, x)
    want = 2 * (x.astype(np.float64) + 0.25).sum(axis=0)
    scale = 2 * np.abs(x.astype(np.float64) + 0.25).sum(axis=0)
    np.testing.assert_array_less(np.abs(g - want), 2e-7 * scale)


@pytest.mark.parametrize("f", [
    lambda m, x, b: m.sum(m.broadcast_to(x[:, None], (3, 4)) * 2.0),
    lambda m, x, b: m.sum(m.exp(m.broadcast_to(x[:, None], (3, 4)))),
    lambda m, x, b: m.sum(m.broadcast_to(b, (8, 4)) * 2.0, axis=0),
    lambda m, x, b: m.sum(m.transpose(m.broadcast_to(b, (3, 4)) * x[:, None]), axis=1),
])
def test_reductions_of_broadcasts(f):
    """A broadcasting region read by a reduction: fuse-into-reductions must
    leave it alone when only its output sized a loop (a regression: the
    fused op had an unbounded loop and failed to verify)."""
    x = np.arange(3, dtype=np.float32)
    b = np.arange(4, dtype=np.float32) - 1.5
    np.testing.assert_allclose(ferrule.jit(lambda x, b: f(fnp, x, b))(x, b), f(np, x, b), rtol=1e-6)


def test_gradient_of_mean_of_a_broadcast():
    u = np.arange(5.0)
    g = ferrule.jit(ferrule.grad(lambda u: fnp.mean(u[:, None] * fnp.ones((5, 7), dtype=u.dtype))))(u)
    np.testing.assert_allclose(g, np.full(5, 0.2))


def test_bool_arrays_in_arithmetic_and_sums():
    """Bools become 0/1 (as numpy); sums of bools count, in int64 (numpy's
    dtype); their mean is float32 (numpy: float64)."""
    x = np.array([[-1.0, 0.5, 2.0], [3.0, -0.5, 0.0]], np.float64)
    got = ferrule.jit(lambda x: ((x > 0) * x, (x > 0) + (x > 1), (x > 0).sum(axis=0),
                                 (x > 0).mean(), (x > 0) == (x < 1)))(x)
    want = ((x > 0) * x, (x > 0).astype(np.float32) + (x > 1), (x > 0).sum(axis=0),
            (x > 0).mean(), (x > 0) == (x < 1))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert [g.dtype for g in got] == [F64, F32, np.int64, F32, np.bool_]


def test_logsumexp_with_infinities():
    x = np.array([[-np.inf, -np.inf], [np.inf, 1.0], [0.0, -np.inf], [1e30, 1e30]], np.float32)
    got = ferrule.jit(lambda x: nn.logsumexp(x, axis=1))(x)
    np.testing.assert_allclose(got, [-np.inf, np.inf, 0.0, 1e30 + np.log(2)], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_power_with_traced_exponent_matches_numpy_everywhere(dtype):
    """Negative bases with integral exponents, 0 ** 0, 1 ** nan, nan ** 0,
    infinities, and a large |y log x| where exp(y * log x) loses accuracy."""
    x = np.array([-2.0, -2.0, -2.0, 2.0, 0.0, 0.0, 0.0, 3.0, 1.0, np.nan, -np.inf,
                  np.inf, 0.5, 1.0001, -1.0, 10.0], dtype)
    y = np.array([2.0, 3.0, 0.5, 0.5, 0.0, -1.0, 2.5, -1.0, np.nan, 0.0, 3.0,
                  -2.0, np.inf, 1e5, 1e9 + 1, 30.0], dtype)
    got = ferrule.jit(lambda x, y: x ** y)(x, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.power(x, y)
    np.testing.assert_allclose(got, want, rtol=2e-7 if dtype == np.float32 else 1e-15)


def test_power_derivatives_follow_jax_conventions_at_zero():
    """d/dx x**y = 0 where y = 0, d/dy x**y = 0 where x = 0 (the product
    forms would give 0 * inf = NaN); a negative base with an integral
    exponent has the ordinary d/dx."""
    x = np.array([0.0, 0.0, -2.0, 2.0], np.float64)
    y = np.array([0.0, 2.0, 3.0, 0.5], np.float64)
    gx, gy = ferrule.jit(ferrule.grad(lambda x, y: (x ** y).sum(), argnums=(0, 1)))(x, y)
    np.testing.assert_allclose(gx, [0.0, 0.0, 12.0, 0.5 * 2.0 ** -0.5], rtol=1e-12)
    np.testing.assert_allclose(gy[[0, 1, 3]], [0.0, 0.0, np.log(2.0) * 2.0 ** 0.5], rtol=1e-12)
    assert np.isnan(gy[2])        # (-2) ** y is not real-differentiable in y


def test_max_propagates_nan_and_handles_all_negative():
    x = np.array([[-5.0, -7.0, np.nan], [-3.0, -1e30, -2.0]], np.float32)
    got = ferrule.jit(lambda x: (x.max(axis=1), fnp.maximum(x, -4.0)))(x)
    np.testing.assert_array_equal(got[0], np.max(x, axis=1))
    np.testing.assert_array_equal(got[1], np.maximum(x, -4.0))


# -- layout: reshape, transpose, broadcast, slicing, concatenate, stack, split ----------

@dataclass(frozen=True)
class Layout:
    name: str
    f: Callable                  # f(m, x) with m = ferrule.numpy or numpy
    shape: Tuple[int, ...] = (2, 3, 4)


LAYOUT = [
    Layout("reshape", lambda m, x: m.reshape(x, (6, 4))),
    Layout("reshape_-1", lambda m, x: m.reshape(x, (4, -1))),
    Layout("reshape_flat", lambda m, x: m.reshape(x, -1)),
    Layout("reshape_unit_dims", lambda m, x: m.reshape(x, (1, 24, 1))),
    Layout("reshape_method_varargs", lambda m, x: x.reshape(3, 8)),
    Layout("reshape_method_tuple", lambda m, x: x.reshape((2, 12))),
    Layout("reshape_0d_to_2d", lambda m, x: m.reshape(x, (1, 1)), shape=()),
    Layout("reshape_to_0d", lambda m, x: m.reshape(x, ()), shape=(1, 1)),
    Layout("transpose", lambda m, x: m.transpose(x)),
    Layout("transpose_axes", lambda m, x: m.transpose(x, (1, 0, 2))),
    Layout("transpose_cycle", lambda m, x: m.transpose(x, (2, 0, 1))),
    Layout("transpose_negative_axes", lambda m, x: m.transpose(x, (-1, 0, 1))),
    Layout("transpose_method", lambda m, x: x.transpose(1, 2, 0)),
    Layout("T", lambda m, x: x.T, shape=(3, 4)),
    Layout("T_1d", lambda m, x: x.T, shape=(4,)),
    Layout("swapaxes", lambda m, x: m.swapaxes(x, 0, 2)),
    Layout("broadcast_row", lambda m, x: m.broadcast_to(x, (3, 4)), shape=(4,)),
    Layout("broadcast_col", lambda m, x: m.broadcast_to(x, (2, 3, 4)), shape=(3, 1)),
    Layout("broadcast_0d", lambda m, x: m.broadcast_to(x, (2, 2)), shape=()),
    Layout("broadcast_same", lambda m, x: m.broadcast_to(x, (2, 3, 4))),
    Layout("index_int", lambda m, x: x[1]),
    Layout("index_negative", lambda m, x: x[-1]),
    Layout("index_int_unit_axis", lambda m, x: x[0], shape=(1, 4)),
    Layout("index_all_ints", lambda m, x: x[1, -1, 2]),
    Layout("slice", lambda m, x: x[1:3], shape=(4, 3)),
    Layout("slice_full", lambda m, x: x[:]),
    Layout("slice_step", lambda m, x: x[::2], shape=(5, 3)),
    Layout("slice_negative_bounds", lambda m, x: x[-3:-1], shape=(5, 3)),
    Layout("slice_empty", lambda m, x: x[3:1], shape=(5, 3)),
    Layout("slice_past_end", lambda m, x: x[2:100], shape=(5, 3)),
    Layout("slice_inner", lambda m, x: x[:, 1:3]),
    Layout("slice_inner_step", lambda m, x: x[:, :, ::3]),
    Layout("index_inner", lambda m, x: x[:, 1]),
    Layout("ellipsis_last", lambda m, x: x[..., 1]),
    Layout("ellipsis_first", lambda m, x: x[1, ...]),
    Layout("ellipsis_middle", lambda m, x: x[0, ..., 1:3]),
    Layout("ellipsis_alone", lambda m, x: x[...]),
    Layout("newaxis", lambda m, x: x[None]),
    Layout("newaxis_mixed", lambda m, x: x[:, None, 1:]),
    Layout("newaxis_last", lambda m, x: x[..., None]),
    Layout("mixed", lambda m, x: x[-1, ::2, None, -3:]),
    Layout("numpy_int_index", lambda m, x: x[np.int64(1)]),
    Layout("unit_step_slice_and_ints", lambda m, x: x[0:1:2, ..., -1, -3]),  # kept axis of 1
    Layout("unit_axes_strided", lambda m, x: x[:, None, 1, ::3], shape=(3, 2, 7)),
    Layout("concatenate_0", lambda m, x: m.concatenate([x, 2 * x[:1]], axis=0)),
    Layout("concatenate_1", lambda m, x: m.concatenate([x, x[:, :2]], axis=1)),
    Layout("concatenate_-1", lambda m, x: m.concatenate((x, -x, x), axis=-1)),
    Layout("concatenate_tuple_1d", lambda m, x: m.concatenate((x, x[1:])), shape=(4,)),
    Layout("stack_0", lambda m, x: m.stack([x, x + 1], axis=0)),
    Layout("stack_1", lambda m, x: m.stack([x, x + 1], axis=1)),
    Layout("stack_-1", lambda m, x: m.stack([x, x + 1, x], axis=-1)),
    Layout("split_sections_0", lambda m, x: m.split(x, 2, axis=0), shape=(4, 3)),
    Layout("split_sections_1", lambda m, x: m.split(x, 2, axis=1), shape=(3, 4)),
    Layout("split_indices", lambda m, x: m.split(x, [1, 3]), shape=(5, 2)),
    Layout("split_indices_-1", lambda m, x: m.split(x, [1], axis=-1)),
    Layout("split_indices_past_end", lambda m, x: m.split(x, [2, 10]), shape=(5, 2)),
    Layout("split_indices_negative", lambda m, x: m.split(x, [-3, -1]), shape=(5, 2)),
    Layout("split_indices_unsorted", lambda m, x: m.split(x, [3, 1]), shape=(5, 2)),
]


def _materialise(m, r):
    """Feed a layout result into pointwise code (so no view is returned)."""
    if isinstance(r, (tuple, list)):
        return type(r)(_materialise(m, v) for v in r)
    return m.multiply(r, 2.0)


# Layout ops are dtype-agnostic: float32 for all, float64 for a few.
LAYOUT_CASES = [(s, F32) for s in LAYOUT] + [
    (s, F64) for s in LAYOUT if s.name in ("reshape", "transpose", "slice_inner", "concatenate_1")]


@pytest.mark.parametrize("spec,dtype", LAYOUT_CASES,
                         ids=[f"{s.name}-{d.name}" for s, d in LAYOUT_CASES])
def test_layout_consumed(spec, dtype):
    x = sample("normal", spec.shape, dtype, np.random.default_rng(8))
    fn, ref = both(lambda m, x: _materialise(m, spec.f(m, x)))
    check(fn, ref, [x])


@pytest.mark.parametrize("spec", LAYOUT, ids=lambda s: s.name)
def test_layout_returned_directly(spec):
    x = sample("normal", spec.shape, F32, np.random.default_rng(9))
    fn, ref = both(spec.f)
    check(fn, ref, [x])


# -- constructors, astype, constants ----------------------------------------------------

CTORS = [
    ("zeros", lambda m, x: m.zeros((2, 3), x.dtype) + x[0, 0]),
    ("zeros_int_shape", lambda m, x: m.zeros(4, dtype=x.dtype) + x[0]),
    ("ones_f64", lambda m, x: m.ones((3, 4), m.float64) * x),
    ("full", lambda m, x: m.full((3, 4), 1.5, x.dtype) - x),
    ("full_direct", lambda m, x: m.full((2, 2), -2.0, m.float64)),
    ("zeros_like", lambda m, x: m.zeros_like(x)),
    ("ones_like", lambda m, x: m.ones_like(x) + x),
    ("full_like", lambda m, x: m.full_like(x, 3.0) * x),
    ("asarray_list_constant", lambda m, x: m.asarray([1.0, 2.0, 3.0, 4.0]) * x),
    ("asarray_list_of_arrays", lambda m, x: m.asarray([x[0], x[2], -x[1]])),
    ("full_traced_fill", lambda m, x: m.full((2, 4), x[1, 2], x.dtype)),
    ("numpy_array_constant", lambda m, x: x + np.arange(4.0)),
    ("python_constant_output", lambda m, x: (x, 2.5)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,f", CTORS, ids=[c[0] for c in CTORS])
def test_constructors_and_constants(name, f, dtype):
    x = sample("normal", (3, 4), dtype, np.random.default_rng(10))
    fn, ref = both(f)
    check(fn, ref, [x])


def test_float32_is_the_default_dtype():
    """Unlike numpy (float64), constructors without dtype and ops whose operands
    are only Python scalars (and bools) give float32, as JAX does."""
    x = np.ones(3, np.float32)
    got = ferrule.jit(lambda x: (fnp.zeros(2), fnp.ones((1, 2)), fnp.full(2, 7.0),
                                 fnp.where(x > 0, 1.0, 2.0)))(x)
    assert [g.dtype for g in got] == [F32] * 4
    np.testing.assert_array_equal(got[3], [1.0, 1.0, 1.0])


@pytest.mark.parametrize("src,dst", [(F32, F64), (F64, F32), (F32, F32), (F64, F64)],
                         ids=["f32->f64", "f64->f32", "f32->f32", "f64->f64"])
def test_astype(src, dst):
    x = np.array([[1.0 + 2.0 ** -30, -1e-3, 3e38], [np.pi, -0.0, 7.0]]).astype(src)
    got = ferrule.jit(lambda x: (x.astype(dst), fnp.astype(x * -1.0, dst)))(x)
    for g, sign in zip(got, (1, -1)):
        assert g.dtype == dst
        np.testing.assert_array_equal(g, (sign * x).astype(dst))


