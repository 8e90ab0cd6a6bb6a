"""Derivative conventions at kinks, ties and NaN (docs/conventions.md),
the same under the compiler (jit, grad, jvp) and under ferrule.eager."""

import numpy as np
import pytest

import ferrule
import ferrule.eager as eager
import ferrule.numpy as fnp
from ferrule.nn import relu, softplus

NAN = np.nan

# name: (function of one array, input, expected derivative elementwise)
UNARY = {
    "relu": (relu, [-1.0, 0.0, 2.0, NAN], [0.0, 0.0, 1.0, NAN]),
    "abs": (fnp.abs, [-1.0, 0.0, 2.0, NAN], [-1.0, 0.0, 1.0, NAN]),
    "softplus": (softplus, [0.0, NAN], [0.5, NAN]),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_kinks_and_nan(name, dtype):
    f, x, want = UNARY[name]
    x = np.array(x, dtype)
    g = ferrule.grad(lambda x: fnp.sum(f(x)))(x)
    np.testing.assert_array_equal(g, np.array(want, dtype))
    _, t = ferrule.jvp(f, (x,), (np.ones_like(x),))
    np.testing.assert_array_equal(t, np.array(want, dtype))
    np.testing.assert_array_equal(eager.grad(lambda x: np.sum(f(x)))(x), np.array(want, dtype))


def test_relu_value_is_numpys():
    x = np.array([-1.0, -0.0, 0.0, 2.0, NAN])
    got = ferrule.jit(relu)(x)
    np.testing.assert_array_equal(got, np.maximum(x, 0.0))
    assert not np.signbit(got[:3]).any()   # 0.0, not -0.0


@pytest.mark.parametrize("fn, x_share", [(fnp.maximum, [0.0, 0.5, 1.0, NAN]),
                                         (fnp.minimum, [1.0, 0.5, 0.0, NAN])])
def test_maximum_minimum_split_ties(fn, x_share):
    x, y = np.array([1.0, 2.0, 3.0, NAN]), np.array([2.0, 2.0, 1.0, 0.0])
    gx, gy = ferrule.grad(lambda x, y: fnp.sum(fn(x, y)), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, x_share)
    np.testing.assert_array_equal(gy, 1.0 - np.array(x_share))
    ex, ey = eager.grad(lambda x, y: np.sum(fn(x, y)), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(ex, gx)
    np.testing.assert_array_equal(ey, gy)


def test_max_reduction_ties_and_nan():
    v, g = ferrule.value_and_grad(lambda x: fnp.max(x))(np.array([1.0, 3.0, 3.0]))
    assert v == 3.0
    np.testing.assert_array_equal(g, [0.0, 0.5, 0.5])
    v, g = ferrule.value_and_grad(lambda x: fnp.max(x))(np.array([1.0, NAN, 3.0]))
    assert np.isnan(v) and np.isnan(g).all()
    _, t = ferrule.jvp(lambda x: fnp.max(x), (np.array([1.0, NAN]),), (np.ones(2),))
    assert np.isnan(t)


def test_logistic_regression_first_step_from_zero_weights():
    """softplus'(0) = 0.5 matters: logistic regression starts at w = 0."""
    X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.5, -1.0]])
    y = np.array([1.0, 0.0, 1.0])
    loss = lambda w: fnp.mean(softplus(X @ w) - y * (X @ w))
    g = ferrule.grad(loss)(np.zeros(2))
    np.testing.assert_allclose(g, X.T @ (0.5 - y) / 3, rtol=1e-14)


def test_max_over_an_empty_axis_raises_as_numpy():
    with pytest.raises(ferrule.ShapeError, match="zero-size array to reduction operation maximum"):
        ferrule.jit(lambda x: fnp.max(x, axis=0))(np.ones((0, 3)))
    with pytest.raises(ValueError):
        np.max(np.ones((0, 3)), axis=0)
