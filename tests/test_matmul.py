"""The CPU matmul (passes/tile_matmul.py) against numpy float64.

Shapes cover the register tile, both remainders (rows below the last row
block, columns right of the last column block), matrix-vector and
vector-matrix products, and views; each runs at the host's vector width and
at 32 bytes (the AVX2 tile: 6 rows × 2 vectors), so both tile shapes are
checked on any machine. Every row count from 1 to 17 checks the blocks of
the rows left below the last full block (a tile that many rows high).
"""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.runtime import cpu
from ferrule.runtime.cpu.codegen import host_vector_bytes

SHAPES = [(1, 1, 1), (3, 5, 7), (8, 16, 32), (10, 12, 40), (17, 33, 65), (64, 64, 1),
          (1, 64, 64), (9, 300, 70), (32, 8, 96), (32, 256, 64),
          (700, 300, 40), (1030, 128, 48)]   # passes over A's rows (A_BLOCK_BYTES), with tails


@pytest.mark.parametrize("m", range(1, 18))
def test_every_row_remainder(width, m):
    rng = np.random.default_rng(m)
    a = rng.standard_normal((m, 20)).astype(np.float32)
    b = rng.standard_normal((20, 48)).astype(np.float32)
    _check(ferrule.jit(lambda a, b: a @ b)(a, b), a, b, 20)


@pytest.fixture(params=["host", 32])
def width(request):
    if request.param == "host":
        yield request.param
        return
    with cpu.using(vector_bytes=request.param):
        yield request.param


def _check(got, a, b, k):
    want = a.astype(np.float64) @ b.astype(np.float64)
    tol = (2e-6 if got.dtype == np.float32 else 1e-14) * np.sqrt(k)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_shapes(width, m, k, n, dtype):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    _check(ferrule.jit(lambda a, b: a @ b)(a, b), a, b, k)


def test_matmul_of_views_and_accumulation(width):
    """Slices as operands (strided rows, offsets), a transposed operand, and
    a matmul added to another (the init is not always zero after fusion)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, 70)).astype(np.float32)
    w = rng.standard_normal((66, 50)).astype(np.float32)
    f = ferrule.jit(lambda x, w: (x[:, 4:] @ w[:, 2:], x[3:, :66] @ w, x[:, :50] @ w[:50].T))
    got = f(x, w)
    _check(got[0], x[:, 4:], w[:, 2:], 66)
    _check(got[1], x[3:, :66], w, 66)
    _check(got[2], x[:, :50], w[:50].T, 50)


def test_matmul_gradients(width):
    """Reverse mode emits transposed matmuls; all of them take the tile path."""
    rng = np.random.default_rng(8)
    a = rng.standard_normal((24, 40)).astype(np.float64)
    b = rng.standard_normal((40, 36)).astype(np.float64)
    ga, gb = ferrule.jit(ferrule.grad(lambda a, b: ((a @ b) ** 2).sum(), argnums=(0, 1)))(a, b)
    c = a @ b
    np.testing.assert_allclose(ga, 2 * c @ b.T, rtol=1e-12)
    np.testing.assert_allclose(gb, 2 * a.T @ c, rtol=1e-12)


def test_tile_is_used(width):
    low = ferrule.jit(lambda a, b: a @ b).lower(np.zeros((16, 8), np.float32),
                                               np.zeros((8, 64), np.float32))
    text = low.as_text("llvm")
    assert "linalg.matmul" not in text
    lanes = (16 if host_vector_bytes() == 64 else 8) if width == "host" else 8
    assert f"vector<{lanes}xf32>" in text and "llvm.intr.fmuladd" in text


BATCHED = [((4, 17, 33), (4, 33, 65)), ((2, 3, 10, 12), (3, 12, 40)), ((10, 12), (3, 12, 40)),
           ((5, 16, 8), (8, 12)), ((5, 16, 8), (8,)), ((8,), (3, 8, 5)), ((1, 6, 7), (4, 7, 3))]


@pytest.mark.parametrize("sa,sb", BATCHED)
def test_batched_matmul_with_numpy_broadcasting(width, sa, sb):
    rng = np.random.default_rng(len(sa) * 10 + len(sb))
    a = rng.standard_normal(sa).astype(np.float32)
    b = rng.standard_normal(sb).astype(np.float32)
    got = ferrule.jit(lambda a, b: a @ b)(a, b)
    want = a.astype(np.float64) @ b.astype(np.float64)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * np.abs(want).max())


def test_batched_matmul_takes_the_tile_path(width):
    a, b = np.zeros((3, 16, 8), np.float32), np.zeros((3, 8, 64), np.float32)
    text = ferrule.jit(lambda a, b: a @ b).lower(a, b).as_text("llvm")
    assert "llvm.intr.fmuladd" in text and "batch_matmul" not in text


@pytest.mark.parametrize("sa, sb", [((2, 3), (2, 3, 4)), ((3,), (2, 3, 4)), ((5, 2, 3), (4, 3, 2)),
                                    ((4, 2, 3), (3,)), ((2, 3), (3, 4)), ((), (3, 2)), ((3,), (3,))])
def test_dot_has_numpys_nd_semantics(sa, sb):
    """numpy dot, not matmul: for a b of 3+ dims it sums over a's last axis
    and b's second-to-last ((2,3)·(2,3,4) is (2,2,4))."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    got = ferrule.jit(fnp.dot)(a, b)
    want = np.dot(a, b)
    assert np.shape(got) == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    ct = rng.standard_normal(np.shape(want))
    ga, gb = ferrule.grad(lambda a, b: fnp.sum(fnp.dot(a, b) * ct), argnums=(0, 1))(a, b)
    eps = 1e-6
    for x, g, k in ((a, ga, 0), (b, gb, 1)):
        num = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            xp, xm = x.copy(), x.copy()
            xp[i] += eps
            xm[i] -= eps
            args_p, args_m = [a, b], [a, b]
            args_p[k], args_m[k] = xp, xm
            num[i] = (np.sum(np.dot(*args_p) * ct) - np.sum(np.dot(*args_m) * ct)) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8)
