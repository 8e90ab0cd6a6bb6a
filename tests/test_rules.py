"""The rules API under ferrule's compiler: registration, opt-out, zeros,
nesting, errors, and the motivating LSTM rule built on frule_via_ad."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule import rules
from ferrule.nn import sigmoid
from models import RULE_BRANCHES, lstm_pointwise

RNG = np.random.default_rng(0)


def fd_grad(f, args, k, eps=1e-6):
    g = np.zeros_like(args[k])
    for idx in np.ndindex(args[k].shape):
        ap, am = [a.copy() for a in args], [a.copy() for a in args]
        ap[k][idx] += eps
        am[k][idx] -= eps
        g[idx] = (f(*ap) - f(*am)) / (2 * eps)
    return g


# -- the motivating case: models.lstm_pointwise and its frule_via_ad rule -----------

def lstm_loss(G, c):
    i, f, g, o = fnp.split(G, 4, axis=1)
    h, c2 = lstm_pointwise(i, f, g, o, c)
    return fnp.sum(h * h) + fnp.sum(c2 * 0.5)


def np_lstm_loss(G, c):
    sig = lambda x: 1 / (1 + np.exp(-x))
    i, f, g, o = np.split(G, 4, axis=1)
    c2 = sig(f) * c + sig(i) * np.tanh(g)
    h = sig(o) * np.tanh(c2)
    return (h * h).sum() + (c2 * 0.5).sum()


def test_lstm_rule_takes_forward_branch_and_matches_finite_differences():
    G, c = RNG.standard_normal((3, 16)), RNG.standard_normal((3, 4))
    before = len(RULE_BRANCHES)
    dG, dc = ferrule.grad(lstm_loss, argnums=(0, 1))(G, c)
    assert "forward" in RULE_BRANCHES[before:]
    np.testing.assert_allclose(dG, fd_grad(np_lstm_loss, [G, c], 0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dc, fd_grad(np_lstm_loss, [G, c], 1), rtol=1e-6, atol=1e-8)


def test_lstm_rule_compiles_to_the_same_single_region_as_builtin_reverse_mode():
    G = RNG.standard_normal((4, 32)).astype(np.float32)
    c = RNG.standard_normal((4, 8)).astype(np.float32)
    low = ferrule.jit(ferrule.grad(lstm_loss, argnums=(0, 1))).lower(G, c)
    traced = low.as_text("traced")
    assert '"ad.custom_rrule"' in traced and "rule = \"lstm_rrule\"" in traced
    assert traced.count('"ad.frule_via_ad"') == 1  # one chunked call, 5 directions
    assert "num_directions = 5" in traced
    ad = low.as_text("ad")
    # forward pointwise region + backward region fuse into one; the loss's
    # reductions are the only other structured ops.
    pointwise = [l for l in ad.splitlines() if "linalg.generic" in l and "reduction" not in l]
    assert len(pointwise) == 1, ad

    def builtin(G, c):
        i, f, g, o = fnp.split(G, 4, axis=1)
        h, c2 = lstm_pointwise.fn(i, f, g, o, c)
        return fnp.sum(h * h) + fnp.sum(c2 * 0.5)
    ad2 = ferrule.jit(ferrule.grad(builtin, argnums=(0, 1))).lower(G, c).as_text("ad")
    pointwise2 = [l for l in ad2.splitlines() if "linalg.generic" in l and "reduction" not in l]
    assert len(pointwise2) == len(pointwise)
    report = low.explain()
    assert "@lstm_pointwise (rules: rrule lstm_rrule): reverse mode used rrule lstm_rrule" in report
    assert "1 frule_via_ad call(s), 5 tangent direction(s) fused into one region" in report
    assert "test_rules.py:" in report
    got = ferrule.grad(lstm_loss, argnums=(0, 1))(G, c)
    want = ferrule.grad(builtin, argnums=(0, 1))(G, c)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# -- registration, opt-out, zeros, nesting -----------------------------------------------

@rules.primitive
def scaled_square(x, y):
    return x * x * y


@rules.rrule(scaled_square)
def scaled_square_rrule(config, x, y):
    def pb(ybar):
        return rules.NoTangent(), 2.0 * x * y * ybar, rules.ZeroTangent()  # y: declared zero
    return x * x * y, pb


def test_rule_is_used_and_zero_tangent_is_zero():
    x, y = RNG.standard_normal(5), RNG.standard_normal(5)
    gx, gy = ferrule.grad(lambda x, y: fnp.sum(scaled_square(x, y)), argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, 2 * x * y, rtol=1e-12)
    np.testing.assert_array_equal(gy, np.zeros(5))  # the rule's word, not the true derivative


@rules.primitive
def softish(x):
    return fnp.log1p(fnp.exp(x))


@rules.rrule(softish)
def softish_rrule(config, x):
    return rules.opt_out()


def test_opt_out_differentiates_the_primal():
    x = RNG.standard_normal(6)
    g = ferrule.grad(lambda x: fnp.sum(softish(x)))(x)
    np.testing.assert_allclose(g, 1 / (1 + np.exp(-x)), rtol=1e-12)


@rules.primitive
def outer_fn(x):
    return scaled_square(x, x) + x


@rules.rrule(outer_fn)
def outer_rrule(config, x):
    y, pb_inner = rules.rrule_via_ad(config, scaled_square, x, x)

    def pb(ybar):
        _, gx1, gx2 = pb_inner(ybar)
        return rules.NoTangent(), gx1 + gx2 + ybar
    return y + x, pb


def test_nested_rule_whose_pullback_uses_another_function():
    x = RNG.standard_normal(4)
    g = ferrule.grad(lambda x: fnp.sum(outer_fn(x)))(x)
    np.testing.assert_allclose(g, 3 * x * x + 1, rtol=1e-12)


def test_forward_pullback_helper():
    def gate(a, b):
        return fnp.tanh(a) * sigmoid(b)
    fgate = rules.forward_pullback(gate)
    a, b = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))
    ga, gb = ferrule.grad(lambda a, b: fnp.sum(fgate(a, b) ** 2), argnums=(0, 1))(a, b)
    wa, wb = ferrule.grad(lambda a, b: fnp.sum(gate(a, b) ** 2), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga, wa, rtol=1e-10)
    np.testing.assert_allclose(gb, wb, rtol=1e-10)


def test_rrule_only_function_under_jvp_uses_the_transposed_rule():
    # the rule says y has a zero cotangent, so forward mode (the transpose of
    # its pullback) agrees with reverse mode, not with the primal's derivative
    x, t = RNG.standard_normal(5), RNG.standard_normal(5)
    _, yt = ferrule.jvp(lambda x: scaled_square(x, x), (x,), (t,))
    np.testing.assert_allclose(yt, 2 * x * x * t, rtol=1e-12)
    g = ferrule.grad(lambda x: fnp.sum(scaled_square(x, x)))(x)
    np.testing.assert_allclose(np.dot(yt, np.ones(5)), np.dot(t, g), rtol=1e-12)


# -- errors ---------------------------------------------------------------------------------

def test_rules_need_a_primitive():
    def plain(x):
        return x
    with pytest.raises(TypeError, match="@rules.primitive"):
        rules.rrule(plain)


@rules.primitive
def bad_count(x):
    return x * 2.0


@rules.rrule(bad_count)
def bad_count_rrule(config, x):
    return x * 2.0, lambda ybar: (2.0 * ybar,)  # forgot the leading ∂f entry


@rules.primitive
def bad_shape(x):
    return x * 2.0


@rules.rrule(bad_shape)
def bad_shape_rrule(config, x):
    return x * 2.0, lambda ybar: (rules.NoTangent(), fnp.sum(ybar))


def test_wrong_number_of_cotangents_names_the_rule():
    with pytest.raises(ferrule.TracingError, match=r"pullback of rule bad_count_rrule for "
                       r"bad_count must return a tuple \(∂f, x̄1\) of 2 entries; got 1"):
        ferrule.grad(lambda x: fnp.sum(bad_count(x)))(np.ones(3))


def test_wrong_cotangent_shape_names_the_rule():
    with pytest.raises(ferrule.ShapeError, match=r"rule bad_shape_rrule for bad_shape returned "
                       r"a cotangent of shape \(\) for argument 1, which has shape \(3,\)"):
        ferrule.grad(lambda x: fnp.sum(bad_shape(x)))(np.ones(3))


def test_frule_via_ad_checks_its_tangent_tuple():
    def f(x):
        y, yd = rules.frule_via_ad(rules.compiler.CONFIG, (fnp.ones_like(x),), fnp.exp, x)
        return yd
    with pytest.raises(ferrule.TracingError, match="tangents must be"):
        ferrule.jit(f)(np.ones(3))


# -- frules --------------------------------------------------------------------------------

FRULE_CALLS = {"n": 0}


@rules.primitive
def cube(x):
    return x * x * x


@rules.frule(cube)
def cube_frule(config, tangents, x):
    FRULE_CALLS["n"] += 1
    _, xdot = tangents
    return x * x * x, 3.0 * x * x * xdot


def test_frule_is_used_by_forward_mode_and_transposed_for_reverse_mode():
    x, t = RNG.standard_normal(5), RNG.standard_normal(5)
    before = FRULE_CALLS["n"]
    low = ferrule.jit(lambda x, t: ferrule.jvp(cube, (x,), (t,))).lower(x, t)
    assert '"ad.custom_frule"' in low.as_text("traced")
    assert "forward mode used frule cube_frule as written" in low.explain()
    assert FRULE_CALLS["n"] > before
    y, yt = ferrule.jvp(cube, (x,), (t,))
    np.testing.assert_allclose(yt, 3 * x * x * t, rtol=1e-12)
    g = ferrule.grad(lambda x: fnp.sum(cube(x)))(x)
    np.testing.assert_allclose(g, 3 * x * x, rtol=1e-12)
    report = ferrule.jit(ferrule.grad(lambda x: fnp.sum(cube(x)))).lower(x).explain()
    assert "reverse mode used frule cube_frule, transposed (its tangent map is linear)" in report
    np.testing.assert_allclose(ferrule.jit(cube)(x), x ** 3, rtol=1e-12)


@rules.primitive
def both_rules(x):
    return fnp.exp(x)


@rules.frule(both_rules)
def both_frule(config, tangents, x):
    y = fnp.exp(x)
    return y, y * tangents[1]


@rules.rrule(both_rules)
def both_rrule(config, x):
    y = fnp.exp(x)
    return y, lambda ybar: (rules.NoTangent(), ybar * y)


def test_primitive_with_both_rules_uses_each_in_its_mode():
    x, t = RNG.standard_normal(4), RNG.standard_normal(4)
    traced = ferrule.jit(lambda x, t: ferrule.jvp(both_rules, (x,), (t,))).lower(x, t).as_text()
    assert '"ad.custom_rrule"' in traced and '"ad.custom_frule"' in traced
    _, yt = ferrule.jvp(both_rules, (x,), (t,))
    np.testing.assert_allclose(yt, np.exp(x) * t, rtol=1e-12)
    g = ferrule.grad(lambda x: fnp.sum(both_rules(x)))(x)
    np.testing.assert_allclose(g, np.exp(x), rtol=1e-12)


# -- the ChainRules idiom: the primitive called inside its own rule ------------------------

@rules.primitive
def softplus_p(x):
    return fnp.log1p(fnp.exp(x))


@rules.rrule(softplus_p)
def softplus_p_rrule(config, x):
    y = softplus_p(x)              # the primal, as in ChainRules and JAX's docs
    return y, lambda dy: (rules.NoTangent(), dy * sigmoid(x))


def test_issue_12_reproducer_primitive_called_in_its_own_rrule():
    x = np.array([100., -3., .5], np.float32)
    g = ferrule.grad(lambda x: fnp.sum(softplus_p(x)))(x)
    np.testing.assert_allclose(g, 1 / (1 + np.exp(-x.astype(np.float64))), rtol=1e-6)
    # the value the rule returns is the primal's
    x64 = x.astype(np.float64)
    v, _ = ferrule.value_and_grad(lambda x: fnp.sum(softplus_p(x)))(x64)
    np.testing.assert_allclose(v, np.logaddexp(0, x64).sum(), rtol=1e-12)
    traced = ferrule.jit(ferrule.grad(lambda x: fnp.sum(softplus_p(x)))).lower(x).as_text()
    assert "@softplus_p_self" in traced     # the self-call: the primitive with its rule


@rules.primitive
def exp_p(x):
    return fnp.exp(x)


@rules.rrule(exp_p)
def exp_p_rrule(config, x):
    y = exp_p(x)
    return y, lambda ybar: (rules.NoTangent(), ybar * y)   # the pullback reads y


@rules.frule(exp_p)
def exp_p_frule(config, tangents, x):
    y = exp_p(x)
    return y, y * tangents[1]


def test_primitive_called_in_its_own_frule_and_second_order():
    x, t = RNG.standard_normal(5), RNG.standard_normal(5)
    y, yt = ferrule.jvp(exp_p, (x,), (t,))
    np.testing.assert_allclose(y, np.exp(x), rtol=1e-12)
    np.testing.assert_allclose(yt, np.exp(x) * t, rtol=1e-12)
    # grad of grad: the pullback's y = exp_p(x) is the primitive again, so
    # the outer derivative reaches the rule, not a recursion
    gg = ferrule.grad(lambda x: fnp.sum(ferrule.grad(lambda x: fnp.sum(exp_p(x)))(x)))(x)
    np.testing.assert_allclose(gg, np.exp(x), rtol=1e-12)
    # jvp of grad and grad of jvp
    _, t2 = ferrule.jvp(ferrule.grad(lambda x: fnp.sum(exp_p(x))), (x,), (t,))
    np.testing.assert_allclose(t2, np.exp(x) * t, rtol=1e-12)


@rules.primitive
def cosh_p(x):
    return 0.5 * (fnp.exp(x) + fnp.exp(-x))


@rules.rrule(cosh_p)
def cosh_p_rrule(config, x):
    # frule_via_ad of a function that calls the primitive: there it is the
    # primal's code (the AD is asked to differentiate it, not this rule)
    y, ydot = rules.frule_via_ad(config, (rules.NoTangent(), fnp.ones_like(x)),
                                 lambda x: cosh_p(x) * 1.0, x)
    return cosh_p(x), lambda ybar: (rules.NoTangent(), ybar * ydot)


def test_primitive_called_in_a_frule_via_ad_callee_inside_its_rule():
    x = RNG.standard_normal(4)
    g = ferrule.grad(lambda x: fnp.sum(cosh_p(x)))(x)
    np.testing.assert_allclose(g, np.sinh(x), rtol=1e-12)


def test_primitive_called_in_its_own_rule_under_eager():
    from ferrule import eager
    x = np.array([100., -3., .5])
    np.testing.assert_allclose(eager.grad(lambda x: np.sum(softplus_p(x)))(x),
                               1 / (1 + np.exp(-x)), rtol=1e-12)
    np.testing.assert_allclose(eager.grad(lambda x: np.sum(exp_p(x)))(x), np.exp(x), rtol=1e-12)
    rules.testing.test_rrule(softplus_p, np.array([-3., .5, 2.]))


def test_rules_testing_is_reachable_from_rules():
    import subprocess
    import sys
    code = ("from ferrule import rules\n"
            "import numpy as np, ferrule.numpy as fnp\n"
            "f = rules.primitive(lambda x: x * x)\n"
            "rules.rrule(f)(lambda c, x: (x * x, lambda g: (rules.NoTangent(), 2.0 * x * g)))\n"
            "print(type(rules.testing.test_rrule(f, np.ones(3))).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "RuleCheck"
