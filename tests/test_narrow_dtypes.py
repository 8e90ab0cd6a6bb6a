"""float16 and bfloat16 arrays: stored narrow, computed in float32 (docs/dtypes.md).

Values against numpy (computed in float32 on the same inputs, rounded once),
the promotion table (against JAX's where it is installed), ``astype``
rounding bit for bit, every derivative against float64 finite differences
on the rounded inputs plus the dot-product test, and the errors.

bfloat16 is ``ml_dtypes.bfloat16`` (installed with jax); without it its
cases are skipped.
"""

import re
import sys

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule import CompileError, DTypeError, UnsupportedOperationError, narrow
from ferrule.runtime import cpu
from ferrule.runtime.signature import dtype_name, dtype_of_name

F16 = np.dtype(np.float16)
BF16 = narrow.bfloat16()
NARROW = [pytest.param(F16, id="float16"),
          pytest.param(BF16, id="bfloat16",
                       marks=pytest.mark.skipif(BF16 is None, reason="no ml_dtypes"))]
# One unit in the last place at 1: float16 keeps 11 significant bits, bfloat16 8.
EPS = {"float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}
RNG = np.random.default_rng(0)


@pytest.fixture(params=["software", "host"])
def conversions(request):
    """float16/bfloat16 conversions written out by expand-narrow-floats
    ("software"), or as the host does them ("host": LLVM's instructions
    where it has F16C / AVX512-BF16, the pass for the others)."""
    if request.param == "software":
        with cpu.using(narrow_conversions="f16,bf16"):
            yield request.param
    else:
        yield request.param


def eps(dt) -> float:
    return EPS[np.dtype(dt).name]


def narrow_array(shape, dt, lo=-2.0, hi=2.0):
    return RNG.uniform(lo, hi, shape).astype(np.float32).astype(dt)


def f64(a):
    return np.asarray(a).astype(np.float64)


def assert_close_narrow(got, want, dt, ulps=1.0):
    """``got`` (narrow) within ``ulps`` units of ``dt`` of ``want`` (float64),
    relative to ``max(|want|, 1)``: the one rounding of the result, plus the
    float32 computation's error (far smaller)."""
    got = np.asarray(got)
    assert got.dtype == np.dtype(dt), (got.dtype, dt)
    want = np.asarray(want, np.float64)
    err = np.abs(f64(got) - want) / np.maximum(np.abs(want), 1.0)
    assert np.all(err <= ulps * eps(dt)), (float(err.max()), got, want)


# -- values -------------------------------------------------------------------------------

# (name, ferrule function, numpy function on float32): the reference is numpy on
# the narrow inputs converted to float32, rounded once to the narrow dtype.
OPS = [
    ("add_mul", lambda a, b: a * b + a, lambda a, b: a * b + a),
    ("div_sub", lambda a, b: (a - b) / 3.0, lambda a, b: (a - b) / 3.0),
    ("exp_tanh", lambda a, b: fnp.exp(a) * fnp.tanh(b), lambda a, b: np.exp(a) * np.tanh(b)),
    ("sin_log", lambda a, b: fnp.sin(a) + fnp.log(fnp.abs(b) + 1), lambda a, b: np.sin(a) + np.log(np.abs(b) + 1)),
    ("sqrt_pow", lambda a, b: fnp.sqrt(fnp.abs(a)) ** 3, lambda a, b: np.sqrt(np.abs(a)) ** 3),
    ("sum", lambda a, b: a.sum(), lambda a, b: a.sum()),
    ("mean_axis", lambda a, b: (a * b).mean(axis=1), lambda a, b: (a * b).mean(axis=1)),
    ("max_where", lambda a, b: fnp.where(a > b, a, b).max(axis=0), lambda a, b: np.where(a > b, a, b).max(axis=0)),
    ("matmul", lambda a, b: a @ b.T, lambda a, b: a @ b.T),
    ("softmax", lambda a, b: ferrule.nn.softmax(a), lambda a, b: np.exp(a) / np.exp(a).sum(-1, keepdims=True)),
    ("cumsum", lambda a, b: fnp.cumsum(a, axis=1), lambda a, b: np.cumsum(a, axis=1)),
    ("layout", lambda a, b: fnp.concatenate([a.T, b.T])[1:, ::2].reshape(-1),
     lambda a, b: np.concatenate([a.T, b.T])[1:, ::2].reshape(-1)),
    ("clip_var", lambda a, b: fnp.clip(a, -0.5, 0.5) + fnp.var(b), lambda a, b: np.clip(a, -0.5, 0.5) + np.var(b)),
]


@pytest.mark.parametrize("dt", NARROW)
@pytest.mark.parametrize("name, f, ref", OPS, ids=[o[0] for o in OPS])
def test_values_match_numpy_in_float32_rounded_once(dt, name, f, ref):
    a, b = narrow_array((4, 6), dt), narrow_array((4, 6), dt)
    got = ferrule.jit(f)(a, b)
    want = ref(a.astype(np.float32), b.astype(np.float32))
    # float32 reference rounded once to dt: at most one narrow ulp apart
    # (transcendentals differ from numpy's by ~2 float32 ulps, which can
    # only move a result across a narrow rounding boundary)
    assert_close_narrow(got, f64(np.asarray(want, np.float32)), dt, ulps=1.0)


def test_float16_matches_numpy_float16_on_single_ops(conversions):
    """One op computed in float32 and rounded once is numpy's float16 result
    exactly (float32 holds more than twice float16's bits, so the double
    rounding is innocuous for + - * / sqrt)."""
    a, b = narrow_array(1000, F16), narrow_array(1000, F16, 0.5, 2.0)
    for f in (np.add, np.subtract, np.multiply, np.divide):
        np.testing.assert_array_equal(ferrule.jit(f)(a, b), f(a, b))
    np.testing.assert_array_equal(ferrule.jit(fnp.sqrt)(b), np.sqrt(b))


def test_narrow_abi_takes_and_returns_narrow_memrefs():
    x = narrow_array(5, F16)
    low = ferrule.jit(lambda x: x * 2.0).lower(x)
    traced = low.as_text("traced")
    assert "tensor<5xf16>" in traced and "arith.extf" in traced and "arith.truncf" in traced
    with cpu.using(narrow_conversions="f16,bf16"):
        # no libcalls: the conversions are integer code (expand-narrow-floats)
        assert not re.search(r"\b(fptrunc|fpext)\b", low.as_text("llvm-ir"))
    if "f16" not in cpu.host_narrow_conversions():     # F16C: LLVM's instructions
        assert re.search(r"\bfptrunc\b", low.as_text("llvm-ir"))


@pytest.mark.parametrize("dt", NARROW)
def test_out_fast_path_and_scalars(dt):
    f = ferrule.jit(lambda x, s: x * s)
    x = narrow_array(7, dt)
    r1 = f(x, 0.5)
    r2 = f(x, 0.5)          # the cached specialisation
    np.testing.assert_array_equal(f64(r1), f64(r2))
    assert r1.dtype == dt
    g = ferrule.jit(lambda x: -x)
    out = np.empty(7, dt)
    g(x, out=[out])
    np.testing.assert_array_equal(f64(out), -f64(x))
    g(x)                     # fast path (all numpy arrays)
    np.testing.assert_array_equal(f64(g(x)), -f64(x))


@pytest.mark.parametrize("dt", NARROW)
def test_row_split_functions_keep_narrow_arrays(dt):
    with cpu.using(threads=2, split_min_elements=1, split_min_rows_with_sums=1):
        x = narrow_array((64, 8), dt)
        f = ferrule.jit(lambda x: fnp.tanh(x) + x.sum(axis=1, keepdims=True))
        assert isinstance(f.lower(x).compile(), cpu.RowSplitFunction)
        got = f(x)
    want = np.tanh(x.astype(np.float32)) + x.astype(np.float32).sum(1, keepdims=True)
    assert_close_narrow(got, f64(want), dt)


# -- promotion ---------------------------------------------------------------------------

PROMOTION = [
    ("float16", "float16", "float16"),
    ("float16", "float32", "float32"),
    ("float16", "float64", "float64"),
    ("float16", "int32", "float16"),     # as JAX (numpy 2 gives float64)
    ("float16", "int64", "float16"),
    ("float16", "bool", "float16"),
    ("bfloat16", "bfloat16", "bfloat16"),
    ("bfloat16", "float16", "float32"),  # as JAX
    ("bfloat16", "float32", "float32"),
    ("bfloat16", "float64", "float64"),
    ("bfloat16", "int32", "bfloat16"),
]


def _dtype(name):
    if name == "bfloat16":
        if BF16 is None:
            pytest.skip("no ml_dtypes")
        return BF16
    return np.dtype(name)


@pytest.mark.parametrize("a, b, want", PROMOTION)
def test_promotion_table(a, b, want):
    x, y = np.ones(3, _dtype(a)), np.ones(3, _dtype(b))
    assert ferrule.jit(lambda x, y: x + y)(x, y).dtype == _dtype(want)
    assert ferrule.jit(lambda x, y: y * x)(x, y).dtype == _dtype(want)


@pytest.mark.parametrize("a, b, want", PROMOTION)
def test_promotion_table_is_jax(a, b, want):
    jnp = pytest.importorskip("jax.numpy")
    assert np.dtype(jnp.promote_types(_dtype(a), _dtype(b))) == _dtype(want)


@pytest.mark.parametrize("dt", NARROW)
def test_python_scalars_and_float_arguments_are_weak(dt):
    x = np.ones(3, dt)
    assert ferrule.jit(lambda x: x * 2)(x).dtype == dt
    assert ferrule.jit(lambda x: 1.5 - x)(x).dtype == dt
    assert ferrule.jit(lambda x, s: x * s)(x, 0.1).dtype == dt      # a Python float argument
    assert ferrule.jit(lambda x: x * np.float32(2))(x).dtype == np.float32  # numpy scalar: strong


@pytest.mark.parametrize("dt", NARROW)
def test_tracer_dtype_and_constructors(dt):
    seen = {}

    def f(x):
        seen["x"] = x.dtype
        seen["sum"] = x.sum().dtype
        seen["zeros"] = fnp.zeros_like(x).dtype
        seen["ones"] = fnp.ones(2, dtype=dt).dtype
        seen["cmp"] = (x > 0).dtype
        seen["int"] = x.astype(np.int32).dtype
        return x
    ferrule.jit(f)(np.ones(3, dt))
    assert seen == {"x": dt, "sum": dt, "zeros": dt, "ones": dt, "cmp": np.bool_,
                    "int": np.int32}


# -- astype ----------------------------------------------------------------------------

@pytest.mark.parametrize("dt", NARROW)
def test_astype_to_float32_is_exact_for_every_narrow_value(dt, conversions):
    every = np.arange(1 << 16, dtype=np.uint16).view(dt)
    got = ferrule.jit(lambda x: x.astype(np.float32))(every)
    want = every.astype(np.float32)
    nan = np.isnan(want)        # F16C quiets signalling NaNs: NaN stays NaN
    np.testing.assert_array_equal(got.view(np.uint32)[~nan], want.view(np.uint32)[~nan])
    assert np.isnan(got[nan]).all()
    np.testing.assert_array_equal(np.signbit(got[nan]), np.signbit(want[nan]))
    if conversions == "software":   # the pass keeps the payload, as numpy
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def _float32_sweep():
    """Random float32 bit patterns, both signs, and dense runs around the
    places where rounding to float16 changes regime (underflow to 0, the
    smallest normal, overflow to inf), and the special values."""
    rng = np.random.default_rng(1)
    parts = [rng.integers(0, 1 << 32, 200_000, dtype=np.uint64).astype(np.uint32)]
    for centre in (0x33000000, 0x38800000, 0x477FF000, 0x7F7FFFFF):
        parts.append(np.arange(centre - 3000, centre + 3000, dtype=np.uint32))
    parts.append(np.array([0, 1, 0x7F800000, 0x7FC00000, 0x7F800001, 0x00800000], np.uint32))
    bits = np.concatenate(parts)
    return np.concatenate([bits, bits | np.uint32(0x80000000)]).view(np.float32)


@pytest.mark.parametrize("dt", NARROW)
def test_astype_rounds_to_nearest_even_bit_for_bit(dt, conversions):
    x = _float32_sweep()
    got = ferrule.jit(lambda x: x.astype(dt))(x)
    with np.errstate(over="ignore", invalid="ignore"):
        want = x.astype(dt)
    nan = np.isnan(x)
    np.testing.assert_array_equal(got.view(np.uint16)[~nan], want.view(np.uint16)[~nan])
    assert np.isnan(f64(got[nan])).all()
    # the sign of a NaN is kept
    np.testing.assert_array_equal(np.signbit(f64(got[nan])), np.signbit(x[nan]))


@pytest.mark.parametrize("dt", NARROW)
def test_astype_inside_a_trace_rounds_and_later_ops_see_the_rounded_value(dt):
    x = RNG.standard_normal(1000).astype(np.float32)

    def f(x):
        r = x.astype(dt)
        assert r.dtype == dt
        return r.astype(np.float32) - x, r.astype(np.float64)
    err, wide = ferrule.jit(f)(x)
    rounded = x.astype(dt).astype(np.float32)
    np.testing.assert_array_equal(err, rounded - x)
    np.testing.assert_array_equal(wide, rounded.astype(np.float64))
    assert np.abs(err).max() > 0 and np.all(np.abs(err) <= eps(dt) / 2 * np.abs(x) * 1.0001)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_float16_float64_and_integer_casts():
    x = np.array([-2.5, -0.4, 0.0, 0.6, 3.5, 70000.0], np.float64)
    got = ferrule.jit(lambda x: (x.astype(np.float16), x.astype(np.float16).astype(np.int32)))(x)
    np.testing.assert_array_equal(got[0], x.astype(np.float16))
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(got[1][:-1], x.astype(np.float16).astype(np.int32)[:-1])
    i = np.array([1, 2049, -70000], np.int32)
    np.testing.assert_array_equal(ferrule.jit(lambda i: i.astype(np.float16))(i),
                                  i.astype(np.float16))


@pytest.mark.parametrize("dt", NARROW)
@pytest.mark.parametrize("it", [np.int32, np.uint32, np.int64])
def test_integer_with_narrow_and_back(dt, it, conversions):
    """``i + x`` (canonicalisation folds the integer's sitofp and truncf into
    one sitofp to the narrow type, which LLVM had no code for: a crash) and
    ``x.astype(int)``, scalar and vectorised: the integer through float32,
    rounded once more to the narrow dtype, as the traced program says."""
    i = RNG.integers(0 if it == np.uint32 else -60000, 60000, 1000).astype(it)
    x = narrow_array(1000, dt, -300, 300)
    add, cast = ferrule.jit(lambda i, x: (i + x, x.astype(it)))(i, x)
    want = (i.astype(np.float32).astype(dt).astype(np.float32)
            + x.astype(np.float32)).astype(dt)
    assert add.dtype == dt and cast.dtype == it
    np.testing.assert_array_equal(add.astype(np.float32), want.astype(np.float32))
    if it == np.uint32:
        x = np.abs(x.astype(np.float32)).astype(dt)
        cast = ferrule.jit(lambda x: x.astype(it))(x)
    np.testing.assert_array_equal(cast, x.astype(np.float32).astype(it))


# -- derivatives -----------------------------------------------------------------------

def _fd_grad(f64fn, x, h=1e-6):
    """Central finite differences of scalar ``f64fn`` at float64 ``x``."""
    g = np.zeros_like(x)
    for k in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[k] = h
        g[k] = (f64fn(x + e) - f64fn(x - e)) / (2 * h)
    return g


def _loss(np_):
    def loss(x, w):
        return np_.sum(np_.tanh(x @ w) ** 2) + np_.sum(np_.sin(x) * x)
    return loss


@pytest.mark.parametrize("dt", NARROW)
def test_grad_against_float64_finite_differences(dt):
    x, w = narrow_array((3, 4), dt, -1, 1), narrow_array((4, 2), dt, -1, 1)
    gx, gw = ferrule.grad(_loss(fnp), argnums=(0, 1))(x, w)
    assert gx.dtype == dt and gw.dtype == dt     # a cotangent has its primal's dtype
    loss64 = _loss(np)
    xr, wr = f64(x), f64(w)                      # the rounded inputs, exactly
    assert_close_narrow(gx, _fd_grad(lambda v: loss64(v, wr), xr), dt, ulps=1.5)
    assert_close_narrow(gw, _fd_grad(lambda v: loss64(xr, v), wr), dt, ulps=1.5)


@pytest.mark.parametrize("dt", NARROW)
def test_value_and_grad_mixed_with_float32(dt):
    x, w = narrow_array(5, dt, -1, 1), RNG.uniform(-1, 1, 5).astype(np.float32)

    def f(x, w):
        return fnp.sum(fnp.exp(x) * w)
    v, (gx, gw) = ferrule.value_and_grad(f, argnums=(0, 1))(x, w)
    assert v.dtype == np.float32 and gx.dtype == dt and gw.dtype == np.float32
    xr, wr = f64(x), f64(w)
    np.testing.assert_allclose(v, np.sum(np.exp(xr) * wr), rtol=1e-6)
    assert_close_narrow(gx, _fd_grad(lambda v: np.sum(np.exp(v) * wr), xr), dt)
    # w's gradient is float32: exp of the rounded x, to float32 precision
    np.testing.assert_allclose(gw, _fd_grad(lambda v: np.sum(np.exp(xr) * v), wr), rtol=1e-6)


def _vec(np_):
    def f(x):
        return np_.tanh(x) * np_.cumsum(x, axis=0) + x[::-1] ** 2
    return f


@pytest.mark.parametrize("dt", NARROW)
def test_jvp_and_vjp_against_finite_differences_and_each_other(dt):
    x, xdot, ybar = (narrow_array(6, dt, -1, 1) for _ in range(3))
    y, ydot = ferrule.jvp(_vec(fnp), (x,), (xdot,))
    y2, pullback = ferrule.vjp(_vec(fnp), x)
    (xbar,) = pullback(ybar)
    assert y.dtype == ydot.dtype == y2.dtype == xbar.dtype == dt
    f64fn, xr = _vec(np), f64(x)
    assert_close_narrow(y, f64fn(xr), dt)
    h = 1e-6
    jv = (f64fn(xr + h * f64(xdot)) - f64fn(xr - h * f64(xdot))) / (2 * h)
    assert_close_narrow(ydot, jv, dt, ulps=1.5)
    J = np.stack([(f64fn(xr + h * e) - f64fn(xr - h * e)) / (2 * h) for e in np.eye(6)], axis=1)
    assert_close_narrow(xbar, J.T @ f64(ybar), dt, ulps=1.5)
    # The dot-product test <J xdot, ybar> = <xdot, J^T ybar>, each side from
    # ferrule's rounded results: equal up to their narrow rounding.
    lhs, rhs = f64(ydot) @ f64(ybar), f64(xdot) @ f64(xbar)
    scale = np.abs(f64(ydot)) @ np.abs(f64(ybar)) + np.abs(f64(xdot)) @ np.abs(f64(xbar))
    assert abs(lhs - rhs) <= 2 * eps(dt) * scale, (lhs, rhs)


def test_dot_product_test_in_float32_through_a_narrow_intermediate():
    """A float32 function that stores an intermediate as float16: its
    derivatives are float32, and the rounding's derivative is the rounded
    tangent (as JAX's convert_element_type). With tangents that are float16
    values (times 2, exact) J is exact; J^T rounds one cotangent term to
    float16, so the dot-product test holds to float16's precision."""
    def f(x):
        h = (x * 2.0).astype(np.float16)
        return fnp.sin(h.astype(np.float32)) * x

    x = RNG.uniform(-1, 1, 8).astype(np.float32)
    xdot = narrow_array(8, F16, -1, 1).astype(np.float32)
    ybar = RNG.uniform(-1, 1, 8).astype(np.float32)
    _, ydot = ferrule.jvp(f, (x,), (xdot,))
    _, pb = ferrule.vjp(f, x)
    (xbar,) = pb(ybar)
    assert ydot.dtype == xbar.dtype == np.float32
    lhs, rhs = np.dot(f64(ydot), f64(ybar)), np.dot(f64(xdot), f64(xbar))
    scale = np.abs(f64(ydot)) @ np.abs(f64(ybar)) + np.abs(f64(xdot)) @ np.abs(f64(xbar))
    assert abs(lhs - rhs) <= 2.0 ** -11 * scale, (lhs, rhs)
    # J against the float64 derivative, the rounding passing the tangent on
    xr, hr = f64(x), f64((x * np.float32(2)).astype(np.float16))
    np.testing.assert_allclose(ydot, (np.sin(hr) + 2 * np.cos(hr) * xr) * f64(xdot),
                               rtol=1e-5, atol=1e-6)
    # (Finite differences of the program itself would see the rounding's
    # zero derivative: the 2 cos(h) x term is the convention, as JAX's.)


@pytest.mark.parametrize("dt", NARROW)
def test_jacobian_of_matmul(dt):
    a, b = narrow_array((3, 4), dt), narrow_array((4,), dt)
    J = ferrule.jacfwd(lambda a: a @ b)(a)
    assert J.dtype == dt and J.shape == (3, 3, 4)
    want = np.einsum("ij,k->ijk", np.eye(3), f64(b))     # d(a @ b)_i / d a_jk
    assert_close_narrow(J, want, dt, ulps=0.5)


# -- errors ----------------------------------------------------------------------------

def test_gpu_compile_refuses_narrow_dtypes_clearly():
    low = ferrule.jit(lambda x: x * 2).lower(np.ones(3, np.float16))
    with pytest.raises(CompileError, match=r"float16/bfloat16 arrays .* are CPU-only"):
        low.compile_cuda("cuda:sm_90")
    low32 = ferrule.jit(lambda x: x.astype(np.float16) * 2).lower(np.ones(3, np.float32))
    with pytest.raises(CompileError, match="CPU-only"):
        low32.compile_cuda("cuda:sm_90")


def test_runtime_cuda_compile_refuses_narrow_dtypes():
    from ferrule.dialect import make_context
    from ferrule.runtime.cuda_compile import compile_cuda
    text = "func.func @f(%a: tensor<3xf16>) -> tensor<3xf16> { return %a : tensor<3xf16> }"
    with pytest.raises(TypeError, match="float16 arrays are CPU-only"):
        compile_cuda(text, "f", make_context(), make_cubin=False)


def test_bitwise_op_on_float16_names_the_line():
    with pytest.raises(UnsupportedOperationError, match="only supported on integer") as info:
        ferrule.jit(lambda x: x & x)(np.ones(3, np.float16))  # E:bitwise
    assert f"{__file__}:" in str(info.value)


def test_astype_to_an_unsupported_dtype_names_the_line():
    with pytest.raises(DTypeError, match=r"astype from float16 to int8 is not supported") as info:
        ferrule.jit(lambda x: x.astype(np.int8))(np.ones(3, np.float16))
    assert __file__ in str(info.value)


def test_truly_unsupported_dtypes_are_still_refused():
    for dt in (np.complex64, np.int8, np.uint64, np.float128 if hasattr(np, "float128") else np.complex128):
        with pytest.raises(DTypeError, match="float16, bfloat16"):
            ferrule.jit(lambda x: x * 2)(np.ones(3, dt))


def test_without_ml_dtypes_bfloat16_is_not_offered(monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)     # import fails
    assert narrow.bfloat16() is None
    # float16 needs nothing
    assert ferrule.jit(lambda x: x + 1)(np.ones(2, np.float16)).dtype == np.float16


def test_bfloat16_specs_survive_the_disk_cache_encoding():
    assert dtype_of_name(dtype_name(np.float16)) == np.float16
    if BF16 is not None:
        assert dtype_name(BF16) == "bfloat16"
        assert dtype_of_name("bfloat16") == BF16 and dtype_of_name("|V2") == BF16
