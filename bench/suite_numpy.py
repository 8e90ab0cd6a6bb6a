"""The hand-fused numpy contender of ``bench/suite.py``: each workload's
forward and backward written by hand, as a careful numpy user would.

"Fused" by hand means: no tape of intermediates kept for a backward sweep
(the backward reuses the forward's few gate activations), ufuncs write into
the results' own column blocks or reuse a scratch array (``out=``), and
``1 - s*s``-style terms are formed in place. Every call still allocates its
results (fresh outputs, as every contender in the headline table), and
numpy runs each ufunc on one thread.
"""

import numpy as np


def _sig(x, out=None):
    """sigmoid(x) into ``out`` (a new array if None), with no temporary."""
    out = np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1.0
    return np.reciprocal(out, out=out)


def _gate_grad(out, s, *factors):
    """out = s * (1 - s) * factors... (a sigmoid gate's cotangent), with no
    temporary."""
    np.subtract(1.0, s, out=out)
    out *= s
    for f in factors:
        out *= f
    return out


def lstm(G, c, dh, dc):
    """(h, c2, dG, dc_prev) of the LSTM cell."""
    H = c.shape[1]
    si, sf = _sig(G[:, :H]), _sig(G[:, H:2 * H])
    tg, so = np.tanh(G[:, 2 * H:3 * H]), _sig(G[:, 3 * H:])
    c2 = sf * c
    t = si * tg
    c2 += t
    tc = np.tanh(c2)
    h = so * tc
    # dc2 = dc + dh * so * (1 - tc^2), built in t
    np.multiply(tc, tc, out=t)
    np.subtract(1.0, t, out=t)
    t *= so
    t *= dh
    t += dc
    dG = np.empty_like(G)                 # each gate's cotangent written in its block
    _gate_grad(dG[:, :H], si, t, tg)
    _gate_grad(dG[:, H:2 * H], sf, t, c)
    dGg = dG[:, 2 * H:3 * H]              # (1 - tg^2) * dc2 * si
    np.multiply(tg, tg, out=dGg)
    np.subtract(1.0, dGg, out=dGg)
    dGg *= t
    dGg *= si
    _gate_grad(dG[:, 3 * H:], so, dh, tc)
    t *= sf                               # dc_prev = dc2 * sf
    return h, c2, dG, t


def gru(gi, gh, h, dout):
    """(h', dgi, dgh, dh) of the GRU cell (PyTorch's convention)."""
    H = h.shape[1]
    r = _sig(np.add(gi[:, :H], gh[:, :H]))
    z = _sig(np.add(gi[:, H:2 * H], gh[:, H:2 * H]))
    n = r * gh[:, 2 * H:]
    n += gi[:, 2 * H:]
    np.tanh(n, out=n)
    hn = h - n                            # h' = n + z * (h - n)
    out = z * hn
    out += n
    dgi, dgh = np.empty_like(gi), np.empty_like(gh)
    dpre = dgi[:, 2 * H:]                 # dout * (1 - z) * (1 - n^2)
    np.multiply(n, n, out=dpre)
    np.subtract(1.0, dpre, out=dpre)
    dpre *= dout
    dpre *= 1.0 - z
    _gate_grad(dgi[:, :H], r, dpre, gh[:, 2 * H:])      # dr: dpre * h_n * r(1 - r)
    _gate_grad(dgi[:, H:2 * H], z, dout, hn)            # dz: dout * (h - n) * z(1 - z)
    dgh[:, :2 * H] = dgi[:, :2 * H]
    np.multiply(dpre, r, out=dgh[:, 2 * H:])
    return out, dgi, dgh, dout * z


def chain(x, dy):
    """(y, dx) of the 10-op chain."""
    a = x * 0.5
    a += 0.25
    np.tanh(a, out=a)
    c = a * x
    d = c * c
    d *= -0.5
    np.exp(d, out=d)
    p = d + x
    y = np.sin(p)
    s = y.copy()                          # sin(p), needed by the backward
    y *= a
    np.cos(p, out=p)                      # dp = dy * a * cos(p)
    p *= a
    p *= dy
    # dc = dp * d * -c, then dx = dp + dc * a + (dy * s + dc * x) * (1 - a^2) / 2
    d *= p
    d *= c
    np.negative(d, out=d)
    da = d * x
    s *= dy
    da += s
    np.multiply(a, a, out=c)
    np.subtract(1.0, c, out=c)
    da *= c
    da *= 0.5
    d *= a
    dx = p
    dx += d
    dx += da
    return y, dx


def lstm_step(x, h, c, Wx, Wh, b, dh, dc):
    """(h2, c2, dx, dh, dc, dWx, dWh, db) of the LSTM step (numpy's BLAS
    for the four matmuls of the backward and two of the forward)."""
    G = x @ Wx
    G += h @ Wh
    G += b
    h2, c2, dG, dcp = lstm(G, c, dh, dc)
    return h2, c2, dG @ Wx.T, dG @ Wh.T, dcp, x.T @ dG, h.T @ dG, dG.sum(axis=0)


def add_one(x):
    return x + 1.0


FUNCTIONS = {"lstm": lstm, "gru": gru, "chain": chain, "lstm_step": lstm_step,
             "add_one": add_one}
