"""``ferrule.rules``: ChainRules-style rules, written once for any AD.

A rule author marks the primal with :func:`primitive` and registers
``@rrule(f)`` / ``@frule(f)`` rules that take a :class:`RuleConfig` first.
Inside a reverse rule, :func:`frule_via_ad` asks whichever AD runs the rule
for forward mode; guard it with ``isinstance(config, HasForwardsMode)`` so the
rule still works under an AD without forward mode (``ferrule.eager``).
Under ferrule's compiler, ``frule_via_ad`` calls become fused tangent code:
one region computing the primal and every requested tangent direction.

Modules: :mod:`.config`, :mod:`.registry` and :mod:`.tangents` are the API
(pure Python); :mod:`.compiler` is how ferrule's compiler traces rules
(importing this package connects it to primitive calls); :mod:`.testing`
is the rule authors' test kit (``rules.testing``, imported on first use).
"""

import functools

from .. import numpy as fnp
from . import compiler  # noqa: F401  (connects ferrule's compiler to primitive calls)
from .config import (HasForwardsMode, HasReverseMode, NoForwardsMode, NoReverseMode,
                     RuleConfig)
from .registry import OptOut, Primitive, frule, opt_out, primitive, rrule
from .tangents import NoTangent, ZeroTangent


def frule_via_ad(config: RuleConfig, tangents, f, *args):
    """Forward-mode derivative of ``f`` at ``args`` from the AD behind ``config``.

    ``tangents`` is ``(ḟ, ẋ1, ..., ẋn)`` as in ChainRules and the result is
    ``(y, ẏ)``; or, beyond ChainRules, a *list* of such tuples (K directions
    at once, "chunked"), and then ``ẏ`` is a list of K tangents computed in
    the same sweep.
    """
    return config.frule_via_ad(tangents, f, *args)


def rrule_via_ad(config: RuleConfig, f, *args):
    """``(y, pullback)`` of ``f`` at ``args`` from the AD behind ``config``."""
    return config.rrule_via_ad(f, *args)


def forward_pullback(f):
    """Wrap an elementwise ``f`` so that its rrule is derived by forward mode.

    Like ForwardDiffPullbacks.jl's ``fwddiff``: the pullback runs one
    ``frule_via_ad`` with n one-hot directions (all n partials in one chunked
    sweep) and multiplies by the cotangent. Under ferrule it compiles to the
    same single fused backward region as the built-in reverse mode; under an
    AD without forward mode the rule opts out, so that AD differentiates ``f``
    itself. Only for elementwise ``f`` (same-shape arrays in and out).
    """
    prim = primitive(f)

    @rrule(prim)
    def _forward_pullback_rule(config, *xs):
        if not isinstance(config, HasForwardsMode):
            return opt_out()
        n = len(xs)
        ones = [fnp.ones_like(x) for x in xs]
        dirs = [(NoTangent(), *[ones[j] if j == k else ZeroTangent() for j in range(n)])
                for k in range(n)]
        y, ydots = frule_via_ad(config, dirs, f, *xs)
        multi = isinstance(y, tuple)

        def pullback(ybar):
            ybars = ybar if multi else (ybar,)
            grads = []
            for k in range(n):
                parts = ydots[k] if multi else (ydots[k],)
                g = None
                for yb, p in zip(ybars, parts):
                    if isinstance(yb, (NoTangent, ZeroTangent)):
                        continue
                    g = yb * p if g is None else g + yb * p
                grads.append(ZeroTangent() if g is None else g)
            return (NoTangent(), *grads)
        return y, pullback

    functools.update_wrapper(prim, f)
    return prim


def __getattr__(name):
    # ``rules.testing`` after a plain ``from ferrule import rules``: imported on
    # first use, as it imports ferrule's compiler and ferrule.eager (which
    # import this package).
    if name == "testing":
        import importlib
        return importlib.import_module(".testing", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["RuleConfig", "HasReverseMode", "NoReverseMode", "HasForwardsMode",
           "NoForwardsMode", "NoTangent", "ZeroTangent", "rrule", "frule", "primitive",
           "Primitive", "opt_out", "OptOut", "frule_via_ad", "rrule_via_ad",
           "forward_pullback"]
