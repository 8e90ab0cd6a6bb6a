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


def lstm_scan_step(Wh):
    """A ``ferrule.scan`` step of an LSTM with recurrent weight ``Wh``:
    ``(h, c), gx_t -> (h', c'), h'``."""
    def step(hc, gx):
        h, c = hc
        h2, c2 = lstm(gx + h @ Wh, c)
        return (h2, c2), h2
    return step


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
