"""The ``keep`` pullback (passes/support/pullback.py): the forward region
writes the results of its expensive ops (tanh, exp, log, ...), the backward
region reads them instead of evaluating those ops again. Chosen by the cost
model inside scan steps ("auto-in-loop"); ``jit(pullback="keep")`` forces it.
Every derivative checked against float64 finite differences, the
dot-product test and second order, and against the other strategies."""

import re

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.nn import sigmoid

from models import lstm_scan_step
from opcheck import check_derivatives

rng = np.random.default_rng(0)

# Pointwise bodies mixing expensive ops whose derivative rules read their
# result (tanh, exp), their operand (log, sin, erf-free atan2, power) or both.
BODIES = {
    "tanh-exp": lambda x, y: fnp.tanh(x * y) * fnp.exp(-x * x) + y,
    "log-sin": lambda x, y: fnp.log(1.5 + fnp.sin(x)) * fnp.cos(y * 0.5),
    "sigmoid-chain": lambda x, y: sigmoid(x) * fnp.tanh(sigmoid(y) * x),
    "pow-atan2-expm1": lambda x, y: fnp.power(1.2 + x * x, y) + fnp.arctan2(x, 2.0 + y * y)
    + fnp.expm1(y * 0.3),
    "sinh-log1p": lambda x, y: fnp.sinh(x * 0.5) * fnp.log1p(y * y),
}


@pytest.mark.parametrize("name", list(BODIES))
def test_strategies_agree(name):
    f = BODIES[name]
    x, y = rng.standard_normal((2, 5, 7))
    loss = lambda x, y: fnp.sum(f(x, y) * fnp.sin(x))          # noqa: E731
    grads = {s: ferrule.jit(ferrule.grad(loss, argnums=(0, 1)), pullback=s)(x, y)
             for s in ("recompute", "store", "keep")}
    for s in ("store", "keep"):
        for a, b in zip(grads[s], grads["recompute"]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    explained = ferrule.jit(ferrule.grad(loss, argnums=(0, 1)), pullback="keep") \
        .lower(x, y).explain()
    assert "pointwise pullback of @" in explained and ": keep (" in explained


def _scanned(body):
    def f(h0, xs):
        def step(h, x):
            h2 = body(h, x)
            return h2, h2 * x
        h, ys = ferrule.scan(step, h0, xs)
        return fnp.sum(ys, axis=0) + h
    return f


@pytest.mark.parametrize("name", list(BODIES))
def test_in_a_scan_step_derivatives(name):
    """In a scan step "auto" keeps; first and second order against finite
    differences, and the dot-product test."""
    f = _scanned(BODIES[name])
    h0, xs = rng.standard_normal((3, 4)) * 0.5, rng.standard_normal((6, 3, 4)) * 0.5
    explained = ferrule.jit(ferrule.grad(lambda h, x: fnp.sum(f(h, x)), argnums=(0, 1))) \
        .lower(h0, xs).explain()
    assert re.search(r"pointwise pullback of @step: keep \(", explained), explained
    check_derivatives(f, (h0, xs), np.random.default_rng(1))


def test_lstm_scan_keeps_its_tanh_results():
    """The char-LSTM's step: the 5 tanh results (3 sigmoids, 2 tanh) and
    the cell state are the residuals; no tanh is evaluated in the backward
    step; gradients equal recompute's."""
    T, B, H = 4, 3, 5
    Wh = rng.standard_normal((H, 4 * H)) * 0.3
    gx = rng.standard_normal((T, B, 4 * H))

    def loss(Wh, gx):
        (h, c), hs = ferrule.scan(lstm_scan_step(Wh), (np.zeros((B, H)),) * 2, gx)
        return fnp.sum(hs * hs) + fnp.sum(c)
    g = ferrule.jit(ferrule.grad(loss, argnums=(0, 1)))
    low = g.lower(Wh, gx)
    assert "pointwise pullback of @step: keep" in low.explain()
    ad = low.as_text("ad")
    bwd = ad[ad.index("@step_scan_bwd("):]
    bwd = bwd[:bwd.index("\n  }\n")]
    assert "math.tanh" not in bwd
    want = ferrule.jit(ferrule.grad(loss, argnums=(0, 1)), pullback="recompute")(Wh, gx)
    for a, b in zip(g(Wh, gx), want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    check_derivatives(loss, (Wh, gx), np.random.default_rng(2))


def test_many_expensive_ops_on_few_inputs_recompute():
    """Keeping costs bytes: five kept results of one input exceed twice the
    input's bytes, so the step's pullback recomputes."""
    body = lambda h, x: (fnp.sin(h) + fnp.cos(h) + fnp.exp(h) + fnp.tanh(h)  # noqa: E731
                         + fnp.log1p(h * h)) * 0.1 + x
    f = _scanned(lambda h, x: body(h, 0.0) + x)
    h0, xs = rng.standard_normal((3, 4)), rng.standard_normal((6, 3, 4))
    explained = ferrule.jit(ferrule.grad(lambda h, x: fnp.sum(f(h, x)), argnums=(0, 1))) \
        .lower(h0, xs).explain()
    assert re.search(r"pointwise pullback of @step: recompute \(", explained), explained


def test_unknown_strategy_is_an_error():
    with pytest.raises(ValueError, match="'keep'"):
        ferrule.jit(lambda x: x, pullback="keeep")
