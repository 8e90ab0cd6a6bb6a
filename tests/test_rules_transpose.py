"""Rules that transpose (issue 12): a primitive with only an frule under
reverse mode uses the transpose of its frule's tangent map; one with only
an rrule under forward mode uses the transpose of its pullback. Checked by
float64 finite differences and the dot-product test; rules that are not
linear in their tangents are refused with the rule's name and line."""

import inspect

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule import rules
from ferrule.nn import sigmoid

RNG = np.random.default_rng(12)


def fd_grad(f, x, eps=1e-6):
    """Central finite differences of scalar ``f`` at float64 ``x``."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


def line_of(fn, text):
    """``file.py:N`` of the line of ``fn``'s source that contains ``text``."""
    lines, start = inspect.getsourcelines(fn)
    k = next(i for i, l in enumerate(lines) if text in l)
    return f"test_rules_transpose.py:{start + k}"


# -- a surrogate gradient: a step function with a smooth frule -----------------------

BETA = 4.0


@rules.primitive
def spike(v):
    return fnp.where(v > 0.0, fnp.ones_like(v), fnp.zeros_like(v))


@rules.frule(spike)
def spike_frule(config, tangents, v):
    s = sigmoid(BETA * v)
    return spike(v), BETA * s * (1.0 - s) * tangents[1]


def sig(x):
    return 1 / (1 + np.exp(-x))


def test_surrogate_gradient_frule_serves_grad():
    v, w = RNG.standard_normal(7), RNG.standard_normal(7)
    loss = lambda v, w: fnp.sum(spike(v) * w)
    gv, gw = ferrule.grad(loss, argnums=(0, 1))(v, w)
    # the surrogate: the derivative of sigmoid(BETA v), by finite differences
    np.testing.assert_allclose(gv, fd_grad(lambda v: np.sum(sig(BETA * v) * w), v),
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(gw, (v > 0).astype(float))   # the primal's own output
    low = ferrule.jit(ferrule.grad(loss)).lower(v, w)
    assert ("@spike (rules: frule spike_frule): reverse mode used frule spike_frule, "
            "transposed (its tangent map is linear)") in low.explain()
    # the transposed rule fuses with the rest: one region, nothing stored
    ad = low.as_text("ad")
    assert ad.count("linalg.generic") == 1, ad


def test_surrogate_gradient_dot_product_and_vjp():
    v = RNG.standard_normal((3, 4))
    vdot, ybar = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))
    _, ydot = ferrule.jvp(spike, (v,), (vdot,))          # the frule as written
    y, pb = ferrule.vjp(spike, v)                          # its transpose
    (vbar,) = pb(ybar)
    np.testing.assert_array_equal(y, (v > 0).astype(float))
    np.testing.assert_allclose(np.sum(ydot * ybar), np.sum(vdot * vbar), rtol=1e-12)


def test_surrogate_gradient_second_order():
    v = RNG.standard_normal(6)
    d1 = ferrule.grad(lambda v: fnp.sum(spike(v)))         # the surrogate derivative
    d2 = ferrule.grad(lambda v: fnp.sum(d1(v)))            # its derivative, through the rule
    s = sig(BETA * v)
    np.testing.assert_allclose(d1(v), BETA * s * (1 - s), rtol=1e-12)
    np.testing.assert_allclose(d2(v), fd_grad(lambda v: np.sum(BETA * sig(BETA * v)
                                                             * (1 - sig(BETA * v))), v),
                               rtol=1e-6, atol=1e-8)
    # jvp of the transposed rule, and grad of the frule
    _, t = ferrule.jvp(d1, (v,), (np.ones(6),))
    np.testing.assert_allclose(t, d2(v), rtol=1e-12)
    g = ferrule.grad(lambda v: fnp.sum(ferrule.jvp(spike, (v,), (fnp.ones_like(v),))[1]))(v)
    np.testing.assert_allclose(g, d2(v), rtol=1e-12)


# -- a numerically stable derivative, both ways round -----------------------------------

@rules.primitive
def softplus_f(x):            # frule only
    return fnp.log1p(fnp.exp(x))


@rules.frule(softplus_f)
def softplus_f_frule(config, tangents, x):
    return softplus_f(x), sigmoid(x) * tangents[1]


@rules.primitive
def softplus_r(x):            # rrule only
    return fnp.log1p(fnp.exp(x))


@rules.rrule(softplus_r)
def softplus_r_rrule(config, x):
    return softplus_r(x), lambda ybar: (rules.NoTangent(), ybar * sigmoid(x))


def test_stable_derivative_frule_under_grad():
    x = np.array([100., -3., .5, 30.], np.float32)
    # the primal's derivative, exp(x) / (1 + exp(x)), is inf / inf at 100 in float32
    plain = ferrule.grad(lambda x: fnp.sum(fnp.log1p(fnp.exp(x))))(x)
    assert not np.isfinite(plain[0])
    g = ferrule.grad(lambda x: fnp.sum(softplus_f(x)))(x)
    np.testing.assert_allclose(g, sig(x.astype(np.float64)), rtol=1e-6)
    x64 = RNG.standard_normal(5)
    np.testing.assert_allclose(ferrule.grad(lambda x: fnp.sum(softplus_f(x) ** 2))(x64),
                               fd_grad(lambda x: np.sum(np.logaddexp(0, x) ** 2), x64),
                               rtol=1e-7, atol=1e-9)


def test_stable_derivative_rrule_under_jvp():
    x = np.array([100., -3., .5, 30.], np.float32)
    t = np.array([1., 2., -1., .5], np.float32)
    _, plain = ferrule.jvp(lambda x: fnp.log1p(fnp.exp(x)), (x,), (t,))
    assert not np.isfinite(plain[0])
    y, yt = ferrule.jvp(softplus_r, (x,), (t,))
    np.testing.assert_allclose(yt, sig(x.astype(np.float64)) * t, rtol=1e-6)
    low = ferrule.jit(lambda x, t: ferrule.jvp(softplus_r, (x,), (t,))).lower(x, t)
    assert ("@softplus_r (rules: rrule softplus_r_rrule): forward mode used rrule "
            "softplus_r_rrule, transposed (its pullback is linear)") in low.explain()
    # float64: finite differences of the primal along t
    x64, t64 = RNG.standard_normal(5), RNG.standard_normal(5)
    _, yt = ferrule.jvp(softplus_r, (x64,), (t64,))
    h = 1e-6
    fd = (np.logaddexp(0, x64 + h * t64) - np.logaddexp(0, x64 - h * t64)) / (2 * h)
    np.testing.assert_allclose(yt, fd, rtol=1e-7, atol=1e-10)


def test_stable_derivative_second_order_both_ways():
    x = RNG.standard_normal(5)
    s = sig(x)
    # grad of the frule's transpose, and jvp of the rrule's transpose
    h1 = ferrule.grad(lambda x: fnp.sum(ferrule.grad(lambda x: fnp.sum(softplus_f(x)))(x)))(x)
    np.testing.assert_allclose(h1, s * (1 - s), rtol=1e-12)
    _, h2 = ferrule.jvp(lambda x: ferrule.jvp(softplus_r, (x,), (fnp.ones_like(x),))[1],
                        (x,), (np.ones(5),))
    np.testing.assert_allclose(h2, s * (1 - s), rtol=1e-12)
    h3 = ferrule.grad(lambda x: fnp.sum(ferrule.jvp(softplus_r, (x,), (fnp.ones_like(x),))[1]))(x)
    np.testing.assert_allclose(h3, s * (1 - s), rtol=1e-12)


# -- several arguments and outputs, matmuls and reductions in the rules ----------------

@rules.primitive
def layer(A, x):              # tanh(A @ x), frule only
    return fnp.tanh(A @ x)


@rules.frule(layer)
def layer_frule(config, tangents, A, x):
    _, dA, dx = tangents
    y = layer(A, x)
    return y, (1.0 - y * y) * (dA @ x + A @ dx)


@rules.primitive
def moments(x):               # (mean, mean of squares) of rows, rrule only
    n = x.shape[1]
    return fnp.sum(x, axis=1) / n, fnp.sum(x * x, axis=1) / n


@rules.rrule(moments)
def moments_rrule(config, x):
    n = x.shape[1]

    def pb(ybar):
        m_bar, s_bar = ybar
        return (rules.NoTangent(),
                m_bar[:, None] * fnp.ones_like(x) / n + s_bar[:, None] * 2.0 * x / n)
    return moments(x), pb


def test_transposed_frule_with_matmuls_several_arguments():
    A, x = RNG.standard_normal((4, 3)), RNG.standard_normal((3, 2))
    W = RNG.standard_normal((4, 2))
    loss = lambda A, x: fnp.sum(layer(A, x) * W)
    gA, gx = ferrule.grad(loss, argnums=(0, 1))(A, x)
    np_loss = lambda A, x: np.sum(np.tanh(A @ x) * W)
    np.testing.assert_allclose(gA, fd_grad(lambda A: np_loss(A, x), A), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(gx, fd_grad(lambda x: np_loss(A, x), x), rtol=1e-7, atol=1e-9)
    # dot product: the frule forward, its transpose backward
    dA, dx, ybar = RNG.standard_normal((4, 3)), RNG.standard_normal((3, 2)), W
    _, ydot = ferrule.jvp(layer, (A, x), (dA, dx))
    np.testing.assert_allclose(np.sum(ydot * ybar), np.sum(dA * gA) + np.sum(dx * gx),
                               rtol=1e-12)


def test_transposed_pullback_with_reductions_several_outputs():
    x, t = RNG.standard_normal((3, 5)), RNG.standard_normal((3, 5))
    (m, s), (mt, st) = ferrule.jvp(moments, (x,), (t,))
    np.testing.assert_allclose(m, x.mean(1), rtol=1e-12)
    np.testing.assert_allclose(mt, t.mean(1), rtol=1e-12)
    np.testing.assert_allclose(st, (2 * x * t).mean(1), rtol=1e-12)
    # dot product with the rule's own pullback
    ybar = (RNG.standard_normal(3), RNG.standard_normal(3))
    _, pb = ferrule.vjp(moments, x)
    (xbar,) = pb(ybar)
    np.testing.assert_allclose(np.sum(mt * ybar[0]) + np.sum(st * ybar[1]), np.sum(t * xbar),
                               rtol=1e-12)


def test_frule_only_primitive_inside_a_scan_under_grad():
    def loss(h0, xs):
        def step(h, x):
            h = softplus_f(h * 0.5 + x)
            return h, h
        h, _ = ferrule.scan(step, h0, xs)
        return fnp.sum(h)
    h0, xs = RNG.standard_normal(3), RNG.standard_normal((4, 3))

    def np_loss(h0):
        h = h0
        for x in xs:
            h = np.logaddexp(0, h * 0.5 + x)
        return h.sum()
    np.testing.assert_allclose(ferrule.grad(loss)(h0, xs), fd_grad(np_loss, h0),
                               rtol=1e-7, atol=1e-9)


# -- rules that cannot be transposed -----------------------------------------------------

@rules.primitive
def square_f(v):
    return v * v


@rules.frule(square_f)
def square_f_frule(config, tangents, v):
    return v * v, tangents[1] * tangents[1]          # not linear in the tangent


@rules.primitive
def shifted_f(v):
    return v * 2.0


@rules.frule(shifted_f)
def shifted_f_frule(config, tangents, v):
    return v * 2.0, tangents[1] * 2.0 + v            # affine, not linear


@rules.primitive
def clipped_f(v):
    return v * 2.0


@rules.frule(clipped_f)
def clipped_f_frule(config, tangents, v):
    t = tangents[1]
    return v * 2.0, fnp.where(t > 0.0, t, fnp.zeros_like(t))   # a tangent in a comparison


@rules.primitive
def exp_r(v):
    return fnp.exp(v)


@rules.rrule(exp_r)
def exp_r_rrule(config, v):
    y = exp_r(v)
    return y, lambda g: (rules.NoTangent(), fnp.exp(g) * y)   # not linear in the cotangent


@pytest.mark.parametrize("prim, rule, text, why", [
    (square_f, square_f_frule, "tangents[1] * tangents[1]", "multiplies a tangent by a tangent"),
    (shifted_f, shifted_f_frule, "tangents[1] * 2.0 + v", "affine, not linear"),
    (clipped_f, clipped_f_frule, "fnp.where(t > 0.0", "compares a tangent"),
])
def test_an_frule_that_is_not_linear_is_refused_under_grad(prim, rule, text, why):
    x = RNG.standard_normal(4)
    with pytest.raises(ferrule.CompileError) as e:
        ferrule.grad(lambda x: fnp.sum(prim(x)))(x)
    msg = str(e.value)
    name = rule.__name__
    assert f"@{prim.__name__} (called at test_rules_transpose.py:" in msg
    assert f"has an frule, {name}, but no rrule" in msg
    assert f"at {line_of(rule, text)} it" in msg and why in msg, msg
    # forward mode still uses the frule as written
    _, t = ferrule.jvp(prim, (x,), (np.ones(4),))
    assert t.shape == (4,)


def test_a_pullback_that_is_not_linear_is_refused_under_jvp():
    x = RNG.standard_normal(4)
    with pytest.raises(ferrule.CompileError) as e:
        ferrule.jvp(exp_r, (x,), (x,))
    msg = str(e.value)
    assert "has an rrule, exp_r_rrule, but no frule, so forward mode transposes" in msg
    assert f"at {line_of(exp_r_rrule, 'fnp.exp(g) * y')} it applies math.exp to a tangent" in msg
    assert "Give exp_r an frule" in msg
    # reverse mode still uses the rrule as written
    np.testing.assert_allclose(ferrule.grad(lambda x: fnp.sum(exp_r(x)))(x), np.e * np.exp(x),
                               rtol=1e-12)


# -- a bool argument (no tangent of its own) --------------------------------------------

@rules.primitive
def masked_f(x, m):
    return fnp.where(m, x * 2.0, x)


@rules.frule(masked_f)
def masked_f_frule(config, tangents, x, m):
    return masked_f(x, m), fnp.where(m, tangents[1] * 2.0, tangents[1])


@rules.primitive
def masked_r(x, m):
    return fnp.where(m, x * 2.0, x)


@rules.rrule(masked_r)
def masked_r_rrule(config, x, m):
    return masked_r(x, m), lambda g: (rules.NoTangent(), fnp.where(m, g * 2.0, g),
                                      rules.NoTangent())


def test_rules_with_a_bool_argument_transpose():
    x = np.arange(4.0)
    want = np.where(x > 1.0, 2.0, 1.0)
    np.testing.assert_array_equal(ferrule.grad(lambda x: fnp.sum(masked_f(x, x > 1.0)))(x), want)
    _, t = ferrule.jvp(lambda x: masked_r(x, x > 1.0), (x,), (np.ones(4),))
    np.testing.assert_array_equal(t, want)
