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
