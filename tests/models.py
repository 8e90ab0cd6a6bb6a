"""Models shared by the test suites (compiler and eager), the lit frontend
test and the benchmarks: each written once, here.

(examples/lstm_cell.py keeps its own LSTM cell: it is the README's runnable
example and must read on its own.)
"""

import ferrule
import ferrule.numpy as fnp
from ferrule import rules
from ferrule.nn import sigmoid, softplus


def lstm_gates(i, f, g, o, c):
    """An LSTM cell's gate math on its four gate pre-activations and cell c."""
    c2 = sigmoid(f) * c + sigmoid(i) * fnp.tanh(g)
    return sigmoid(o) * fnp.tanh(c2), c2


def lstm(G, c):
    """An LSTM cell's pointwise part: gates G (B, 4H), cell c (B, H)."""
    return lstm_gates(*fnp.split(G, 4, axis=1), c)


def lstm_fb(G, c, dh, dc):
    """Forward and backward of :func:`lstm`: (h, c2, dG, dc)."""
    (h, c2), pb = ferrule.vjp(lstm, G, c)
    return (h, c2, *pb((dh, dc)))


def gru(x, h):
    """A GRU cell's pointwise part: gates x (B, 3H), state h (B, H)."""
    r, z, n = fnp.split(x, 3, axis=1)
    r, z = sigmoid(r), sigmoid(z)
    n = fnp.tanh(n + r * h)
    return (1.0 - z) * n + z * h


def gru_fb(x, h, dout):
    """Forward and backward of :func:`gru`: (out, dx, dh)."""
    out, pb = ferrule.vjp(gru, x, h)
    return (out, *pb(dout))


def mlp_loss(W1, b1, W2, x, y):
    """A 2-layer MLP with softplus and a mean-squared loss."""
    h = softplus(x @ W1 + b1)
    out = h @ W2
    return fnp.mean((out - y) ** 2)


# -- the LSTM gates as a primitive with the rule of the original request ----------
# (docs/rules.md): under an AD with forward mode the pullback comes from five
# one-hot frule_via_ad directions in one call; otherwise the rule opts out.

RULE_BRANCHES = []   # the branch lstm_rrule took at each call: "forward" or "opt_out"


@rules.primitive
def lstm_pointwise(i, f, g, o, c):
    return lstm_gates(i, f, g, o, c)


@rules.rrule(lstm_pointwise)
def lstm_rrule(config, i, f, g, o, c):
    if not isinstance(config, rules.HasForwardsMode):
        RULE_BRANCHES.append("opt_out")
        return rules.opt_out()
    RULE_BRANCHES.append("forward")
    xs = (i, f, g, o, c)
    ones = [fnp.ones_like(x) for x in xs]
    dirs = [(rules.NoTangent(), *[ones[j] if j == k else rules.ZeroTangent() for j in range(5)])
            for k in range(5)]
    (h, c2), ydots = rules.frule_via_ad(config, dirs, lstm_pointwise, *xs)

    def lstm_pullback(ybar):
        dh, dc = ybar
        return (rules.NoTangent(), *[dh * ydots[k][0] + dc * ydots[k][1] for k in range(5)])
    return (h, c2), lstm_pullback
