"""ferrule.rules.testing: the rule-author kit passes correct rules and fails
wrong ones with readable messages (rule, argument, errors, sample values)."""

import numpy as np
import pytest

import ferrule.numpy as fnp
from ferrule import eager, rules
from models import RULE_BRANCHES, lstm_pointwise
# Imported by name on purpose: pytest must not collect them as tests.
from ferrule.rules.testing import RuleCheck, TestingConfig, test_frule, test_rrule


def rng_args(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


# -- correct rules --------------------------------------------------------------

@rules.primitive
def tanh_mul(x, y):
    return fnp.tanh(x) * y


@rules.rrule(tanh_mul)
def tanh_mul_rrule(config, x, y):
    t = fnp.tanh(x)
    return t * y, lambda ybar: (rules.NoTangent(), ybar * y * (1.0 - t * t), ybar * t)


@rules.frule(tanh_mul)
def tanh_mul_frule(config, tangents, x, y):
    _, dx, dy = tangents
    t = fnp.tanh(x)
    return t * y, dx * y * (1.0 - t * t) + dy * t


@rules.primitive
def pair(x):
    return fnp.exp(x), fnp.sum(x * x, axis=0)


@rules.rrule(pair)
def pair_rrule(config, x):
    e = fnp.exp(x)

    def pullback(ybar):
        de, ds = ybar
        return rules.NoTangent(), de * e + 2.0 * x * ds
    return (e, fnp.sum(x * x, axis=0)), pullback


def test_correct_rrule_and_frule_pass_with_dot_product_identity():
    x, y = rng_args([(3, 4), (3, 4)])
    check = test_rrule(tanh_mul, x, y)
    assert isinstance(check, RuleCheck) and not check.opted_out
    assert check.max_abs_err < 1e-8
    lhs, rhs = check.dot_product  # both rules exist: the identity was checked
    assert lhs == pytest.approx(rhs, rel=1e-10)
    check = test_frule(tanh_mul, x, y)
    assert check.max_rel_err < 1e-5 and check.dot_product is not None


def test_multi_output_rrule_passes():
    check = test_rrule(pair, rng_args([(3, 2)])[0])
    assert check.dot_product is None  # no frule: nothing to compare with


def test_float32_arguments_use_float32_tolerances():
    x, y = (a.astype(np.float32) for a in rng_args([(3, 4), (3, 4)]))
    test_rrule(tanh_mul, x, y)
    test_frule(tanh_mul, x, y)


# -- the LSTM rule (models.lstm_pointwise) under both configs ------------------------

def test_lstm_rule_forward_branch_by_default_and_fallback_under_eager_config():
    xs = rng_args([(3, 2)] * 5, seed=1)
    RULE_BRANCHES.clear()
    check = test_rrule(lstm_pointwise, *xs)  # frule_via_ad runs through the compiler
    assert RULE_BRANCHES == ["forward"] and not check.opted_out
    check = test_rrule(lstm_pointwise, *xs, config=eager.EagerConfig())
    assert RULE_BRANCHES == ["forward", "opt_out"] and check.opted_out
    assert "rrule_via_ad" in check.notes[0]


def test_forward_pullback_helper_passes():
    f = rules.forward_pullback(lambda a, b: fnp.tanh(a) * b)
    test_rrule(f, *rng_args([(4,), (4,)], seed=2))


def test_testing_config_runs_chunked_frule_via_ad_through_the_compiler():
    x = rng_args([(3,)])[0]
    cfg = TestingConfig()
    assert isinstance(cfg, rules.HasForwardsMode) and isinstance(cfg, rules.HasReverseMode)
    y, (d1, d2) = rules.frule_via_ad(cfg, [(rules.NoTangent(), np.ones(3), rules.ZeroTangent()),
                                           (rules.NoTangent(), rules.ZeroTangent(), np.ones(3))],
                                     tanh_mul, x, 2.0 * x)
    t = np.tanh(x)
    np.testing.assert_allclose(y, t * 2 * x, rtol=1e-12)
    np.testing.assert_allclose(d1, 2 * x * (1 - t * t), rtol=1e-12)
    np.testing.assert_allclose(d2, t, rtol=1e-12)


# -- wrong rules fail readably --------------------------------------------------------

@rules.primitive
def my_sin(x, scale):
    return fnp.sin(x) * scale


@rules.rrule(my_sin)
def my_sin_sign_flip(config, x, scale):
    return fnp.sin(x) * scale, lambda ybar: (rules.NoTangent(), -ybar * fnp.cos(x) * scale,
                                             ybar * fnp.sin(x))


def test_sign_flip_fails_with_readable_message():
    x, s = rng_args([(2, 3), (2, 3)])
    with pytest.raises(AssertionError) as e:
        test_rrule(my_sin, x, s)
    msg = str(e.value)
    assert "rule my_sin_sign_flip (the rrule of my_sin)" in msg
    assert "cotangent of argument 1 (x), shape (2, 3) does not match finite differences" in msg
    assert "argument 2" not in msg  # the scale's cotangent is right
    assert "6 of 6 elements outside" in msg and "max abs error" in msg and "max rel error 2" in msg
    assert "expected" in msg and "got" in msg
    # the sample shows expected and got with opposite signs
    row = msg.splitlines()[-1].split()
    assert float(row[-2]) == pytest.approx(-float(row[-1]))


@rules.primitive
def sq(x):
    return x * x


@rules.rrule(sq)
def sq_wrong_shape(config, x):
    return x * x, lambda ybar: (rules.NoTangent(), fnp.sum(2.0 * x * ybar, axis=0))


@rules.primitive
def sq2(x):
    return x * x


@rules.rrule(sq2)
def sq_wrong_count(config, x):
    return x * x, lambda ybar: 2.0 * x * ybar


@rules.primitive
def sq3(x):
    return x * x


@rules.rrule(sq3)
def sq_wrong_primal(config, x):
    return x * x + 1e-3, lambda ybar: (rules.NoTangent(), 2.0 * x * ybar)


@rules.primitive
def sq4(x):
    return x * x


@rules.rrule(sq4)
def sq_df_not_notangent(config, x):
    return x * x, lambda ybar: (2.0 * x * ybar, 2.0 * x * ybar)


@pytest.mark.parametrize("f, pattern", [
    (sq, r"(?s)sq_wrong_shape .*cotangent of argument 1 \(x\), shape \(3, 2\): the pullback "
         r"returned shape \(2,\)"),
    (sq2, r"(?s)sq_wrong_count .*must return \(∂f, x̄1\): 2 entries; got ndarray"),
    (sq3, r"(?s)sq_wrong_primal .*primal output 1 does not match the primal function"),
    (sq4, r"(?s)sq_df_not_notangent .*first entry \(the tangent of f itself\) should be NoTangent"),
])
def test_malformed_rules_fail(f, pattern):
    with pytest.raises(AssertionError, match=pattern) as e:
        test_rrule(f, rng_args([(3, 2)])[0])
    assert f"(the rrule of {f.__name__})" in str(e.value)


@rules.primitive
def cube(x):
    return x * x * x


@rules.frule(cube)
def cube_frule_wrong(config, tangents, x):
    return x * x * x, 2.0 * x * x * tangents[1]  # should be 3 x²


@rules.rrule(cube)
def cube_rrule(config, x):
    return x * x * x, lambda ybar: (rules.NoTangent(), 3.0 * x * x * ybar)


def test_wrong_frule_fails_and_dot_product_catches_the_mismatch():
    x = rng_args([(4,)])[0]
    with pytest.raises(AssertionError, match=r"(?s)cube_frule_wrong \(the frule of cube\).*"
                                             r"tangent of output 1, shape \(4,\) does not match"):
        test_frule(cube, x)
    # test_rrule finds the rrule right, then the identity against the frule fails
    with pytest.raises(AssertionError, match=r"dot-product identity fails between frule "
                                             r"cube_frule_wrong .* and rrule cube_rrule"):
        test_rrule(cube, x)


def _cube_plain(x):
    return x * x * x


def test_no_rule_registered():
    with pytest.raises(AssertionError, match="no rrule is registered for '_cube_plain'"):
        test_rrule(rules.primitive(_cube_plain), np.ones(2))
    with pytest.raises(AssertionError, match="no frule is registered for 'sq'"):
        test_frule(sq, np.ones(2))
