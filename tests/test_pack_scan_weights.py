"""pack-scan-weights: a scan step's matmul reads its weight's panels packed
once before the loop (the pass's IR contract: tests/lit/pack-scan-weights.mlir).
Here: it applies to the LSTM's forward and backward steps, and results and
derivatives are those of the program unrolled in Python (whose matmuls pack
per product), at the host's vector width and at AVX2's."""

import numpy as np
import pytest
from mlir import ir

import ferrule
import ferrule.numpy as fnp
from ferrule.dialect import make_context
from ferrule.passes import run_pipeline
from ferrule.runtime import cpu

from models import lstm_scan_step
from opcheck import check_derivatives

T, B, H = 5, 3, 16


@pytest.fixture(params=["host", 32])
def width(request):
    if request.param == "host":
        yield None
        return
    with cpu.using(vector_bytes=request.param):
        yield request.param


def scanned(Wh, gx):
    z = fnp.zeros((B, H), gx.dtype)
    _, hs = ferrule.scan(lstm_scan_step(Wh), (z, z), gx)
    return hs


def unrolled(Wh, gx):
    z = fnp.zeros((B, H), gx.dtype)
    hc, hs = (z, z), []
    for t in range(T):
        hc, h = lstm_scan_step(Wh)(hc, gx[t])
        hs.append(h)
    return fnp.stack(hs)


def _args(dtype):
    rng = np.random.default_rng(0)
    return ((rng.standard_normal((H, 4 * H)) * 0.3).astype(dtype),
            rng.standard_normal((T, B, 4 * H)).astype(dtype))


def test_forward_and_backward_steps_read_packed_weights():
    Wh, gx = _args(np.float32)
    loss = lambda Wh, gx: fnp.sum(scanned(Wh, gx) ** 2)          # noqa: E731
    text = ferrule.jit(ferrule.grad(loss, argnums=(0, 1))).lower(Wh, gx).as_text("ad")
    with make_context(), ir.Location.unknown():
        m = ir.Module.parse(text)
        run_pipeline(m, "pack-scan-weights{lanes-bytes=32}")
        assert m.operation.verify()
        out = str(m)
    # h @ Wh forward, dG @ Wh^T backward (K = 64 >= 16, N = 16: one panel)
    assert out.count("ferrule.packed_matmul = 16") == 2, out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_results_as_unrolled(width, dtype):
    Wh, gx = _args(dtype)
    tol = dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ferrule.jit(scanned)(Wh, gx), ferrule.jit(unrolled)(Wh, gx), **tol)
    w = np.random.default_rng(1).standard_normal((T, B, H)).astype(dtype)

    def loss(f):
        return lambda Wh, gx: fnp.sum(fnp.tanh(f(Wh, gx)) * w)
    got = ferrule.jit(ferrule.grad(loss(scanned), argnums=(0, 1)))(Wh, gx)
    want = ferrule.jit(ferrule.grad(loss(unrolled), argnums=(0, 1)))(Wh, gx)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, **tol)


def test_derivatives(width):
    Wh, gx = _args(np.float64)
    check_derivatives(scanned, (Wh, gx), np.random.default_rng(2))
