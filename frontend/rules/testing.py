"""``ferrule.rules.testing``: check rules against finite differences.

In the spirit of ChainRulesTestUtils: ``test_rrule(f, *args)`` and
``test_frule(f, *args)`` run the rule registered for the primitive ``f``
EAGERLY, on the concrete numpy ``args``, and compare it with float64 central
finite differences of the primal ``f.fn`` — never with the rule itself:

* ``test_rrule``: the rule's primal output equals ``f.fn(*args)``; its
  pullback, given random output cotangents ``ȳ``, returns ``(∂f, x̄1, ...)``
  — one entry per argument plus ``∂f``, a zero tangent — with each ``x̄k`` of
  its argument's shape and equal to ``Jkᵀ·ȳ`` by finite differences (two
  primal evaluations per element: keep the arrays small).
* ``test_frule``: the rule's tangent ``ẏ`` for random ``ẋ`` equals the
  directional finite difference ``(f(x + hẋ) - f(x - hẋ)) / 2h``.
* When ``f`` has both rules, both also check the dot-product identity
  ``⟨J·ẋ, ȳ⟩ = ⟨ẋ, Jᵀ·ȳ⟩`` between the frule's tangent and the rrule's
  cotangents.

Which config the rule sees (``config=``):

* default, :class:`TestingConfig`: ``HasReverseMode`` and ``HasForwardsMode``.
  Its ``frule_via_ad`` runs ferrule's compiler (``ferrule.jvp`` of the primal,
  every direction in one compiled call), so a rule's forward-mode branch is
  tested with exact derivatives; its ``rrule_via_ad`` runs the eager tape
  (``ferrule.eager.vjp``).
* ``config=ferrule.eager.EagerConfig()`` tests the branch the eager AD takes.
  A rule that returns ``opt_out()`` is then checked through the pullback that
  config's AD would use instead: ``config.rrule_via_ad`` of the primal.

Only float arrays among ``args`` are differentiated; other arguments are
constants. Default tolerances depend on the lowest precision among the float
arguments: ``rtol=1e-5, atol=1e-7`` for float64 (finite differences are good
to about 1e-9), ``rtol=2e-3, atol=1e-4`` for float32 (the rule runs in
float32). A failure raises ``AssertionError`` naming the rule, the argument,
the largest absolute and relative errors, and a sample of expected and
computed values. Both functions return a :class:`RuleCheck`.

Where the kit sits: above both ADs it checks rules with. The rest of
``ferrule.rules`` (configs, the registry, tangents) is the API both ADs
implement and imports neither; this module imports ferrule's compiler
(``jit``, ``jvp``) and ``ferrule.eager``, as a client of both.
"""

import inspect
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from ..api import jit
from ..eager import CONFIG as EAGER_CONFIG
from ..pytree import flatten, unflatten
from ..transforms import jvp
from .config import HasForwardsMode, HasReverseMode, RuleConfig
from .registry import OptOut, Primitive, find_frule, find_rrule
from .tangents import AbstractZero, NoTangent


class TestingConfig(RuleConfig, HasReverseMode, HasForwardsMode):
    """The default config of the kit: forward mode by ferrule's compiler,
    reverse mode by the eager tape, both on concrete arrays."""

    __test__ = False  # not a pytest test class

    def frule_via_ad(self, tangents, f, *args):
        fn = f.fn if isinstance(f, Primitive) else f
        chunked = isinstance(tangents, list)
        dirs = tangents if chunked else [tangents]
        xs = [np.asarray(a) for a in args]
        tvals = []
        for d in dirs:
            if not isinstance(d, tuple) or len(d) != len(xs) + 1:
                raise ValueError(f"frule_via_ad tangents must be (ḟ, ẋ1, ..., ẋ{len(xs)}) or "
                                 f"a list of such tuples; got {d!r}")
            tvals.append(tuple(np.zeros_like(x) if t is None or isinstance(t, AbstractZero)
                               else np.asarray(t, x.dtype) for t, x in zip(d[1:], xs)))
        res = jit(lambda p, ts: [jvp(fn, p, t) for t in ts])(tuple(xs), tvals)
        ydots = [r[1] for r in res]
        return res[0][0], (ydots if chunked else ydots[0])

    def rrule_via_ad(self, f, *args):
        return EAGER_CONFIG.rrule_via_ad(f, *args)


@dataclass
class RuleCheck:
    """What a check did: the rule, whether it opted out (and what was checked
    instead), the largest errors against finite differences, and the two
    sides of the dot-product identity when it was checked."""

    rule: str
    opted_out: bool = False
    max_abs_err: float = 0.0
    max_rel_err: float = 0.0
    dot_product: Optional[Tuple[float, float]] = None
    notes: List[str] = field(default_factory=list)


def _is_float(a) -> bool:
    return isinstance(a, (np.ndarray, np.floating)) and np.asarray(a).dtype.kind == "f"


def _tolerances(args, rtol, atol):
    lowest = min((np.asarray(a).dtype.itemsize for a in args if _is_float(a)), default=8)
    d_rtol, d_atol = (1e-5, 1e-7) if lowest >= 8 else (2e-3, 1e-4)
    return (d_rtol if rtol is None else rtol), (d_atol if atol is None else atol)


def _fn(f):
    return f.fn if isinstance(f, Primitive) else f


def _arg_label(f, k):
    try:
        names = list(inspect.signature(_fn(f)).parameters)
        return f"argument {k + 1} ({names[k]})" if k < len(names) else f"argument {k + 1}"
    except (TypeError, ValueError):
        return f"argument {k + 1}"


def _rule_label(rule, f, kind):
    return f"{getattr(rule, '__qualname__', kind)} (the {kind} of {getattr(f, '__name__', f)})"


def _leaves64(fn, args):
    """The primal's outputs at float64 copies of ``args``, as a list of arrays."""
    a64 = [np.asarray(a, np.float64) if _is_float(a) else a for a in args]
    return [np.asarray(y, np.float64) for y in flatten(fn(*a64))[0]], a64


def _as_array(t, like):
    if t is None or isinstance(t, AbstractZero):
        return np.zeros(np.shape(like))
    return np.asarray(t, np.float64)


def _compare(what, expected, got, rtol, atol, check: RuleCheck, reference="finite differences"):
    """A failure message (or None) for ``got`` against ``expected``."""
    expected, got = np.asarray(expected, np.float64), np.asarray(got, np.float64)
    if got.shape != expected.shape:
        return f"{what}: shape {got.shape}, expected {expected.shape}"
    err = np.abs(got - expected)
    rel = err / np.maximum(np.abs(expected), max(atol, np.finfo(np.float64).tiny))  # no 0/0
    if err.size:
        check.max_abs_err = max(check.max_abs_err, float(err.max()))
        check.max_rel_err = max(check.max_rel_err, float(rel.max()))
    bad = ~(err <= atol + rtol * np.abs(expected))  # NaN counts as bad
    if not bad.any():
        return None
    worst = np.unravel_index(int(np.argmax(np.where(bad, err, -1.0))), err.shape) if err.ndim else ()
    lines = [f"{what} does not match {reference}",
             f"  {int(bad.sum())} of {err.size} elements outside rtol={rtol:g}, atol={atol:g}; "
             f"max abs error {np.nanmax(err):.3g} at index {tuple(int(i) for i in worst)}, "
             f"max rel error {np.nanmax(rel):.3g}",
             f"  {'index':<14}{'expected':>16}{'got':>16}"]
    for idx in [worst] + [tuple(i) for i in np.argwhere(bad)[:4] if tuple(i) != worst][:3]:
        lines.append(f"  {str(tuple(int(i) for i in idx)):<14}{expected[idx]:>16.8g}{got[idx]:>16.8g}")
    return "\n".join(lines)


def _fail(label, failures):
    if failures:
        raise AssertionError(f"rule {label}:\n" + "\n".join(failures))


def _primal_failures(fn, args, y, rtol, atol, check):
    want = flatten(fn(*args))[0]
    got = flatten(y)[0]
    if len(got) != len(want):
        return [f"the rule returned {len(got)} outputs; the primal returns {len(want)}"]
    return [m for k, (w, g) in enumerate(zip(want, got))
            if (m := _compare(f"primal output {k + 1}", w, g, rtol, atol, RuleCheck(""),
                                 "the primal function")) is not None]


def _dot_identity(f, check, ydots, ybars, x_pairs, rtol, atol):
    """⟨J·ẋ, ȳ⟩ = ⟨ẋ, Jᵀ·ȳ⟩ between the frule's ẏ and the rrule's x̄
    (``x_pairs``: ``(ẋ, x̄)`` per float argument): a failure message or None."""
    pairs_y = [np.asarray(a, np.float64) * np.asarray(b, np.float64) for a, b in zip(ydots, ybars)]
    pairs_x = [np.asarray(a, np.float64) * np.asarray(b, np.float64) for a, b in x_pairs]
    lhs, rhs = sum(float(p.sum()) for p in pairs_y), sum(float(p.sum()) for p in pairs_x)
    scale = sum(float(np.abs(p).sum()) for p in pairs_y + pairs_x)
    check.dot_product = (lhs, rhs)
    if abs(lhs - rhs) <= atol + rtol * scale:
        return None
    return (f"dot-product identity fails between frule "
            f"{_rule_label(find_frule(f), f, 'frule')} and rrule "
            f"{_rule_label(find_rrule(f), f, 'rrule')}: ⟨J·ẋ, ȳ⟩ = {lhs:.10g} but "
            f"⟨ẋ, Jᵀ·ȳ⟩ = {rhs:.10g} (difference {abs(lhs - rhs):.3g}); one of them is wrong")


def _run_rrule(f, args, config):
    """``(y, pullback, opted_out)`` from the rrule of ``f`` under ``config``."""
    rule = find_rrule(f)
    res = rule(config, *args)
    if isinstance(res, OptOut):
        if not isinstance(config, HasReverseMode):
            raise AssertionError(f"rule {_rule_label(rule, f, 'rrule')} opted out and "
                                 f"{type(config).__name__} has no reverse mode to fall back on")
        y, pb = config.rrule_via_ad(f, *args)
        return y, pb, True
    if not isinstance(res, tuple) or len(res) != 2 or not callable(res[1]):
        raise AssertionError(f"rule {_rule_label(rule, f, 'rrule')} must return (y, pullback) "
                             f"or rules.opt_out(); got {type(res).__name__}")
    return res[0], res[1], False


def _run_frule(f, args, tangents, config):
    """``(y, ẏ, opted_out)`` from the frule of ``f`` under ``config``."""
    rule = find_frule(f)
    res = rule(config, tangents, *args)
    if isinstance(res, OptOut):
        if not isinstance(config, HasForwardsMode):
            raise AssertionError(f"rule {_rule_label(rule, f, 'frule')} opted out and "
                                 f"{type(config).__name__} has no forward mode to fall back on")
        y, ydot = config.frule_via_ad(tangents, f, *args)
        return y, ydot, True
    if not isinstance(res, tuple) or len(res) != 2:
        raise AssertionError(f"rule {_rule_label(rule, f, 'frule')} must return (y, ẏ); "
                             f"got {type(res).__name__}")
    return res[0], res[1], False


def _prepare(find, kind: str, f, args, rtol, atol, config, seed):
    """What both checks start from: the rule's label (an error if ``f`` has
    no ``kind`` rule), the config, tolerances, the function and an RNG."""
    rule = find(f)
    if rule is None:
        raise AssertionError(f"no {kind} is registered for {getattr(f, '__name__', f)!r}")
    config = TestingConfig() if config is None else config
    rtol, atol = _tolerances(args, rtol, atol)
    return (_rule_label(rule, f, kind), config, rtol, atol, _fn(f),
            np.random.default_rng(seed))


def test_rrule(f, *args, rtol=None, atol=None, config: Optional[RuleConfig] = None,
               seed: int = 0, step: float = 1e-6) -> RuleCheck:
    """Check the rrule registered for ``f`` at ``args`` (see the module docstring)."""
    label, config, rtol, atol, fn, rng = _prepare(find_rrule, "rrule", f, args, rtol, atol,
                                                  config, seed)
    y, pb, opted = _run_rrule(f, args, config)
    check = RuleCheck(label, opted_out=opted)
    if opted:
        check.notes.append(f"opted out under {type(config).__name__}: checked its "
                           f"rrule_via_ad of the primal instead")
    _fail(label, _primal_failures(fn, args, y, rtol, atol, check))
    y_leaves, y_struct = flatten(y)
    ybars = [rng.standard_normal(np.shape(l)).astype(np.asarray(l).dtype) for l in y_leaves]
    cts = pb(unflatten(y_struct, ybars))
    n = len(args)
    if not isinstance(cts, tuple) or len(cts) != n + 1:
        got = f"{len(cts)} entries" if isinstance(cts, tuple) else type(cts).__name__
        want = ", ".join(["∂f"] + [f"x̄{k + 1}" for k in range(n)])
        _fail(label, [f"the pullback must return ({want}): {n + 1} entries; got {got}"])
    failures = []
    if not (cts[0] is None or isinstance(cts[0], AbstractZero)):
        failures.append(f"the pullback's first entry (the tangent of f itself) should be "
                        f"NoTangent(); got {type(cts[0]).__name__}")
    _, a64 = _leaves64(fn, args)
    xbars = []
    for k, (c, x) in enumerate(zip(cts[1:], args)):
        if not _is_float(x):
            xbars.append(None)
            continue
        what = f"cotangent of {_arg_label(f, k)}, shape {np.shape(x)}"
        if not (c is None or isinstance(c, AbstractZero)) and np.shape(c) != np.shape(x):
            failures.append(f"{what}: the pullback returned shape {np.shape(c)}")
            xbars.append(None)
            continue
        expected = np.zeros(np.shape(x))
        for j in np.ndindex(np.shape(x)):
            h = step * max(1.0, abs(float(a64[k][j])))
            outs = []
            for s in (h, -h):
                xk = a64[k].copy()
                xk[j] += s
                outs.append(_leaves64(fn, [*a64[:k], xk, *a64[k + 1:]])[0])
            expected[j] = sum(float(np.sum(yb * (p - m))) for yb, p, m in zip(ybars, *outs)) / (2 * h)
        xbars.append(_as_array(c, x))
        msg = _compare(what, expected, xbars[-1], rtol, atol, check)
        if msg:
            failures.append(msg)
    if not opted and find_frule(f) is not None and not failures:
        xdots = [rng.standard_normal(np.shape(x)).astype(np.asarray(x).dtype) if _is_float(x)
                 else NoTangent() for x in args]
        _, ydot, _ = _run_frule(f, args, (NoTangent(), *xdots), config)
        ydots = [_as_array(t, l) for t, l in zip(flatten(ydot)[0], y_leaves)]
        pairs = [(xd, xb) for xd, xb in zip(xdots, xbars) if xb is not None]
        msg = _dot_identity(f, check, ydots, ybars, pairs, rtol, atol)
        if msg:
            failures.append(msg)
    _fail(label, failures)
    return check


def test_frule(f, *args, tangents=None, rtol=None, atol=None,
               config: Optional[RuleConfig] = None, seed: int = 0,
               step: float = 1e-6) -> RuleCheck:
    """Check the frule registered for ``f`` at ``args`` along ``tangents``
    (``(ẋ1, ..., ẋn)``; random normal ones by default)."""
    label, config, rtol, atol, fn, rng = _prepare(find_frule, "frule", f, args, rtol, atol,
                                                  config, seed)
    if tangents is None:
        tangents = tuple(rng.standard_normal(np.shape(x)).astype(np.asarray(x).dtype)
                         if _is_float(x) else NoTangent() for x in args)
    y, ydot, opted = _run_frule(f, args, (NoTangent(), *tangents), config)
    check = RuleCheck(label, opted_out=opted)
    _fail(label, _primal_failures(fn, args, y, rtol, atol, check))
    y_leaves, ydot_leaves = flatten(y)[0], flatten(ydot)[0]
    if len(ydot_leaves) != len(y_leaves):
        _fail(label, [f"the tangent has {len(ydot_leaves)} leaves; the output has {len(y_leaves)}"])
    _, a64 = _leaves64(fn, args)
    scale = max([1.0] + [float(np.max(np.abs(a))) for a in a64 if _is_float(a) and np.size(a)])
    h = step * scale
    shifted = [_leaves64(fn, [a + s * np.asarray(t, np.float64) if _is_float(a) else a
                              for a, t in zip(a64, tangents)])[0] for s in (h, -h)]
    failures, ydots = [], []
    for k, (t, l, p, m) in enumerate(zip(ydot_leaves, y_leaves, *shifted)):
        what = f"tangent of output {k + 1}, shape {np.shape(l)}"
        if not (t is None or isinstance(t, AbstractZero)) and np.shape(t) != np.shape(l):
            failures.append(f"{what}: the rule returned shape {np.shape(t)}")
            continue
        ydots.append(_as_array(t, l))
        msg = _compare(what, (p - m) / (2 * h), ydots[-1], rtol, atol, check)
        if msg:
            failures.append(msg)
    if not opted and find_rrule(f) is not None and not failures:
        y2, pb, rr_opted = _run_rrule(f, args, config)
        if not rr_opted:
            ybars = [rng.standard_normal(np.shape(l)).astype(np.asarray(l).dtype) for l in y_leaves]
            cts = pb(unflatten(flatten(y2)[1], ybars))
            pairs = [(np.asarray(t), _as_array(c, x)) for t, c, x in zip(tangents, cts[1:], args)
                     if _is_float(x)]
            msg = _dot_identity(f, check, ydots, ybars, pairs, rtol, atol)
            if msg:
                failures.append(msg)
    _fail(label, failures)
    return check


test_rrule.__test__ = False  # importing these into a test module must not make them tests
test_frule.__test__ = False

__all__ = ["test_rrule", "test_frule", "TestingConfig", "RuleCheck"]
