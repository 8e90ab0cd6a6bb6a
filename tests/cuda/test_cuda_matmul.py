"""The GPU matmul (passes/tile_matmul_gpu.py): 4 × 4 register tiles per
thread plus elementwise remainders, run on the emulated driver against
numpy float64, with the PTX facts ptxas reports."""

import shutil

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.runtime import cuda
from ferrule.runtime.cuda import driver

from cuda_emulator import FakeCuda

SHAPES = [((64, 32), (32, 48)), ((66, 30), (30, 47)), ((3, 16, 8), (3, 8, 20)),
          ((2, 5), (5, 3)), ((7, 9), (9, 4)), ((5, 16, 8), (8, 12)), ((40,), (40, 36))]


def _run(monkeypatch, fun, *args):
    prog = ferrule.compile(fun, *args, target="cuda:sm_90")
    monkeypatch.setattr(driver, "_api", FakeCuda(prog.program))
    monkeypatch.setattr(driver, "_init_error", None)
    return prog.program, cuda.GpuFunction(prog.program.to_artifact())(*args)


@pytest.mark.parametrize("sa,sb", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matmul_on_the_emulated_gpu(monkeypatch, sa, sb, dtype):
    rng = np.random.default_rng(len(sa) + sb[-1])
    a, b = rng.standard_normal(sa).astype(dtype), rng.standard_normal(sb).astype(dtype)
    _, (got,) = _run(monkeypatch, lambda a, b: (a @ b,), a, b)
    want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


def test_each_thread_owns_a_4x4_tile(monkeypatch):
    a = np.ones((64, 32), np.float32)
    b = np.ones((32, 48), np.float32)
    prog, _ = _run(monkeypatch, lambda a, b: (a @ b,), a, b)
    (tile,) = [k for k in prog.kernels.values() if k["kind"] == "parallel"]
    assert tile["elements"] == (64 // 4) * (48 // 4)
    if shutil.which("ptxas"):
        assert tile["spill_stores"] == tile["spill_loads"] == 0


def test_mlp_training_step_on_the_emulated_gpu(monkeypatch):
    """value_and_grad of an MLP loss: tiled matmuls (forward and the
    transposed backward ones), pointwise kernels and a loss reduction."""
    rng = np.random.default_rng(3)
    w1 = rng.standard_normal((20, 32)).astype(np.float32) * 0.2
    w2 = rng.standard_normal((32, 4)).astype(np.float32) * 0.2
    x = rng.standard_normal((24, 20)).astype(np.float32)
    y = rng.standard_normal((24, 4)).astype(np.float32)

    def loss(w1, w2, x, y):
        return fnp.mean((fnp.tanh(x @ w1) @ w2 - y) ** 2)

    step = ferrule.value_and_grad(loss, argnums=(0, 1))
    _, (val, g1, g2) = _run(monkeypatch, step, w1, w2, x, y)
    want_val, (want1, want2) = ferrule.jit(step)(w1, w2, x, y)
    np.testing.assert_allclose(val, want_val, rtol=1e-5)
    np.testing.assert_allclose(g1, want1, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(g2, want2, rtol=1e-4, atol=1e-6)
