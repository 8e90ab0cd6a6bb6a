"""What a language model needs, together: one_hot, softmax, log_softmax,
cross_entropy, stop_gradient, and a small char-LSTM training step (gather
embedding, scan, cross-entropy, Adam with a traced learning rate) plus
sampling, all inside jit."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule import nn
from ferrule import random as fr

RNG = np.random.default_rng(0)


def _np_log_softmax(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_log_softmax_cross_entropy_values(dtype, axis):
    x = (RNG.standard_normal((4, 5, 6)) * 30).astype(dtype)     # large: stability matters
    lab_shape = tuple(s for d, s in enumerate(x.shape) if d != axis % 3)
    labels = RNG.integers(0, x.shape[axis], lab_shape).astype(np.int32)
    f = ferrule.jit(lambda x, y: (nn.softmax(x, axis), nn.log_softmax(x, axis),
                                  nn.cross_entropy(x, y, axis)))
    sm, lsm, ce = f(x, labels)
    want = _np_log_softmax(x.astype(np.float64), axis)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    assert sm.dtype == lsm.dtype == ce.dtype == dtype
    np.testing.assert_allclose(lsm, want, **tol)
    np.testing.assert_allclose(sm, np.exp(want), **tol)
    picked = np.take_along_axis(want, np.expand_dims(labels, axis % 3), axis % 3)
    np.testing.assert_allclose(ce, -np.squeeze(picked, axis % 3), **tol)
    # outside a trace: plain numpy, same numbers
    np.testing.assert_allclose(nn.cross_entropy(x, labels, axis), ce, **tol)


def test_cross_entropy_gradient_is_softmax_minus_one_hot():
    x = RNG.standard_normal((8, 10))
    y = RNG.integers(0, 10, 8)
    g = ferrule.grad(lambda x, y: fnp.mean(nn.cross_entropy(x, y)))(x, y)
    np.testing.assert_allclose(g, (np.exp(_np_log_softmax(x)) - np.eye(10)[y]) / 8, rtol=1e-12,
                               atol=1e-15)
    # second order: the Hessian-vector product against finite differences
    t = RNG.standard_normal(x.shape)
    gfun = ferrule.jit(ferrule.grad(lambda x, y: fnp.sum(nn.cross_entropy(x, y))))
    _, hvp = ferrule.jvp(ferrule.grad(lambda x, y: fnp.sum(nn.cross_entropy(x, y))), (x, y),
                         (t, np.zeros(8, ferrule.float0)))
    eps = 1e-6
    np.testing.assert_allclose(hvp, (gfun(x + eps * t, y) - gfun(x - eps * t, y)) / (2 * eps),
                               rtol=1e-6, atol=1e-8)


def test_log_softmax_gradient_finite_differences():
    x = RNG.standard_normal((3, 4))
    W = RNG.standard_normal((3, 4))
    f = lambda x: fnp.sum(nn.log_softmax(x, axis=0) * W)   # noqa: E731
    g = ferrule.grad(f)(x)
    jf = ferrule.jit(f)
    eps = 1e-6
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        num[i] = (jf(x + d) - jf(x - d)) / (2 * eps)
    np.testing.assert_allclose(g, num, rtol=1e-7, atol=1e-9)


def test_one_hot():
    idx = np.array([[0, 3], [-1, 4]], np.int32)       # out of range: a row of zeros
    got = ferrule.jit(lambda i: (nn.one_hot(i, 4), nn.one_hot(i, 4, dtype=np.float64)))(idx)
    want = (idx[..., None] == np.arange(4)).astype(np.float32)
    assert got[0].dtype == np.float32 and got[1].dtype == np.float64
    np.testing.assert_array_equal(got[0], want)
    np.testing.assert_array_equal(nn.one_hot(idx, 4), want)


def test_stop_gradient_in_every_mode_and_order():
    x = np.array([3.0, -2.0])
    sg = ferrule.stop_gradient
    np.testing.assert_array_equal(ferrule.grad(lambda x: fnp.sum(x * sg(x)))(x), x)
    _, t = ferrule.jvp(lambda x: x * sg(x), (x,), (np.ones(2),))
    np.testing.assert_array_equal(t, x)
    h = ferrule.grad(lambda x: fnp.sum(ferrule.grad(lambda y: fnp.sum(y ** 3 * sg(y)))(x)))(x)
    np.testing.assert_allclose(h, 6 * x * x)        # d/dx (3 x^2 * sg(x)) = 6 x * x
    _, hv = ferrule.jvp(ferrule.grad(lambda y: fnp.sum(y ** 3 * sg(y))), (x,), (np.ones(2),))
    np.testing.assert_allclose(hv, 6 * x * x)
    assert ferrule.grad(lambda x: fnp.sum(sg(x) ** 2))(x).tolist() == [0.0, 0.0]
    a, b = sg((x, 2 * x))                           # pytrees; plain numpy outside a trace
    assert a is x and np.array_equal(b, 2 * x)
    text = ferrule.jit(lambda x: sg(x) * x).lower(x).as_text("traced")
    assert '"ad.stop_gradient"' in text
    assert "ad.stop_gradient" not in ferrule.jit(lambda x: sg(x) * x).lower(x).as_text("ad")


# -- a char-LSTM language model, end to end ---------------------------------------

V, H, B, T = 11, 8, 4, 6


def init(key):
    ks = fr.split(key, 3)
    return (fr.normal(ks[0], (V, H)) * 0.5,
            fr.normal(ks[1], (2 * H, 4 * H)) * (2 * H) ** -0.5,
            fnp.zeros(4 * H),
            fr.normal(ks[2], (H, V)) * H ** -0.5)


def loss(params, tokens):
    E, W, b, Wo = params

    def step(carry, tok):
        h, c = carry
        G = fnp.concatenate([E[tok], h], axis=1) @ W + b
        i, f, g, o = fnp.split(G, 4, axis=1)
        c = nn.sigmoid(f) * c + nn.sigmoid(i) * fnp.tanh(g)
        h = nn.sigmoid(o) * fnp.tanh(c)
        return (h, c), h

    h0 = fnp.zeros((tokens.shape[1], H), dtype=E.dtype)
    _, hs = ferrule.scan(step, (h0, h0), tokens[:-1])
    logits = hs @ Wo                                      # (T, B, V)
    return fnp.mean(nn.cross_entropy(logits, tokens[1:]))


def adam(params, grads, m, v, t, lr):
    b1, b2, eps = 0.9, 0.999, 1e-8
    m = tuple(b1 * mi + (1 - b1) * g for mi, g in zip(m, grads))
    v = tuple(b2 * vi + (1 - b2) * g * g for vi, g in zip(v, grads))
    corr = fnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
    params = tuple(p - lr * corr * mi / (fnp.sqrt(vi) + eps) for p, mi, vi in zip(params, m, v))
    return params, m, v


@ferrule.jit
def train_step(params, m, v, t, tokens, lr):
    value, grads = ferrule.value_and_grad(loss)(params, tokens)
    params, m, v = adam(params, grads, m, v, t, lr)
    return params, m, v, value


@ferrule.jit
def sample(params, key, first):
    E, W, b, Wo = params

    def step(carry, _):
        h, c, tok, key = carry
        key, sub = fr.split(key)
        G = fnp.concatenate([E[tok], h], axis=1) @ W + b
        i, f, g, o = fnp.split(G, 4, axis=1)
        c = nn.sigmoid(f) * c + nn.sigmoid(i) * fnp.tanh(g)
        h = nn.sigmoid(o) * fnp.tanh(c)
        tok = fr.categorical(sub, h @ Wo).astype(np.int32)
        return (h, c, tok, key), tok

    h0 = fnp.zeros((first.shape[0], H))
    _, toks = ferrule.scan(step, (h0, h0, first, key), None, length=12)
    return toks


def test_char_lstm_trains_and_samples_inside_jit():
    params = ferrule.jit(init)(fr.key(0))
    assert all(p.dtype == np.float32 for p in params)
    text = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 4, np.int32)   # a cycle to learn
    tokens = np.stack([np.roll(text, -k)[:T + 1] for k in range(B)], axis=1)   # (T+1, B)
    m = tuple(np.zeros_like(p) for p in params)
    v = tuple(np.zeros_like(p) for p in params)
    losses = []
    for t in range(1, 61):
        lr = 0.05 if t < 40 else 0.02                  # a schedule: no recompilation
        params, m, v, value = train_step(params, m, v, np.float32(t), tokens, lr)
        losses.append(float(value))
    assert train_step.lower(params, m, v, np.float32(1), tokens, 0.1) is \
        train_step.lower(params, m, v, np.float32(2), tokens, 0.3)
    assert losses[0] > np.log(V) - 0.3 and losses[-1] < 0.5 * losses[0], losses[::10]
    toks = sample(params, fr.key(1), np.array([0, 5], np.int32))
    assert toks.shape == (12, 2) and toks.dtype == np.int32
    assert np.mean(toks[1:] == (toks[:-1] + 1) % V) > 0.5    # it learnt the cycle


def test_gradient_of_the_lm_loss_finite_differences():
    params = tuple(np.asarray(p, np.float64) for p in ferrule.jit(init)(fr.key(2)))
    tokens = RNG.integers(0, V, (T + 1, B)).astype(np.int32)
    g = ferrule.grad(loss)(params, tokens)
    f = ferrule.jit(loss)
    eps = 1e-6
    for k in (0, 1, 3):
        p = params[k]
        for idx in [tuple(RNG.integers(0, s) for s in p.shape) for _ in range(5)]:
            d = np.zeros_like(p)
            d[idx] = eps
            up = tuple(q + d if j == k else q for j, q in enumerate(params))
            dn = tuple(q - d if j == k else q for j, q in enumerate(params))
            num = (f(up, tokens) - f(dn, tokens)) / (2 * eps)
            assert g[k][idx] == pytest.approx(num, rel=1e-6, abs=1e-9)
