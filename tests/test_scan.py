"""ferrule.scan: a loop traced and compiled once, differentiated by the
forward and reverse passes — checked against the same program unrolled in
Python, against finite differences (float64) and by the dot-product test."""

import re

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.nn import sigmoid
from models import lstm

B, H, T = 3, 4, 5
RNG = np.random.default_rng(0)
W = RNG.standard_normal((H, H)) * 0.5
H0 = RNG.standard_normal((B, H))
XS = RNG.standard_normal((T, B, H))


def rnn_step(W):
    def step(h, x):
        h2 = fnp.tanh(h @ W + x)
        return h2, h2 * h
    return step


def rnn_scan(W, h0, xs, reverse=False):
    return ferrule.scan(rnn_step(W), h0, xs, reverse=reverse)


def rnn_unrolled(W, h0, xs, reverse=False):
    step, h, ys = rnn_step(W), h0, [None] * xs.shape[0]
    for t in (reversed(range(xs.shape[0])) if reverse else range(xs.shape[0])):
        h, ys[t] = step(h, xs[t])
    return h, fnp.stack(ys)


def _close(a, b, tol=1e-12):
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol)


@pytest.mark.parametrize("reverse", [False, True])
def test_forward_matches_the_loop_in_python(reverse):
    _close(ferrule.jit(rnn_scan, static_argnums=3)(W, H0, XS, reverse),
           rnn_unrolled(W, H0, XS, reverse))   # ferrule.numpy outside a trace is numpy


def test_outside_jit_and_pytrees_and_no_xs():
    (a, b), ys = ferrule.scan(lambda c, x: ((c[0] * 0.5 + c[1], c[1] + 1.0), None),
                              (np.ones(2), np.zeros(2)), None, length=3)
    np.testing.assert_allclose(a, [2.625, 2.625])   # a: 1 -> .5 -> 1.25 -> 2.625
    np.testing.assert_allclose(b, [3.0, 3.0])
    assert ys is None
    c, (y1, y2) = ferrule.scan(lambda c, xy: (c + xy[0] * xy[1], (c, xy[0] + c)),
                               np.zeros(2), (np.arange(6.).reshape(3, 2), np.ones((3, 2))))
    np.testing.assert_allclose(c, [6.0, 9.0])
    np.testing.assert_allclose(y1, [[0, 0], [0, 1], [2, 4]])
    np.testing.assert_allclose(y2, [[0, 1], [2, 4], [6, 9]])


def test_zero_steps_return_init_and_empty_ys():
    h, ys = ferrule.jit(lambda h, xs: ferrule.scan(rnn_step(W), h, xs))(H0, XS[:0])
    np.testing.assert_array_equal(h, H0)
    assert ys.shape == (0, B, H)


def _numeric_grad(f, args, k, eps=1e-6):
    g = np.zeros_like(args[k])
    for i in np.ndindex(g.shape):
        ap, am = [a.copy() for a in args], [a.copy() for a in args]
        ap[k][i] += eps
        am[k][i] -= eps
        g[i] = (f(*ap) - f(*am)) / (2 * eps)
    return g


@pytest.mark.parametrize("reverse", [False, True])
def test_grad_matches_unrolled_and_finite_differences(reverse):
    def loss(run):
        def f(W, h0, xs):
            h, ys = run(W, h0, xs, reverse)
            return fnp.sum(h) + fnp.sum(ys * ys * np.arange(1.0, T + 1)[:, None, None])
        return f
    args = [W, H0, XS]
    got = ferrule.grad(loss(rnn_scan), argnums=(0, 1, 2))(*args)
    _close(got, ferrule.grad(loss(rnn_unrolled), argnums=(0, 1, 2))(*args), 1e-12)
    for k in range(3):
        np.testing.assert_allclose(got[k], _numeric_grad(loss(rnn_unrolled), args, k),
                                   rtol=1e-6, atol=1e-8)


def test_jvp_and_dot_product_identity():
    tans = [RNG.standard_normal(a.shape) for a in (W, H0, XS)]
    outs, touts = ferrule.jvp(rnn_scan, (W, H0, XS), tuple(tans))
    _close(touts, ferrule.jvp(rnn_unrolled, (W, H0, XS), tuple(tans))[1])
    cts = [RNG.standard_normal(o.shape) for o in outs]
    _, pb = ferrule.vjp(rnn_scan, W, H0, XS)
    back = pb(tuple(cts))
    lhs = sum(np.sum(a * b) for a, b in zip(touts, cts))
    rhs = sum(np.sum(a * b) for a, b in zip(back, tans))
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_second_order_jvp_of_grad_and_grad_of_grad():
    L = lambda run: (lambda W, h0, xs: fnp.sum(run(W, h0, xs)[1] ** 2))
    tans = tuple(RNG.standard_normal(a.shape) for a in (W, H0, XS))
    a = ferrule.jvp(ferrule.grad(L(rnn_scan)), (W, H0, XS), tans)[1]
    b = ferrule.jvp(ferrule.grad(L(rnn_unrolled)), (W, H0, XS), tans)[1]
    np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
    gg = lambda run: ferrule.grad(lambda W: fnp.sum(ferrule.grad(L(run))(W, H0, XS) * tans[0]))(W)
    np.testing.assert_allclose(gg(rnn_scan), gg(rnn_unrolled), rtol=1e-11, atol=1e-12)


def test_grad_of_jit_and_jit_of_grad_agree():
    f = lambda W, h0, xs: fnp.sum(rnn_scan(W, h0, xs)[1])
    a = ferrule.jit(ferrule.grad(f))(W, H0, XS)
    b = ferrule.grad(ferrule.jit(f))(W, H0, XS)
    np.testing.assert_allclose(a, b, rtol=1e-13)


def test_nested_scans():
    xss = RNG.standard_normal((2, T, B, H))

    def outer(run):
        def f(W, h0, xss):
            def ostep(h, xs):
                h, ys = run(W, h, xs)
                return h, fnp.sum(ys)
            h, s = ferrule.scan(ostep, h0, xss)
            return fnp.sum(h) + fnp.sum(s * s)
        return f
    np.testing.assert_allclose(ferrule.jit(outer(rnn_scan))(W, H0, xss),
                               ferrule.jit(outer(rnn_unrolled))(W, H0, xss), rtol=1e-13)
    _close(ferrule.grad(outer(rnn_scan), argnums=(0, 1, 2))(W, H0, xss),
           ferrule.grad(outer(rnn_unrolled), argnums=(0, 1, 2))(W, H0, xss), 1e-11)


def _lstm_step(Wx, Wh):
    def step(hc, x):
        h, c = hc
        h2, c2 = lstm(x @ Wx + h @ Wh, c)
        return (h2, c2), h2
    return step


def _lstm_loss(Wx, Wh, h0, c0, xs):
    (h, c), hs = ferrule.scan(_lstm_step(Wx, Wh), (h0, c0), xs)
    return 0.01 * fnp.sum(hs * hs) + fnp.sum(c)


def _lstm_loss_unrolled(Wx, Wh, h0, c0, xs):   # with numpy arrays: plain numpy
    step, hc, hs = _lstm_step(Wx, Wh), (h0, c0), []
    for t in range(xs.shape[0]):
        hc, h = step(hc, xs[t])
        hs.append(h)
    return 0.01 * fnp.sum(fnp.stack(hs) ** 2) + fnp.sum(hc[1])


def _lstm_args(T):
    rng = np.random.default_rng(1)
    E = 3
    return [rng.standard_normal((E, 4 * H)) * .5, rng.standard_normal((H, 4 * H)) * .5,
            rng.standard_normal((B, H)), rng.standard_normal((B, H)),
            rng.standard_normal((T, B, E))]


def test_lstm_over_a_sequence_gradients():
    args = _lstm_args(T)
    got = ferrule.grad(_lstm_loss, argnums=(0, 1, 2, 3, 4))(*args)
    for k in range(5):
        np.testing.assert_allclose(got[k], _numeric_grad(_lstm_loss_unrolled, args, k),
                                   rtol=1e-6, atol=1e-8)


def test_ir_does_not_grow_with_the_number_of_steps():
    """The step is one function: the IR is the same for 7 steps and for 777
    (only the trip count differs)."""
    g = ferrule.jit(ferrule.value_and_grad(_lstm_loss, argnums=(0, 1)))
    short, long = g.lower(*_lstm_args(7)), g.lower(*_lstm_args(777))
    # L steps of B rows: the weight cotangents' GEMM after the loop reads
    # the L*B stacked rows at once.
    norm = lambda s: re.sub(r"(?<![0-9])(7|777|%d|%d)(?![0-9])" % (7 * B, 777 * B), "L",
                            re.sub(r"ferrule.pullbacks = \[.*?\]", "", s))
    for stage in ("traced", "ad"):
        assert norm(short.as_text(stage)) == norm(long.as_text(stage)), stage
    # LLVM dialect: index constants that coincide for one trip count are
    # uniqued, so a few lines may differ, never a step's worth.
    a, b = (len(x.as_text("llvm").splitlines()) for x in (short, long))
    assert abs(a - b) <= 0.01 * a


def test_lstm_step_fuses_into_one_region_each_way():
    """Inside the step, the LSTM cell's pointwise math is one region in the
    forward step and one in the backward step, as for a single cell."""
    low = ferrule.jit(ferrule.grad(_lstm_loss)).lower(*_lstm_args(T))
    ad = low.as_text("ad")
    for name in ("step_scan_fwd", "step_scan_bwd"):
        body = ad.split(f"func.func private @{name}(")[1].split("func.func")[0]
        regions = [m for m in re.findall(r"linalg\.generic \{indexing_maps = \[([^\]]*)\], "
                                         r"iterator_types = \[([^\]]*)\]", body)
                   if "reduction" not in m[1]]
        pointwise_full = [m for m in regions if m[0].count("#map") >= 4]
        assert len(pointwise_full) == 1, (name, body)
    assert "scan of @step (5 steps): residuals per step" in low.explain()


def test_carry_must_keep_its_type():
    with pytest.raises(ferrule.TracingError, match=r"returned carry 0 as float32\[2\], but the "
                                                   r"carry is float64\[2\]"):
        ferrule.jit(lambda c, xs: ferrule.scan(lambda c, x: (fnp.astype(c + x, fnp.float32), x),
                                               c, xs))(np.zeros(2), np.ones((3, 2)))
    with pytest.raises(ferrule.ShapeError, match="different leading lengths"):
        ferrule.scan(lambda c, x: (c, None), np.zeros(2), (np.ones((3, 2)), np.ones((4, 2))))
    with pytest.raises(ferrule.TracingError, match=r"must return \(carry, y\)"):
        ferrule.scan(lambda c, x: c, np.zeros(2), np.ones((3, 2)))


def test_scan_of_a_sigmoid_rnn_float32():
    W32, h32, x32 = (a.astype(np.float32) for a in (W, H0, XS))
    f = lambda W, h0, xs: ferrule.scan(lambda h, x: (sigmoid(h @ W + x), None), h0, xs)[0]
    got = ferrule.jit(f)(W32, h32, x32)
    h = H0
    for t in range(T):
        h = 1 / (1 + np.exp(-(h @ W + XS[t])))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, h, rtol=1e-5, atol=1e-6)


def test_scan_on_the_gpu_target_is_a_clear_error():
    f = lambda h0, xs: rnn_scan(W, h0, xs)
    with pytest.raises(ferrule.CompileError, match="scan is not supported for target"):
        ferrule.compile(f, H0, XS, target="cuda:sm_90")


@pytest.mark.parametrize("T, k, reverse", [(12, 4, False), (14, 4, False), (14, 4, True), (5, 8, False)])
def test_checkpointed_scan_gives_the_same_gradients(T, k, reverse):
    """checkpoint=k: segments of k steps, only the carry entering each
    stored; the gradients are those of the plain scan."""
    args = _lstm_args(T)

    def loss(ckpt):
        def f(Wx, Wh, h0, c0, xs):
            (h, c), hs = ferrule.scan(_lstm_step(Wx, Wh), (h0, c0), xs, reverse=reverse,
                                      checkpoint=ckpt)
            return 0.01 * fnp.sum(hs * hs * np.arange(1.0, T + 1)[:, None, None]) + fnp.sum(c)
        return f
    plain = ferrule.value_and_grad(loss(None), argnums=(0, 1, 2, 3, 4))(*args)
    g = ferrule.jit(ferrule.value_and_grad(loss(k), argnums=(0, 1, 2, 3, 4)))
    ckpt = g(*args)
    np.testing.assert_allclose(ckpt[0], plain[0], rtol=1e-13)
    _close(ckpt[1], plain[1], 1e-11)
    if T > k:
        assert "recomputed in the backward sweep" in g.lower(*args).explain()


@pytest.mark.parametrize("reverse", [False, True])
def test_weight_cotangents_summed_after_the_loop(reverse):
    """A const's cotangent made of matmuls of per-step values (``hᵀ·dG``,
    ``xᵀ·dG``, a weight used twice) and a bias's batch sum is computed after
    the loop from the stacked operands; a term that is not (``W * W`` in the
    step) stays a running sum. Same gradients as the program unrolled."""
    rng = np.random.default_rng(3)
    W, U, b = rng.standard_normal((H, H)) * .4, rng.standard_normal((H, H)) * .4, rng.standard_normal(H)

    def step_of(W, U, b):
        def step(h, x):
            h2 = fnp.tanh(h @ W + (h * h) @ W + x @ U + b + fnp.sum(W * W) * 0.01)
            return h2, fnp.sum(h2 * x, axis=1)
        return step

    def loss(scan, W, U, b, h0, xs):
        h, ys = scan(step_of(W, U, b), h0, xs)
        return fnp.sum(h * h) + fnp.sum(ys * ys)

    def unrolled(step, h, xs, reverse=reverse):
        ys = [None] * xs.shape[0]
        for t in (reversed(range(xs.shape[0])) if reverse else range(xs.shape[0])):
            h, ys[t] = step(h, xs[t])
        return h, fnp.stack(ys)
    scanned = lambda f, h, xs: ferrule.scan(f, h, xs, reverse=reverse)
    args = (W, U, b, H0, XS)
    g = ferrule.jit(ferrule.grad(lambda *a: loss(scanned, *a), argnums=(0, 1, 2, 3, 4)))
    want = ferrule.jit(ferrule.grad(lambda *a: loss(unrolled, *a), argnums=(0, 1, 2, 3, 4)))
    for x, y in zip(g(*args), want(*args)):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)
    explained = g.lower(*args).explain()
    assert re.search(r"scan of @step \(5 steps\).*; 4 weight-cotangent term\(s\) summed after "
                     r"the loop", explained), explained
