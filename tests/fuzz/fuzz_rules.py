"""The custom rule the random programs call: a primitive whose rrule gets
its derivative from ``frule_via_ad`` (the rule authors' common idiom), so
every program that uses it exercises custom rrules, forward mode inside a
reverse rule, and — under ``jvp`` — the rrule's transposition."""

import ferrule.numpy as fnp
from ferrule import rules


@rules.primitive
def fz_rule(x):
    """``x * tanh(x)``, smooth and even."""
    return x * fnp.tanh(x)


@rules.rrule(fz_rule)
def _fz_rrule(config, x):
    if not isinstance(config, rules.HasForwardsMode):
        return rules.opt_out()
    y, ydot = rules.frule_via_ad(config, (rules.NoTangent(), fnp.ones_like(x)), fz_rule, x)

    def pullback(ybar):
        return rules.NoTangent(), ybar * ydot
    return y, pullback
