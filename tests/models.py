"""Models shared by the AD test suites (compiler and eager)."""

import ferrule.numpy as fnp
from ferrule.nn import sigmoid, softplus


def lstm(G, c):
    """An LSTM cell's pointwise part: gates G (B, 4H), cell c (B, H)."""
    i, f, g, o = fnp.split(G, 4, axis=1)
    c2 = sigmoid(f) * c + sigmoid(i) * fnp.tanh(g)
    return sigmoid(o) * fnp.tanh(c2), c2


def gru(x, h):
    """A GRU cell's pointwise part: gates x (B, 3H), state h (B, H)."""
    r, z, n = fnp.split(x, 3, axis=1)
    r, z = sigmoid(r), sigmoid(z)
    n = fnp.tanh(n + r * h)
    return (1.0 - z) * n + z * h


def mlp_loss(W1, b1, W2, x, y):
    """A 2-layer MLP with softplus and a mean-squared loss."""
    h = softplus(x @ W1 + b1)
    out = h @ W2
    return fnp.mean((out - y) ** 2)


def gru_two_inputs(gi, gh, h):
    """A GRU cell in PyTorch's convention: gates from the input ``gi`` and
    from the state ``gh`` (both (B, 3H)), ``n = tanh(i_n + r * h_n)``."""
    ir, iz, inn = fnp.split(gi, 3, axis=1)
    hr, hz, hn = fnp.split(gh, 3, axis=1)
    r, z = sigmoid(ir + hr), sigmoid(iz + hz)
    n = fnp.tanh(inn + r * hn)
    return (1.0 - z) * n + z * h


def lstm_two_inputs(gx, gh, c):
    """An LSTM cell whose gates come from the input and the state
    projections separately (both (B, 4H))."""
    return lstm(gx + gh, c)


def gate_mix(x0, x1, x2):
    """Inputs cut into slices and splits, mixed pointwise, concatenated
    back in two results (a program shape that once got wrong answers:
    x0, x1: (6, 4), x2: (2, 4))."""
    v1, v2 = fnp.split(x0, 3, axis=0)[1], fnp.split(x0, 3, axis=0)[2]
    v9 = v1 + v2 * (x2 - v1)
    v11 = x0[1::3]
    v22, v23, v24, v25 = x0[:2], x0[2:4, ...], x0[-2:, ...], x1[:2]
    v28 = sigmoid(fnp.add(v22, v25))
    v31 = v24 * v11 + (1.0 - v24) * v23
    v32 = fnp.concatenate([v28, v24, v23], axis=0)    # built first: the order matters
    return fnp.concatenate([v9, v11, v31], axis=0), v32
