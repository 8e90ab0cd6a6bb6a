"""Programs that once crashed the process, raised internal errors or gave
wrong answers (issue 9), each checked for its numbers — not only for not
failing. The pass-level cause of each has a lit test too:
fuse-pointwise.mlir (@self_transpose, @crossing_groups), forward-copies.mlir
(@dst_read_between, @dst_source_between)."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.runtime import cpu
from models import gate_mix, gru, gru_two_inputs, lstm, lstm_two_inputs


def _numeric_grad(f, args, k, eps=1e-6):
    g = np.zeros_like(args[k])
    for idx in np.ndindex(g.shape):
        ap, am = [a.copy() for a in args], [a.copy() for a in args]
        ap[k][idx] += eps
        am[k][idx] -= eps
        g[idx] = (f(*ap) - f(*am)) / (2 * eps)
    return g


def test_value_plus_its_own_transpose():
    a = np.arange(4.0).reshape(2, 2)
    got = ferrule.jit(lambda a: (a + 1.0) + (a + 1.0).T)(a)
    np.testing.assert_allclose(got, (a + 1) + (a + 1).T)


def test_grad_through_a_transposed_weight_and_its_square():
    W, h = np.full((3, 3), .5), np.ones((5, 3))
    g = ferrule.grad(lambda W, h: fnp.sum(h @ W.T) + fnp.sum(W * W))(W, h)
    np.testing.assert_allclose(g, h.sum(axis=0)[None, :].repeat(3, 0) + 2 * W)


def test_groups_that_would_feed_each_other_stay_apart():
    b = np.random.default_rng(0).uniform(-1, 1, (3, 3))
    got = ferrule.jit(lambda b: fnp.sum(fnp.exp(b) * .5) + fnp.sum(fnp.exp(b) @ fnp.exp(b).T))(b)
    e = np.exp(b)
    np.testing.assert_allclose(got, np.sum(e * .5) + np.sum(e @ e.T), rtol=1e-12)


def test_batched_grad_with_swapped_axes():
    a, b = np.full((3, 1, 4), .5), np.full((1, 1, 4), .3)
    ga, gb = ferrule.grad(lambda a, b: fnp.sum(b @ fnp.swapaxes(a, -1, -2)),
                          argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga, np.broadcast_to(b, (3, 1, 4)))
    np.testing.assert_allclose(gb, a.sum(axis=0, keepdims=True))


@pytest.mark.parametrize("pullback", ["store", "recompute"])
def test_grad_through_a_cast_in_a_pointwise_region(pullback):
    """The stored partial of a region with a cast has the input's dtype."""
    a, b = np.linspace(.5, 2, 3), np.linspace(-1, 1, 3)
    ga, gb = ferrule.jit(ferrule.grad(lambda a, b: fnp.sum((a * b).astype(fnp.float32)),
                                      argnums=(0, 1)), pullback=pullback)(a, b)
    assert ga.dtype == np.float64
    np.testing.assert_allclose(ga, b, rtol=1e-6)
    np.testing.assert_allclose(gb, a, rtol=1e-6)


def test_grad_of_a_comparison_count_is_zero():
    x, y = np.array([.5, -1., 2.]), np.array([1.5, 0., 3.])
    np.testing.assert_array_equal(ferrule.grad(lambda x, y: fnp.sum(x < y))(x, y), 0.0)


def test_second_order_through_max_along_an_axis():
    x = np.array([[1., 4.], [3., 4.], [3., 0.]])
    f = lambda x: fnp.sum(fnp.max(x, axis=0) ** 2)
    t = np.arange(6.0).reshape(3, 2)
    _, hv = ferrule.jvp(ferrule.grad(f), (x,), (t,))
    # d/dx_ij = 2 m_j [x_ij = m_j] / n_j; its jvp: 2 (mean tangent at the max) [tie] / n_j
    m = x.max(axis=0)
    hit = (x == m).astype(float)
    n = hit.sum(axis=0)
    mt = (hit * t).sum(axis=0) / n
    np.testing.assert_allclose(hv, 2 * mt * hit / n)
    gg = ferrule.grad(lambda x: fnp.sum(ferrule.grad(f)(x) * t))(x)
    np.testing.assert_allclose(np.sum(gg * t), np.sum(hv * t))


def _gate_models():
    rng = np.random.default_rng(1)
    B, H = 4, 3
    n = lambda *s: rng.standard_normal(s)
    return {
        "lstm": (lstm, [n(B, 4 * H), n(B, H)]),
        "lstm_two_inputs": (lstm_two_inputs, [n(B, 4 * H), n(B, 4 * H), n(B, H)]),
        "gru": (gru, [n(B, 3 * H), n(B, H)]),
        "gru_two_inputs": (gru_two_inputs, [n(B, 3 * H), n(B, 3 * H), n(B, H)]),
        "gate_mix": (gate_mix, [rng.uniform(.2, 1, (6, 4)), rng.uniform(-3, -.5, (6, 4)),
                                rng.uniform(.2, 1, (2, 4))]),
    }


@pytest.mark.parametrize("name", sorted(_gate_models()))
@pytest.mark.parametrize("pullback", ["recompute", "store"])
def test_gate_cells_vjp_one_thread_and_split(name, pullback):
    """Each gate cell, with one and with several gate inputs: jit(vjp) on
    one thread and split over row chunks give the same cotangents, and
    those match finite differences (float64)."""
    f, args = _gate_models()[name]
    outs = f(*args)
    outs = outs if isinstance(outs, tuple) else (outs,)
    rng = np.random.default_rng(2)
    cts = [rng.standard_normal(o.shape) for o in outs]

    def fb(*a):
        out, pb = ferrule.vjp(f, *a[:len(args)])
        ct = tuple(a[len(args):]) if isinstance(out, tuple) else a[len(args)]
        return (*(out if isinstance(out, tuple) else (out,)), *pb(ct))

    def loss(*a):  # ferrule.numpy outside a trace is numpy: an independent reference
        o = f(*a)
        o = o if isinstance(o, tuple) else (o,)
        return sum(np.sum(x * c) for x, c in zip(o, cts))

    with cpu.using(threads=1):
        one = ferrule.jit(fb, pullback=pullback)(*args, *cts)
    with cpu.using(threads=2, split_min_elements=1, split_min_rows_with_sums=1):
        fs = ferrule.jit(fb, pullback=pullback)
        split = fs(*args, *cts)
        if name != "gate_mix":  # gate_mix mixes rows: it cannot be split
            assert "CPU: 2 threads" in fs.lower(*args, *cts).explain()
    for a, b in zip(one, split):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
    for k in range(len(args)):
        np.testing.assert_allclose(one[len(outs) + k], _numeric_grad(loss, args, k),
                                   rtol=1e-6, atol=1e-8)
    ref = f(*args)
    for a, b in zip(one, ref if isinstance(ref, tuple) else (ref,)):
        np.testing.assert_allclose(a, b)


def test_jvp_of_grad_through_rrule_calling_frule_via_ad():
    """Second order through a custom rrule whose pullback uses
    frule_via_ad: the rule's copy, once its callees are inlined, holds an
    ad.frule_via_ad of its own, which must be lowered before forward mode
    runs (found by tests/fuzz: 'no forward-mode rule for ad.frule_via_ad')."""
    from ferrule import rules

    @rules.primitive
    def xt(x):
        return x * fnp.tanh(x)

    @rules.rrule(xt)
    def _xt_rrule(config, x):
        y, ydot = rules.frule_via_ad(config, (rules.NoTangent(), fnp.ones_like(x)), xt, x)
        return y, lambda ybar: (rules.NoTangent(), ybar * ydot)

    def loss(x):
        return fnp.sum(xt(x) * x)

    def hvp(x, v):
        return ferrule.jvp(ferrule.grad(loss), (x,), (v,))[1]

    rng = np.random.default_rng(0)
    x, v = rng.standard_normal(5), rng.standard_normal(5)
    got = ferrule.jit(hvp)(x, v)
    g = lambda z: ferrule.jit(ferrule.grad(loss))(z)
    eps = 1e-6
    want = (g(x + eps * v) - g(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)
