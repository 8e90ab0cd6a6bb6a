"""Test cases shared by the GPU compile tests, the launcher tests and the
benchmark: MLIR sources and their numpy float64 references.

numpy only (no MLIR, no ferrule): the launcher tests and bench/gpu_bench.py
import this on a GPU machine that has neither.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np

MAP2 = "#map = affine_map<(d0, d1) -> (d0, d1)>"


def lstm_forward_mlir(b: int, h: int) -> str:
    """The fused LSTM cell forward region as ferrule emits it (gates given,
    sigmoid written as 1/(1+exp(-x))). Returns (h, c)."""
    t = f"tensor<{b}x{h}xf32>"
    return f"""{MAP2}
func.func @lstm(%a0: {t}, %a1: {t}, %a2: {t}, %a3: {t}, %a4: {t}) -> ({t}, {t}) {{
  %0 = tensor.empty() : {t}
  %1 = tensor.empty() : {t}
  %2:2 = linalg.generic {{indexing_maps = [#map, #map, #map, #map, #map, #map, #map],
      iterator_types = ["parallel", "parallel"]}}
      ins(%a0, %a1, %a2, %a3, %a4 : {t}, {t}, {t}, {t}, {t}) outs(%0, %1 : {t}, {t}) {{
  ^bb0(%in: f32, %in_0: f32, %in_1: f32, %in_2: f32, %in_3: f32, %out: f32, %out_4: f32):
    %cst = arith.constant 1.000000e+00 : f32
    %3 = arith.negf %in : f32
    %4 = math.exp %3 : f32
    %5 = arith.addf %cst, %4 : f32
    %6 = arith.divf %cst, %5 : f32
    %7 = math.tanh %in_0 : f32
    %8 = math.tanh %in_1 : f32
    %9 = math.tanh %in_2 : f32
    %10 = arith.mulf %7, %in_3 : f32
    %11 = arith.mulf %6, %8 : f32
    %12 = arith.addf %10, %11 : f32
    %13 = math.tanh %12 : f32
    %14 = arith.mulf %9, %13 : f32
    linalg.yield %12, %14 : f32, f32
  }} -> ({t}, {t})
  return %2#1, %2#0 : {t}, {t}
}}
"""


def lstm_forward_numpy(a0, a1, a2, a3, a4):
    """Reference for :func:`lstm_forward_mlir`: returns (h, c)."""
    c = np.tanh(a1) * a4 + (1 / (1 + np.exp(-a0))) * np.tanh(a2)
    return np.tanh(a3) * np.tanh(c), c


# A function touching every host-side shape of the plan: matmul and
# reductions (inner serial loops), a reduction to a 0-d tensor (a one-thread
# kernel), a transpose, slices and reshapes (views into one buffer), a dense
# constant (a constant buffer), an input returned as is (a copy), and a
# reduction over the leading dimension (serial loop inside a parallel one),
# and a pointwise result only a reduction reads (a temporary buffer).
MIX_MLIR = """
func.func @mix(%a: tensor<8x16xf32>, %b: tensor<16x4xf32>, %c: tensor<4x8xf32>)
    -> (tensor<8x4xf32>, tensor<8xf32>, tensor<4x8xf32>, tensor<f32>,
        tensor<2x4xf32>, tensor<32xf32>, tensor<4x8xf32>, tensor<4x8xf32>,
        tensor<16xf32>, tensor<8xf32>) {
  %z = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<8x4xf32>
  %f = linalg.fill ins(%z : f32) outs(%e : tensor<8x4xf32>) -> tensor<8x4xf32>
  %mm = linalg.matmul ins(%a, %b : tensor<8x16xf32>, tensor<16x4xf32>)
                      outs(%f : tensor<8x4xf32>) -> tensor<8x4xf32>
  %e2 = tensor.empty() : tensor<8xf32>
  %f2 = linalg.fill ins(%z : f32) outs(%e2 : tensor<8xf32>) -> tensor<8xf32>
  %r = linalg.reduce ins(%a : tensor<8x16xf32>) outs(%f2 : tensor<8xf32>) dimensions = [1]
    (%in: f32, %init: f32) { %s = arith.addf %in, %init : f32
      linalg.yield %s : f32 }
  %e3 = tensor.empty() : tensor<4x8xf32>
  %t = linalg.transpose ins(%mm : tensor<8x4xf32>) outs(%e3 : tensor<4x8xf32>) permutation = [1, 0]
  %e4 = tensor.empty() : tensor<f32>
  %f4 = linalg.fill ins(%z : f32) outs(%e4 : tensor<f32>) -> tensor<f32>
  %r2 = linalg.reduce ins(%r : tensor<8xf32>) outs(%f4 : tensor<f32>) dimensions = [0]
    (%in: f32, %init: f32) { %s = arith.addf %in, %init : f32
      linalg.yield %s : f32 }
  %sl = tensor.extract_slice %t[1, 2] [2, 4] [1, 1] : tensor<4x8xf32> to tensor<2x4xf32>
  %cl = tensor.collapse_shape %t [[0, 1]] : tensor<4x8xf32> into tensor<32xf32>
  %k = arith.constant dense<[[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
      [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5], [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0],
      [9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0]]> : tensor<4x8xf32>
  %ad = arith.addf %c, %k : tensor<4x8xf32>
  %e5 = tensor.empty() : tensor<16xf32>
  %f5 = linalg.fill ins(%z : f32) outs(%e5 : tensor<16xf32>) -> tensor<16xf32>
  %r0 = linalg.reduce ins(%a : tensor<8x16xf32>) outs(%f5 : tensor<16xf32>) dimensions = [0]
    (%in: f32, %init: f32) { %s = arith.addf %in, %init : f32
      linalg.yield %s : f32 }
  %sq = arith.mulf %a, %a : tensor<8x16xf32>
  %e6 = tensor.empty() : tensor<8xf32>
  %f6 = linalg.fill ins(%z : f32) outs(%e6 : tensor<8xf32>) -> tensor<8xf32>
  %ss = linalg.reduce ins(%sq : tensor<8x16xf32>) outs(%f6 : tensor<8xf32>) dimensions = [1]
    (%in: f32, %init: f32) { %s = arith.addf %in, %init : f32
      linalg.yield %s : f32 }
  return %mm, %r, %t, %r2, %sl, %cl, %c, %ad, %r0, %ss : tensor<8x4xf32>, tensor<8xf32>,
    tensor<4x8xf32>, tensor<f32>, tensor<2x4xf32>, tensor<32xf32>, tensor<4x8xf32>,
    tensor<4x8xf32>, tensor<16xf32>, tensor<8xf32>
}
"""
MIX_SHAPES = [(8, 16), (16, 4), (4, 8)]
_MIX_K = np.array([[1, 2, 3, 4, 5, 6, 7, 8], [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5],
                   [0, 1, 0, 1, 0, 1, 0, 1], [9, 8, 7, 6, 5, 4, 3, 2]], np.float32)


def mix_numpy(a, b, c):
    """Reference for :data:`MIX_MLIR`."""
    mm = a @ b
    r = a.sum(1)
    t = mm.T
    return (mm, r, t, np.array(r.sum(), r.dtype), t[1:3, 2:6], t.reshape(32), c,
            c + _MIX_K.astype(c.dtype), a.sum(0), (a * a).sum(1))


# ---------------------------------------------------- LSTM / GRU cells (numpy)

def _sig(x):
    return 1 / (1 + np.exp(-x))


def lstm_fb_numpy(G, c, dh, dc):
    """LSTM cell forward and backward, gates G = [i | f | g | o] (B, 4H):
    returns (h, c2, dG, dc_prev) for output cotangents (dh, dc2)."""
    gi, gf, gg, go = np.split(G, 4, axis=1)
    i, f, o, g = _sig(gi), _sig(gf), _sig(go), np.tanh(gg)
    c2 = f * c + i * g
    tc = np.tanh(c2)
    h = o * tc
    dct = dc + dh * o * (1 - tc * tc)
    dG = np.concatenate([dct * g * i * (1 - i), dct * c * f * (1 - f),
                         dct * i * (1 - g * g), dh * tc * o * (1 - o)], axis=1)
    return h, c2, dG, dct * f


def gru_fb_numpy(x, h, dout):
    """GRU cell (x = [r | z | n] pre-activations (B, 3H), state h):
    out = (1-z)*n + z*h with n = tanh(x_n + r*h); returns (out, dx, dh)."""
    xr, xz, xn = np.split(x, 3, axis=1)
    r, z = _sig(xr), _sig(xz)
    n = np.tanh(xn + r * h)
    out = (1 - z) * n + z * h
    dn_pre = dout * (1 - z) * (1 - n * n)
    dx = np.concatenate([dn_pre * h * r * (1 - r), dout * (h - n) * z * (1 - z),
                         dn_pre], axis=1)
    return out, dx, dout * z + dn_pre * r


def mlp_step_numpy(w1, w2, x, y):
    """One training step's loss and gradients of a 2-layer MLP:
    loss = mean((tanh(x @ w1) @ w2 - y)**2); returns (loss, dw1, dw2)."""
    h = np.tanh(x @ w1)
    r = h @ w2 - y
    dr = 2 * r / r.size
    dh = (dr @ w2.T) * (1 - h * h)
    return np.array(np.mean(r * r)), x.T @ dh, h.T @ dr


def mlp_flops(B, H):
    """Multiply-add flops of :func:`mlp_step_numpy` (x: B×H, w1: H×H, w2:
    H×H/4): the forward, and the backward's two weight and one data product."""
    return 2 * B * H * H * (1 + 1 / 4 + 1 / 4 + 1 / 4 + 1)


# name -> (input shapes for B, H; reference). Argument and result order of
# the compiled functions (see bench/build_gpu_artifacts.py). The cells are
# row-local (row r of every output depends on row r of the inputs only),
# so a subset of rows checks them; the MLP step is not.
CELLS = {
    "lstm": (lambda B, H: [(B, 4 * H), (B, H), (B, H), (B, H)], lstm_fb_numpy),
    "gru": (lambda B, H: [(B, 3 * H), (B, H), (B, H)], gru_fb_numpy),
}
TRAINING = {
    "mlp": (lambda B, H: [(H, H), (H, H // 4), (B, H), (B, H // 4)], mlp_step_numpy),
}


def load_launcher():
    """``runtime/cuda`` as the top-level package ``ferrule_cuda``, without
    importing ferrule (whose ``__init__`` needs MLIR)."""
    if "ferrule_cuda" in sys.modules:
        return sys.modules["ferrule_cuda"]
    pkg = Path(__file__).resolve().parents[2] / "runtime" / "cuda"
    spec = importlib.util.spec_from_file_location(
        "ferrule_cuda", pkg / "__init__.py", submodule_search_locations=[str(pkg)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ferrule_cuda"] = mod
    spec.loader.exec_module(mod)
    return mod
