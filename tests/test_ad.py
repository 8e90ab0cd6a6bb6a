"""Derivatives from the AD passes, checked numerically.

Every case: gradients against float64 central finite differences, and the
dot-product test between forward and reverse mode, <J·ẋ, ȳ> = <ẋ, Jᵀ·ȳ>.
"""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.nn import logsumexp, relu, sigmoid
from models import gru, lstm, mlp_loss


def rng_args(shapes, seed=0, positive=False):
    rng = np.random.default_rng(seed)
    out = []
    for s in shapes:
        a = rng.standard_normal(s)
        out.append(np.abs(a) + 0.5 if positive else a)
    return out


CASES = {
    # name: (function, input shapes, positive inputs)
    "lstm": (lstm, [(3, 16), (3, 4)], False),
    "gru": (gru, [(3, 12), (3, 4)], False),
    "mlp": (mlp_loss, [(5, 7), (7,), (7, 2), (4, 5), (4, 2)], False),
    "logsumexp": (lambda x: logsumexp(x, axis=1), [(3, 5)], False),
    "broadcast": (lambda x, b: fnp.tanh(x * b + 1.0) / (b + 3.0), [(3, 4), (4,)], False),
    "reduce_max": (lambda x: fnp.max(x * x, axis=0) + fnp.sum(x, axis=1, keepdims=True), [(3, 4)], False),
    "transpose_reshape": (lambda x: fnp.reshape(fnp.transpose(x), (2, 6)) * 2.0, [(3, 4)], False),
    "slices_concat": (lambda x: fnp.concatenate([x[:, 1:], x[:, :1] * x[:, :1]], axis=1), [(3, 4)], False),
    "math": (lambda x: fnp.exp(-x) + fnp.log(x) + fnp.sqrt(x) + fnp.sin(x) * fnp.cos(x) + x ** 3
             + fnp.abs(x - 1.0) + fnp.maximum(x, 1.0) + fnp.minimum(x, 1.0) + fnp.log1p(x)
             + fnp.expm1(-x) + relu(x - 1.0) + fnp.power(x, 1.5), [(2, 3)], True),
    "where": (lambda x, y: fnp.where(x > y, x * y, y - x), [(3, 4), (3, 4)], False),
    "matmul_vec": (lambda A, v: fnp.tanh(A @ v), [(3, 4), (4,)], False),
    # batch_matmul with a broadcast batch dim, and a stack times one matrix
    "matmul_batched": (lambda A, B: fnp.tanh(A @ B), [(2, 3, 2, 4), (3, 4, 2)], False),
    "matmul_stack_by_matrix": (lambda A, W, v: (A @ W) * 2.0 + v @ W, [(2, 3, 4), (4, 5), (4,)],
                               False),
}


def _flat_outs(out):
    return list(out) if isinstance(out, tuple) else [out]


def _numeric_vjp(f, args, cts, eps=1e-6):
    """Jᵀ·ȳ by central finite differences in float64."""
    grads = []
    for k, a in enumerate(args):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            ap, am = [x.copy() for x in args], [x.copy() for x in args]
            ap[k][idx] += eps
            am[k][idx] -= eps
            fp = _flat_outs(ferrule.jit(f)(*ap))
            fm = _flat_outs(ferrule.jit(f)(*am))
            g[idx] = sum(np.sum((p - m) * c) for p, m, c in zip(fp, fm, cts)) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize("name", sorted(CASES))
def test_vjp_matches_finite_differences(name):
    f, shapes, positive = CASES[name]
    args = rng_args(shapes, positive=positive)
    outs = _flat_outs(ferrule.jit(f)(*args))
    cts = rng_args([np.shape(o) for o in outs], seed=1)

    def fb(*a):
        out, pb = ferrule.vjp(f, *a[:len(args)])
        ct = tuple(a[len(args):]) if isinstance(out, tuple) else a[len(args)]
        return pb(ct)

    got = ferrule.jit(fb)(*args, *cts)
    want = _numeric_vjp(f, args, cts)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_dot_product_forward_vs_reverse(name):
    f, shapes, positive = CASES[name]
    args = rng_args(shapes, positive=positive)
    tangents = rng_args(shapes, seed=2)
    outs = _flat_outs(ferrule.jit(f)(*args))
    cts = rng_args([np.shape(o) for o in outs], seed=3)

    def fwd(*a):
        return ferrule.jvp(f, tuple(a[:len(args)]), tuple(a[len(args):]))[1]

    def rev(*a):
        out, pb = ferrule.vjp(f, *a[:len(args)])
        ct = tuple(a[len(args):]) if isinstance(out, tuple) else a[len(args)]
        return pb(ct)

    jt = _flat_outs(ferrule.jit(fwd)(*args, *tangents))
    jtct = ferrule.jit(rev)(*args, *cts)
    lhs = sum(np.sum(a * b) for a, b in zip(jt, cts))
    rhs = sum(np.sum(a * b) for a, b in zip(tangents, jtct))
    assert lhs == pytest.approx(rhs, rel=1e-10, abs=1e-10)


def test_grad_and_value_and_grad():
    x = np.linspace(-2, 2, 12).reshape(3, 4)
    f = lambda x: fnp.sum(fnp.tanh(x) * x)
    g = ferrule.grad(f)(x)
    np.testing.assert_allclose(g, (1 - np.tanh(x) ** 2) * x + np.tanh(x), rtol=1e-12)
    v, g2 = ferrule.value_and_grad(f)(x)
    np.testing.assert_allclose(v, np.sum(np.tanh(x) * x), rtol=1e-12)
    np.testing.assert_allclose(g2, g, rtol=1e-12)


def test_grad_argnums_and_unused_input_gets_zeros():
    x, y, z = rng_args([(3,), (3,), (3,)])
    f = lambda x, y, z: fnp.sum(x * y)
    gx, gz = ferrule.grad(f, argnums=(0, 2))(x, y, z)
    np.testing.assert_allclose(gx, y, rtol=1e-12)
    np.testing.assert_array_equal(gz, np.zeros(3))


def test_broadcast_cotangent_summed_to_input_shape():
    x, b = rng_args([(3, 4), (4,)])
    gb = ferrule.grad(lambda x, b: fnp.sum(x * b), argnums=1)(x, b)
    assert gb.shape == (4,)
    np.testing.assert_allclose(gb, x.sum(axis=0), rtol=1e-12)


def test_second_order_grad_of_grad_and_jvp_of_jvp():
    x = np.linspace(-1.5, 1.5, 5)
    f = lambda x: fnp.sum(fnp.tanh(x))
    gg = ferrule.grad(lambda x: fnp.sum(ferrule.grad(f)(x)))(x)
    t = np.tanh(x)
    np.testing.assert_allclose(gg, -2 * t * (1 - t ** 2), rtol=1e-10)

    g = lambda x: fnp.sin(x)
    d1 = lambda x: ferrule.jvp(g, (x,), (fnp.ones_like(x),))[1]
    d2 = ferrule.jvp(d1, (x,), (np.ones_like(x),))[1]
    np.testing.assert_allclose(d2, -np.sin(x), rtol=1e-10)


def test_float32_gradients():
    x = np.linspace(-2, 2, 8).astype(np.float32)
    g = ferrule.grad(lambda x: fnp.sum(sigmoid(x)))(x)
    assert g.dtype == np.float32
    s = 1 / (1 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(g, s * (1 - s), rtol=1e-5, atol=1e-6)


def test_grad_of_non_scalar_is_a_clear_error():
    with pytest.raises(ferrule.ShapeError, match=r"output must be a scalar; got shape \(3,\)"):
        ferrule.grad(lambda x: x * 2.0)(np.ones(3))


def test_lstm_vjp_is_one_fused_loop_nest_without_temporaries():
    """jit(vjp) of the LSTM cell: the forward outputs and the backward
    cotangents come out of ONE pointwise region; dG's four gate slices are
    written straight into dG (no temporaries, no zero fill, no copies)."""
    B, H = 8, 16
    G, c, dh, dc = rng_args([(B, 4 * H), (B, H), (B, H), (B, H)])
    G, c, dh, dc = (a.astype(np.float32) for a in (G, c, dh, dc))

    def fb(G, c, dh, dc):
        (h, c2), pb = ferrule.vjp(lstm, G, c)
        dG, dcp = pb((dh, dc))
        return h, c2, dG, dcp

    low = ferrule.jit(fb).lower(G, c, dh, dc)
    ad = low.as_text("ad")
    assert ad.count("linalg.generic") == 1
    assert "dense<0.0" not in ad
    llvm = low.as_text("llvm")
    assert "llvm.call @malloc" not in llvm and "_mlir_memref_to_llvm_alloc" not in llvm
    assert "memcpy" not in llvm


def test_max_splits_the_cotangent_among_ties():
    x = np.array([1.0, 3.0, 3.0])
    np.testing.assert_allclose(ferrule.grad(lambda x: fnp.max(x))(x), [0.0, 0.5, 0.5])
    t = np.array([0.0, 1.0, 2.0])
    _, yt = ferrule.jvp(lambda x: fnp.max(x), (x,), (t,))
    np.testing.assert_allclose(yt, 1.5)  # the mean tangent of the tied maxima
    X = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]])
    np.testing.assert_allclose(ferrule.grad(lambda x: fnp.sum(fnp.max(x, axis=1)))(X),
                               [[0, 0.5, 0.5], [1, 0, 0]])


@pytest.mark.parametrize("pullback", ["recompute", "store", "auto"])
def test_pullback_strategies_agree(pullback):
    """Both ways of differentiating a pointwise region give the same numbers;
    the cost model keeps partials when the region has many inactive inputs."""
    x, a, b, c, d, ct = rng_args([(4, 8)] * 6)

    def fb(x, a, b, c, d, ct):
        y, pb = ferrule.vjp(lambda x: fnp.tanh(x * a + b * c - d), x)
        return pb(ct)[0]

    f = ferrule.jit(fb, pullback=pullback)
    want = (1 - np.tanh(x * a + b * c - d) ** 2) * a * ct
    np.testing.assert_allclose(f(x, a, b, c, d, ct), want, rtol=1e-12, atol=1e-15)
    report = f.lower(x, a, b, c, d, ct).explain()
    chosen = "store" if pullback == "auto" else pullback
    assert f"pointwise pullback of @lambda: {chosen} (recompute re-reads 1280 B, " \
           f"storing partials moves 512 B)" in report
