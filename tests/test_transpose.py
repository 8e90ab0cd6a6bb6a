"""Transposes on the CPU (passes/tile_transpose.py: blocks of 8x8): every
shape's edges, several dtypes, inside products and their derivatives."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from opcheck import check_derivatives

SHAPES = [(1, 1), (1, 9), (3, 5), (8, 8), (9, 17), (16, 24), (64, 1000), (1000, 3)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_transpose_values(shape, dtype):
    x = (np.random.default_rng(shape[0] * 31 + shape[1]).standard_normal(shape) * 100).astype(dtype)
    got = ferrule.jit(lambda x: x.T + x.T)(x)
    np.testing.assert_array_equal(got, x.T + x.T)
    np.testing.assert_array_equal(ferrule.jit(lambda x: fnp.transpose(x) * 1)(x), x.T)


def test_transpose_of_a_view():
    x = np.random.default_rng(1).standard_normal((40, 30)).astype(np.float32)
    got = ferrule.jit(lambda x: x[3:35, ::2].T * 2.0)(x)
    np.testing.assert_array_equal(got, x[3:35, ::2].T * 2.0)


def test_products_with_transposed_operands_and_their_derivatives():
    rng = np.random.default_rng(2)
    a, w = rng.standard_normal((9, 20)), rng.standard_normal((13, 20))
    np.testing.assert_allclose(ferrule.jit(lambda a, w: a @ w.T)(a, w), a @ w.T, rtol=1e-13)
    check_derivatives(lambda a, w: fnp.tanh(a @ w.T), (a, w), rng)
    check_derivatives(lambda a, b: a.T @ fnp.sin(a) + b, (a, rng.standard_normal((20, 20))), rng)
