"""float16 and bfloat16 under ``ferrule.eager`` (frontend/eager/narrow.py):
floats, stored narrow and computed in float32 as under ``jit``; gradients
against float64 finite differences on the rounded inputs (to 1.5 narrow
ulps, as tests/test_narrow_dtypes.py checks jit), eager against jit, the
dot-product test between jit's jvp and eager's vjp, and the dtypes of
values, gradients and intermediates."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule import eager, rules
from test_narrow_dtypes import (NARROW, _fd_grad, _loss, _vec, assert_close_narrow, eps, f64,
                                narrow_array)


@pytest.mark.parametrize("dt", NARROW)
def test_grad_against_float64_finite_differences_and_jit(dt):
    x, w = narrow_array((3, 4), dt, -1, 1), narrow_array((4, 2), dt, -1, 1)
    gx, gw = eager.grad(_loss(np), argnums=(0, 1))(x, w)
    assert gx.dtype == dt and gw.dtype == dt     # a cotangent has its primal's dtype
    loss64, xr, wr = _loss(np), f64(x), f64(w)
    assert_close_narrow(gx, _fd_grad(lambda v: loss64(v, wr), xr), dt, ulps=1.5)
    assert_close_narrow(gw, _fd_grad(lambda v: loss64(xr, v), wr), dt, ulps=1.5)
    # jit computes in float32 too and rounds once: the same up to that rounding
    jx, jw = ferrule.grad(_loss(fnp), argnums=(0, 1))(x, w)
    assert_close_narrow(gx, f64(jx), dt, ulps=1.0)
    assert_close_narrow(gw, f64(jw), dt, ulps=1.0)


@pytest.mark.parametrize("dt", NARROW)
def test_computes_in_float32_not_op_by_op(dt):
    """A chain of ops is rounded once, when it leaves the tape: eager's value
    is float32's rounded to the narrow dtype, as jit's."""
    x = narrow_array(64, dt, -2, 2)
    f = lambda x: np.tanh(x * 1.1 + 0.3) * 3 - x / 7             # noqa: E731
    y, _ = eager.vjp(f, x)
    assert y.dtype == dt
    want = f(x.astype(np.float32)).astype(dt)
    np.testing.assert_array_equal(y.astype(np.float32), want.astype(np.float32))
    assert_close_narrow(y, ferrule.jit(lambda x: fnp.tanh(x * 1.1 + 0.3) * 3 - x / 7)(x).astype(
        np.float64), dt, ulps=1.0)


@pytest.mark.parametrize("dt", NARROW)
def test_vjp_against_finite_differences_and_the_dot_product_test(dt):
    x, xdot, ybar = (narrow_array(6, dt, -1, 1) for _ in range(3))
    y, pullback = eager.vjp(_vec(np), x)
    (xbar,) = pullback(ybar)
    assert y.dtype == xbar.dtype == dt
    f64fn, xr, h = _vec(np), f64(x), 1e-6
    assert_close_narrow(y, f64fn(xr), dt)
    J = np.stack([(f64fn(xr + h * e) - f64fn(xr - h * e)) / (2 * h) for e in np.eye(6)], axis=1)
    assert_close_narrow(xbar, J.T @ f64(ybar), dt, ulps=1.5)
    # <J xdot, ybar> (jit's jvp) = <xdot, J^T ybar> (eager's vjp), up to their rounding
    _, ydot = ferrule.jvp(_vec(fnp), (x,), (xdot,))
    lhs, rhs = f64(ydot) @ f64(ybar), f64(xdot) @ f64(xbar)
    scale = np.abs(f64(ydot)) @ np.abs(f64(ybar)) + np.abs(f64(xdot)) @ np.abs(f64(xbar))
    assert abs(lhs - rhs) <= 2 * eps(dt) * scale, (lhs, rhs)


@pytest.mark.parametrize("dt", NARROW)
def test_dtypes_as_under_jit(dt):
    """Inside the function a narrow Var says its dtype; promotion is JAX's
    (Python scalars weak, float32 wins); astype rounds; comparisons and
    other piecewise-constant ops give narrow plain arrays."""
    x = narrow_array(5, dt, -1, 1)
    w = np.linspace(-1, 1, 5).astype(np.float32)
    seen = {}

    def f(x, w):
        seen["x"], seen["x*2.5"], seen["x*w"] = x.dtype, (x * 2.5).dtype, (x * w).dtype
        seen["sign"], seen["cast"] = np.sign(x).dtype, x.astype(np.float32).dtype
        seen["rounded"] = (x * 1.001).astype(dt).dtype
        seen["zeros"] = np.zeros_like(x).dtype
        seen["result_type"] = np.result_type(x, 1.0)
        return np.sum(np.exp(x) * w)
    v, (gx, gw) = eager.value_and_grad(f, argnums=(0, 1))(x, w)
    assert seen == {"x": dt, "x*2.5": dt, "x*w": np.float32, "sign": dt, "cast": np.float32,
                    "rounded": dt, "zeros": dt, "result_type": dt}
    assert v.dtype == np.float32 and gx.dtype == dt and gw.dtype == np.float32
    jv, (jx, jw) = ferrule.value_and_grad(lambda x, w: fnp.sum(fnp.exp(x) * w),
                                          argnums=(0, 1))(x, w)
    np.testing.assert_allclose(v, jv, rtol=1e-5, atol=1e-6)   # float32 sums, orders differ
    assert_close_narrow(gx, f64(jx), dt, ulps=1.0)
    np.testing.assert_allclose(gw, jw, rtol=1e-6)


@pytest.mark.parametrize("dt", NARROW)
def test_astype_rounds_and_passes_the_tangent(dt):
    """``x.astype(narrow)`` rounds the value later ops see; its derivative
    is the cotangent itself (as jit's, JAX's convert_element_type)."""
    x = np.linspace(-1, 1, 7).astype(np.float32) + np.float32(1e-3)

    def f(x):
        return np.sum(x.astype(dt) * 3.0)
    g = eager.grad(f)(x)
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, np.full(7, 3.0, np.float32))
    v, _ = eager.value_and_grad(lambda x: np.sum(x.astype(dt).astype(np.float32)))(x)
    assert v == np.sum(x.astype(dt).astype(np.float32))


@rules.primitive
def _softsign(x):
    return x / (1.0 + fnp.abs(x))


@rules.rrule(_softsign)
def _softsign_rrule(config, x):
    if isinstance(x, np.ndarray):    # eager: the float32 values the tape holds
        assert x.dtype == np.float32
    d = 1.0 + np.abs(x)
    return x / d, lambda ybar: (rules.NoTangent(), ybar / (d * d))


@pytest.mark.parametrize("dt", NARROW)
def test_rrule_of_a_primitive_on_narrow_inputs(dt):
    x = narrow_array(6, dt, -2, 2)
    y, pullback = eager.vjp(_softsign, x)
    (xbar,) = pullback(np.ones(6, dt))
    assert y.dtype == xbar.dtype == dt
    xr = f64(x)
    assert_close_narrow(y, xr / (1 + np.abs(xr)), dt)
    assert_close_narrow(xbar, 1 / (1 + np.abs(xr)) ** 2, dt)
    assert_close_narrow(xbar, f64(ferrule.vjp(_softsign, x)[1](np.ones(6, dt))[0]), dt)
