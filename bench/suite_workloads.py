"""The workloads of ``bench/suite.py``: what is computed, its inputs, and a
float64 numpy reference every contender is checked against.

Each differentiated workload is written ONCE, against an ``ops`` namespace
(``split tanh exp sin sigmoid``), so that every framework runs the same
math: ferrule, JAX and PyTorch trace or run :attr:`Workload.fn` with their
own ops. Its result is the forward outputs followed by the cotangents of
the primal arguments, in argument order (what ``vjp`` + pullback returns).

The references are hand-derived backward passes in float64 (a tape: every
intermediate kept), independent of every contender;
``tests/test_bench_suite.py`` checks them against finite differences.
Row-wise workloads are checked in row blocks, so that checking 4096x4096
holds no whole float64 array.
"""

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np


# -- the workloads, once, for every framework ------------------------------------------

def lstm_cell(ops, G, c):
    """An LSTM cell's pointwise part: gates G (B, 4H) in i, f, g, o order,
    cell c (B, H) -> (h, c2)."""
    i, f, g, o = ops.split(G, 4)
    c2 = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
    return ops.sigmoid(o) * ops.tanh(c2), c2


def gru_cell(ops, gi, gh, h):
    """A GRU cell in PyTorch's convention: gates from the input ``gi`` and
    from the state ``gh`` (both (B, 3H), r, z, n order),
    ``n = tanh(i_n + r * h_n)``, ``h' = (1 - z) * n + z * h``."""
    ir, iz, i_n = ops.split(gi, 3)
    hr, hz, hn = ops.split(gh, 3)
    r, z = ops.sigmoid(ir + hr), ops.sigmoid(iz + hz)
    n = ops.tanh(i_n + r * hn)
    return (1.0 - z) * n + z * h


def chain10(ops, x):
    """Ten pointwise ops in a chain (mul add tanh mul mul mul exp add sin mul)."""
    a = ops.tanh(x * 0.5 + 0.25)
    c = a * x
    d = ops.exp(c * c * -0.5)
    return ops.sin(d + x) * a


def lstm_step(ops, x, h, c, Wx, Wh, b):
    """A full LSTM step: both projections (two matmuls) and the cell."""
    return lstm_cell(ops, x @ Wx + h @ Wh + b, c)


def add_one(ops, x):
    """The trivial call that measures per-call overhead."""
    return x + 1.0


# -- float64 references (hand-derived backward passes) ---------------------------------

def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _lstm_back(G, c, dh, dc):
    """(h, c2, dG, dc_prev) of :func:`lstm_cell`."""
    i, f, g, o = np.split(G, 4, axis=1)
    si, sf, tg, so = _sig(i), _sig(f), np.tanh(g), _sig(o)
    c2 = sf * c + si * tg
    tc = np.tanh(c2)
    dc2 = dc + dh * so * (1 - tc * tc)
    dG = np.concatenate([dc2 * tg * si * (1 - si), dc2 * c * sf * (1 - sf),
                         dc2 * si * (1 - tg * tg), dh * tc * so * (1 - so)], axis=1)
    return so * tc, c2, dG, dc2 * sf


def _gru_back(gi, gh, h, dout):
    """(h', dgi, dgh, dh) of :func:`gru_cell`."""
    ir, iz, i_n = np.split(gi, 3, axis=1)
    hr, hz, hn = np.split(gh, 3, axis=1)
    r, z = _sig(ir + hr), _sig(iz + hz)
    n = np.tanh(i_n + r * hn)
    dpre = dout * (1 - z) * (1 - n * n)
    dr = dpre * hn * r * (1 - r)
    dz = dout * (h - n) * z * (1 - z)
    return ((1 - z) * n + z * h, np.concatenate([dr, dz, dpre], axis=1),
            np.concatenate([dr, dz, dpre * r], axis=1), dout * z)


def _chain_back(x, dy):
    """(y, dx) of :func:`chain10`."""
    a = np.tanh(x * 0.5 + 0.25)
    c = a * x
    d = np.exp(c * c * -0.5)
    p = d + x
    s = np.sin(p)
    dp = dy * a * np.cos(p)
    dc = dp * d * -c
    da = dy * s + dc * x
    return s * a, dp + dc * a + da * (1 - a * a) * 0.5


def _lstm_step_back(x, h, c, Wx, Wh, b, dh, dc):
    """(h2, c2, dx, dh, dc, dWx, dWh, db) of :func:`lstm_step`."""
    h2, c2, dG, dcp = _lstm_back(x @ Wx + h @ Wh + b, c, dh, dc)
    return h2, c2, dG @ Wx.T, dG @ Wh.T, dcp, x.T @ dG, h.T @ dG, dG.sum(axis=0)


def _add_one_ref(x):
    return (x + 1.0,)


# -- the table of workloads ------------------------------------------------------------

@dataclass(frozen=True)
class Workload:
    """``fn(ops, *primals)``; ``shapes(B, H)``: the argument shapes, primals
    then cotangents (``n_primals`` of them are primals; ``vjp=False``: no
    cotangents, a plain call); ``back(*float64 args)``: the reference
    results in the contenders' order; ``rowwise``: row r of every result
    depends only on row r of every argument (so the reference can run in
    row blocks)."""
    name: str
    label: str
    fn: Callable
    shapes: Callable[[int, int], Tuple[tuple, ...]]
    n_primals: int
    back: Callable
    rowwise: bool = True
    vjp: bool = True
    scale: Optional[Callable[[int, int], Tuple[float, ...]]] = None   # per-argument

    def inputs(self, B: int, H: int, seed: int = 0):
        """The float32 arguments, the same in every process (fixed seed)."""
        rng = np.random.default_rng(seed)
        scales = self.scale(B, H) if self.scale else (1.0,) * len(self.shapes(B, H))
        return tuple((rng.standard_normal(s) * k).astype(np.float32)
                     for s, k in zip(self.shapes(B, H), scales))

    def bytes_moved(self, B: int, H: int) -> int:
        """What any implementation must read and write at least: its inputs
        and its outputs, once each (float32). The outputs of a vjp are the
        forward results (shaped like the cotangent arguments) and one
        cotangent per primal, so they are as large as the inputs (and
        ``add_one``'s result is as large as its argument)."""
        return 2 * 4 * sum(int(np.prod(s)) for s in self.shapes(B, H))

    def max_error(self, args, got, block: int = 256) -> float:
        """The largest ``max|got - ref| / (1 + max|ref|)`` over the results,
        ``ref`` the float64 reference on the same float32 ``args``; a
        result of the wrong shape or count is an ``AssertionError``.
        Row-wise workloads are compared in blocks of rows (bounded memory)."""
        got = [np.asarray(g) for g in got]
        n = args[0].shape[0] if self.rowwise else 1
        step = block if self.rowwise else 1
        diff, size = None, None
        for lo in range(0, n, step):
            rows = (lambda a: a[lo:lo + block]) if self.rowwise else (lambda a: a)
            ref = self.back(*(rows(a).astype(np.float64) for a in args))
            assert len(ref) == len(got), f"{len(got)} results, expected {len(ref)}"
            if diff is None:
                diff, size = [0.0] * len(ref), [0.0] * len(ref)
            for k, (g, r) in enumerate(zip(got, ref)):
                g = rows(g)
                assert g.shape == r.shape, f"result {k}: shape {g.shape}, expected {r.shape}"
                diff[k] = max(diff[k], float(np.max(np.abs(g - r))))
                size[k] = max(size[k], float(np.max(np.abs(r))))
        return max(d / (1.0 + s) for d, s in zip(diff, size))


WORKLOADS = {
    "lstm": Workload(
        "lstm", "LSTM cell", lstm_cell,
        lambda B, H: ((B, 4 * H), (B, H), (B, H), (B, H)), 2, _lstm_back),
    "gru": Workload(
        "gru", "GRU cell", gru_cell,
        lambda B, H: ((B, 3 * H), (B, 3 * H), (B, H), (B, H)), 3, _gru_back),
    "chain": Workload(
        "chain", "10-op chain", chain10, lambda B, H: ((B, H), (B, H)), 1, _chain_back),
    "lstm_step": Workload(
        "lstm_step", "LSTM step (2 matmuls)", lstm_step,
        lambda B, H: ((B, H), (B, H), (B, H), (H, 4 * H), (H, 4 * H), (4 * H,), (B, H), (B, H)),
        6, _lstm_step_back, rowwise=False,
        # weights ~ 1/sqrt(H), as initialised in practice: gates stay O(1)
        scale=lambda B, H: (1.0, 1.0, 1.0, H ** -0.5, H ** -0.5, 0.1, 1.0, 1.0)),
    "add_one": Workload(
        "add_one", "x + 1.0 (4 elements)", add_one, lambda B, H: ((4,),), 1,
        _add_one_ref, rowwise=False, vjp=False),
}
"""Differentiated row-wise cells (the size sweep), the matmul step (one size),
the trivial call (fixed size)."""

SWEPT = ("lstm", "gru", "chain")
