"""ferrule.eager, the reverse-mode-only numpy tape: gradients of single ops
and of models against float64 finite differences AND against ferrule's
compiler; rules under both ADs (the LSTM rule takes a different branch in
each); nested rules; clear errors for bad rules and unsupported ops."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule import eager, rules
from ferrule.nn import logsumexp, relu, sigmoid, softplus
from models import RULE_BRANCHES, gru, lstm, lstm_pointwise, mlp_loss


def rng_args(shapes, seed=0, positive=False):
    rng = np.random.default_rng(seed)
    out = [rng.standard_normal(s) for s in shapes]
    return [np.abs(a) + 0.5 for a in out] if positive else out


def numeric_grads(f, args, eps=1e-6):
    """∂f/∂args of a scalar f by float64 central differences, with plain numpy."""
    grads = []
    for k, a in enumerate(args):
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            ap, am = list(args), list(args)
            ap[k], am[k] = a.copy(), a.copy()
            ap[k][idx] += eps
            am[k][idx] -= eps
            g[idx] = (f(*ap) - f(*am)) / (2 * eps)
        grads.append(g)
    return grads


def weighted(f, args):
    """``sum(f(*args) * w)`` for a fixed random ``w``: a scalar loss whose
    gradient exercises every output element differently."""
    w = np.random.default_rng(7).standard_normal(np.shape(f(*args)))
    return lambda *a: fnp.sum(f(*a) * w)


# -- single ops -------------------------------------------------------------------
# name: (function, input shapes, positive inputs, also compiled by ferrule)
OPS = {
    "add_sub_broadcast": (lambda x, b: (x + b) - (b - 2.0 * x), [(3, 4), (4,)], False, True),
    "mul_div_broadcast": (lambda x, b: x * b / (b * b + 1.0), [(3, 4), (3, 1)], False, True),
    "rdiv_neg": (lambda x: -(1.0 / x), [(5,)], True, True),
    "pow_int": (lambda x: x ** 3, [(2, 3)], False, True),
    "pow_frac": (lambda x: fnp.power(x, 1.5), [(2, 3)], True, True),
    "pow_array": (lambda x, y: x ** y, [(4,), (4,)], True, True),
    "exp_log": (lambda x: fnp.exp(-x) + fnp.log(x), [(4,)], True, True),
    "log1p_expm1": (lambda x: fnp.log1p(x) + fnp.expm1(-x), [(4,)], True, True),
    "tanh_sin_cos": (lambda x: fnp.tanh(x) + fnp.sin(x) * fnp.cos(x), [(3, 2)], False, True),
    "sqrt_abs_square": (lambda x: fnp.sqrt(x) + fnp.abs(x - 1.2) + fnp.square(x), [(6,)], True, True),
    "maximum_minimum": (lambda x, y: fnp.maximum(x, y) + 2.0 * fnp.minimum(x, 0.1), [(3, 4), (4,)], False, True),
    "relu_softplus": (lambda x: relu(x) + softplus(x), [(7,)], False, True),
    "where_compare": (lambda x, y: fnp.where(x > y, x * y, y - x), [(3, 4), (3, 4)], False, True),
    "matmul_2d": (lambda a, b: a @ b, [(3, 4), (4, 2)], False, True),
    "matmul_vec": (lambda A, v: A @ v, [(3, 4), (4,)], False, True),
    "vec_matmul": (lambda v, A: v @ A, [(3,), (3, 4)], False, True),
    "matmul_batched": (lambda a, b: np.matmul(a, b), [(2, 3, 4), (4, 5)], False, False),
    "sum_axes": (lambda x: fnp.sum(x, axis=1) + fnp.sum(x, axis=0, keepdims=True).sum(), [(3, 4)], False, True),
    "mean": (lambda x: fnp.mean(x, axis=0) * fnp.mean(x), [(3, 4)], False, True),
    "max_axis": (lambda x: fnp.max(x * x, axis=0), [(3, 4)], False, True),
    "logsumexp": (lambda x: logsumexp(x, axis=1), [(3, 5)], False, True),
    "reshape_transpose": (lambda x: fnp.reshape(fnp.transpose(x), (2, 6)) * 2.0, [(3, 4)], False, True),
    "swapaxes_T": (lambda x: fnp.swapaxes(x, 0, 1) + x.T, [(3, 3)], False, True),
    "broadcast_to": (lambda b: fnp.broadcast_to(b, (3, 4)), [(4,)], False, True),
    "slices": (lambda x: x[1:, ::2] * x[0, 0] + x[:2, None, 1], [(3, 4)], False, True),
    "concatenate": (lambda x: fnp.concatenate([x[:, 1:], x[:, :1] * x[:, :1]], axis=1), [(3, 4)], False, True),
    "stack": (lambda x, y: fnp.stack([x, y * x], axis=1), [(3,), (3,)], False, True),
    "split_sections": (lambda G: fnp.split(G, 4, axis=1)[2] * fnp.split(G, 4, axis=1)[0], [(2, 8)], False, True),
    "split_indices": (lambda x: np.split(x, [1, 3])[1] + np.split(x, [1, 3])[2][:2], [(5,)], False, False),
    "fancy_index": (lambda x: x[np.array([0, 2, 0])] * 3.0, [(3, 2)], False, False),
    "bool_mask": (lambda x: x[x > 0.0] ** 2, [(8,)], False, False),
    "var_std": (lambda x: np.var(x, axis=1) + np.std(x), [(3, 4)], False, False),
    "cumsum_flip": (lambda x: np.flip(np.cumsum(x, axis=1), 0), [(3, 4)], False, False),
    "clip": (lambda x: np.clip(x, -0.5, 0.5) * x, [(8,)], False, False),
    "moveaxis_expand_squeeze": (lambda x: np.squeeze(np.expand_dims(np.moveaxis(x, 0, 2), 0)),
                                [(2, 3, 4)], False, False),
    "outer_dot": (lambda a, b: np.outer(a, b) + np.dot(a, b), [(3,), (3,)], False, False),
    "trig_more": (lambda x: np.arctan(x) + np.sinh(x) + np.cosh(x) + np.tan(x), [(5,)], False, False),
    "arctan2_hypot_logaddexp": (lambda x, y: np.arctan2(x, y) + np.hypot(x, y) + np.logaddexp(x, y),
                                [(4,), (4,)], False, False),
    "min_ravel_astype": (lambda x: np.min(x, axis=1) + x.ravel().astype(np.float64)[:3], [(3, 4)], False, False),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_gradient_matches_finite_differences(name):
    f, shapes, positive, _ = OPS[name]
    args = rng_args(shapes, positive=positive)
    loss = weighted(f, args)
    got = eager.grad(loss, argnums=tuple(range(len(args))))(*args)
    for g, w, a in zip(got, numeric_grads(loss, args), args):
        assert g.shape == a.shape and g.dtype == a.dtype
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(n for n, c in OPS.items() if c[3]))
def test_op_gradient_matches_compiler(name):
    f, shapes, positive, _ = OPS[name]
    args = rng_args(shapes, positive=positive)
    loss = weighted(f, args)
    nums = tuple(range(len(args)))
    got = eager.grad(loss, argnums=nums)(*args)
    want = ferrule.grad(loss, argnums=nums)(*args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


# -- models -------------------------------------------------------------------------

MODELS = {
    "lstm": (lambda G, c: fnp.sum(lstm(G, c)[0] ** 2) + fnp.sum(lstm(G, c)[1]), [(3, 16), (3, 4)]),
    "gru": (weighted(gru, rng_args([(3, 12), (3, 4)])), [(3, 12), (3, 4)]),
    "mlp": (mlp_loss, [(5, 7), (7,), (7, 2), (4, 5), (4, 2)]),
    "logsumexp": (lambda x: fnp.sum(logsumexp(x, axis=1) * logsumexp(x)), [(3, 5)]),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_gradients_match_finite_differences_and_compiler(name):
    f, shapes = MODELS[name]
    args = rng_args(shapes, seed=3)
    nums = tuple(range(len(args)))
    value, got = eager.value_and_grad(f, argnums=nums)(*args)
    np.testing.assert_allclose(value, f(*args), rtol=1e-12)
    for g, w in zip(got, numeric_grads(f, args)):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
    for g, w in zip(got, ferrule.grad(f, argnums=nums)(*args)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_float32_inputs_give_float32_gradients():
    G, c = (a.astype(np.float32) for a in rng_args([(3, 16), (3, 4)]))
    f = MODELS["lstm"][0]
    got = eager.grad(f, argnums=(0, 1))(G, c)
    want = eager.grad(f, argnums=(0, 1))(G.astype(np.float64), c.astype(np.float64))
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


# -- the API ------------------------------------------------------------------------

def test_vjp_multiple_outputs_zero_cotangents_and_reuse():
    G, c = rng_args([(3, 16), (3, 4)])
    (h, c2), pb = eager.vjp(lstm, G, c)
    np.testing.assert_allclose(h, lstm(G, c)[0], rtol=1e-14)
    dh, dc = rng_args([(3, 4), (3, 4)], seed=5)
    full = pb((dh, dc))
    only_h = pb((dh, rules.ZeroTangent()))
    only_c = pb((None, dc))
    for a, b, f in zip(only_h, only_c, full):  # linear in the cotangent; pullback reusable
        np.testing.assert_allclose(a + b, f, rtol=1e-12, atol=1e-14)
    want = ferrule.vjp(lstm, G, c)[1]((dh, dc))
    for g, w in zip(full, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_grad_argnums_unused_input_and_has_aux():
    x, y, z = rng_args([(3,), (3,), (3,)])
    gx, gz = eager.grad(lambda x, y, z: fnp.sum(x * y), argnums=(0, 2))(x, y, z)
    np.testing.assert_allclose(gx, y, rtol=1e-15)
    np.testing.assert_array_equal(gz, np.zeros(3))
    g, aux = eager.grad(lambda x: (fnp.sum(x * x), x * 2.0), has_aux=True)(x)
    np.testing.assert_allclose(g, 2 * x, rtol=1e-15)
    np.testing.assert_allclose(aux, 2 * x, rtol=1e-15)
    assert type(aux) is np.ndarray


def test_python_control_flow_on_values_is_allowed():
    def f(x):
        return fnp.sum(x * x) if fnp.sum(x) > 0 else fnp.sum(-x)
    x = np.array([1.0, 2.0])
    np.testing.assert_allclose(eager.grad(f)(x), 2 * x)
    np.testing.assert_allclose(eager.grad(f)(-x), -np.ones(2))


def test_max_reduction_ties_share_the_cotangent():
    g = eager.grad(lambda x: fnp.max(x))(np.array([1.0, 3.0, 3.0]))
    np.testing.assert_allclose(g, [0.0, 0.5, 0.5])
    g = eager.grad(lambda x: fnp.sum(fnp.maximum(x, 1.0)))(np.array([1.0, 2.0]))
    np.testing.assert_allclose(g, [0.5, 1.0])  # a tie splits it (docs/conventions.md)


# -- errors -------------------------------------------------------------------------

def test_op_without_vjp_is_a_clear_error():
    with pytest.raises(eager.UnsupportedOpError, match=r"no VJP for numpy\.sort .*test_eager\.py"):
        eager.grad(lambda x: fnp.sum(np.sort(x)))(np.ones(3))
    with pytest.raises(eager.UnsupportedOpError, match=r"numpy\.add\.reduce"):
        eager.grad(lambda x: np.add.reduce(x))(np.ones(3))
    with pytest.raises(eager.UnsupportedOpError, match=r"numpy\.clip with respect to its argument 'a_min'"):
        eager.grad(lambda x: fnp.sum(np.clip(np.ones(3), x, 2.0)))(np.zeros(3))


@pytest.mark.parametrize("bad", [lambda x: fnp.sum(np.asarray(x)), lambda x: float(fnp.sum(x)),
                                 lambda x: x.__setitem__(0, 1.0)])
def test_dropping_a_var_from_the_tape_is_an_error(bad):
    with pytest.raises(eager.EagerError, match="Var"):
        eager.grad(bad)(np.ones(3))


def test_grad_needs_a_scalar_and_is_first_order_only():
    with pytest.raises(eager.EagerError, match="must return a scalar"):
        eager.grad(lambda x: x * 2.0)(np.ones(3))
    with pytest.raises(eager.EagerError, match="first order only"):
        eager.grad(lambda x: fnp.sum(eager.grad(lambda y: fnp.sum(y * y))(x)))(np.ones(3))
    with pytest.raises(eager.EagerError, match="float arrays"):
        eager.grad(lambda x: fnp.sum(x))(np.arange(3))


# -- rules ---------------------------------------------------------------------------
# The LSTM cell's pointwise part with the rule of the original request
# (models.lstm_pointwise): under an AD with forward mode it builds its pullback
# from five one-hot frule_via_ad directions; otherwise it opts out.
# models.RULE_BRANCHES records which ran.

def lstm_rule_loss(G, c):
    i, f, g, o = fnp.split(G, 4, axis=1)
    h, c2 = lstm_pointwise(i, f, g, o, c)
    return fnp.sum(h * h) + fnp.sum(c2)


def test_lstm_rule_takes_fallback_under_eager_and_forward_mode_under_compiler():
    G, c = rng_args([(3, 8), (3, 2)], seed=11)
    before = len(RULE_BRANCHES)
    eg = eager.grad(lstm_rule_loss, argnums=(0, 1))(G, c)
    assert RULE_BRANCHES[before:] == ["opt_out"]
    compiled = ferrule.grad(lstm_rule_loss, argnums=(0, 1))
    cg = compiled(G, c)
    assert RULE_BRANCHES[before:] == ["opt_out", "forward"]
    traced = ferrule.jit(compiled).lower(G, c).as_text("traced")
    assert "ad.frule_via_ad" in traced and "ad.custom_rrule" in traced
    for a, b, w in zip(eg, cg, numeric_grads(lstm_rule_loss, [G, c])):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(a, w, rtol=1e-6, atol=1e-7)


def test_eager_config_traits_and_no_forward_mode():
    cfg = eager.EagerConfig()
    assert isinstance(cfg, rules.RuleConfig) and isinstance(cfg, rules.HasReverseMode)
    assert isinstance(cfg, rules.NoForwardsMode) and not isinstance(cfg, rules.HasForwardsMode)
    with pytest.raises(NotImplementedError, match="no forward mode"):
        rules.frule_via_ad(cfg, (rules.NoTangent(), np.ones(2)), fnp.tanh, np.ones(2))


# A rule whose pullback calls another primitive that has its own rule; the
# inner rule scales by 2 on purpose, so its use is visible in the result.
@rules.primitive
def scale3(x):
    return x * 3.0


@rules.rrule(scale3)
def scale3_rrule(config, x):
    return x * 3.0, lambda ybar: (rules.NoTangent(), ybar * 3.0)


@rules.primitive
def cube(x):
    return x * x * x


@rules.rrule(cube)
def cube_rrule(config, x):
    return x * x * x, lambda ybar: (rules.NoTangent(), scale3(x * x * ybar))


def test_nested_rules_under_both_ads():
    x = rng_args([(5,)])[0]
    loss = lambda x: fnp.sum(cube(scale3(x)))  # noqa: E731
    want = 81.0 * x ** 2
    np.testing.assert_allclose(eager.grad(loss)(x), want, rtol=1e-12)
    np.testing.assert_allclose(ferrule.grad(loss)(x), want, rtol=1e-12)


INNER_CALLS = []


@rules.primitive
def inner_softplus(x):
    return softplus(x)


@rules.rrule(inner_softplus)
def inner_softplus_rrule(config, x):
    INNER_CALLS.append(type(config).__name__)
    return softplus(x), lambda ybar: (rules.NoTangent(), ybar * sigmoid(x))


@rules.primitive
def outer(x, y):
    return inner_softplus(x * y) + y


@rules.rrule(outer)
def outer_rrule(config, x, y):
    return rules.opt_out()  # the tape records outer's body, which calls inner's rule


@rules.primitive
def via_ad(x):
    return fnp.tanh(x) * x


@rules.rrule(via_ad)
def via_ad_rrule(config, x):
    y, pb = rules.rrule_via_ad(config, via_ad, x)  # the AD differentiates the primal
    return y, lambda ybar: (rules.NoTangent(), pb(ybar)[1] * 1.0)


def test_opt_out_body_uses_inner_rules_and_rrule_via_ad():
    x, y = rng_args([(4,), (4,)], seed=2)
    f = lambda x, y: fnp.sum(outer(x, y) * outer(y, x))  # noqa: E731
    INNER_CALLS.clear()
    got = eager.grad(f, argnums=(0, 1))(x, y)
    assert INNER_CALLS == ["EagerConfig", "EagerConfig"]
    for g, w in zip(got, numeric_grads(f, [x, y])):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
    g = eager.grad(lambda x: fnp.sum(via_ad(x)))(x)
    t = np.tanh(x)
    np.testing.assert_allclose(g, (1 - t * t) * x + t, rtol=1e-12)


@rules.primitive
def frule_only(x):
    return fnp.sin(x)


@rules.frule(frule_only)
def frule_only_frule(config, tangents, x):
    return fnp.sin(x), tangents[1] * fnp.cos(x)


def test_primitive_with_only_an_frule_is_differentiated_through_its_primal():
    x = rng_args([(4,)])[0]
    np.testing.assert_allclose(eager.grad(lambda x: fnp.sum(frule_only(x)))(x), np.cos(x))


@rules.primitive
def twice(x, y):
    return x * 2.0 + y


@rules.rrule(twice)
def twice_too_many(config, x, y):
    return x * 2.0 + y, lambda ybar: (rules.NoTangent(), ybar * 2.0, ybar, ybar)


@rules.primitive
def twice2(x, y):
    return x * 2.0 + y


@rules.rrule(twice2)
def twice_wrong_shape(config, x, y):
    return x * 2.0 + y, lambda ybar: (rules.NoTangent(), ybar * 2.0, fnp.sum(ybar, axis=0))


@rules.primitive
def twice3(x, y):
    return x * 2.0 + y


@rules.rrule(twice3)
def twice_no_pullback(config, x, y):
    return x * 2.0 + y


def test_bad_rules_give_clear_errors_naming_the_rule():
    x, y = rng_args([(3, 2), (3, 2)])
    with pytest.raises(eager.RuleError, match=r"pullback of rule twice_too_many .*rrule of twice\)"
                                              r".*3 entries; got 4 entries"):
        eager.grad(lambda x, y: fnp.sum(twice(x, y)), argnums=(0, 1))(x, y)
    with pytest.raises(eager.RuleError, match=r"rule twice_wrong_shape .* shape \(2,\) for "
                                              r"argument 2, which has shape \(3, 2\)"):
        eager.grad(lambda x, y: fnp.sum(twice2(x, y)))(x, y)
    with pytest.raises(eager.RuleError, match=r"rule twice_no_pullback .* must return \(y, pullback\)"):
        eager.grad(lambda x: fnp.sum(twice3(x, y)))(x)


def test_forward_pullback_helper_opts_out_under_eager():
    f = rules.forward_pullback(lambda a, b: (fnp.tanh(a) * b, a * b))
    a, b = rng_args([(3,), (3,)], seed=4)
    loss = lambda a, b: fnp.sum(f(a, b)[0] * f(a, b)[1])  # noqa: E731
    got = eager.grad(loss, argnums=(0, 1))(a, b)
    for g, c, w in zip(got, ferrule.grad(loss, argnums=(0, 1))(a, b), numeric_grads(loss, [a, b])):
        np.testing.assert_allclose(g, c, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
