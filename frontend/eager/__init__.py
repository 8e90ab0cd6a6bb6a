"""``ferrule.eager``: a second AD system — an eager numpy tape, reverse mode only.

Like autograd or Zygote, and independent of ferrule's compiler: a
:class:`Var` wraps a numpy value and records every numpy operation applied to
it (NEP 13 ``__array_ufunc__``, NEP 18 ``__array_function__``, operators,
indexing), so ``ferrule.numpy``'s plain-numpy fallbacks are recorded as they
are. The backward sweep applies each op's VJP from :mod:`ferrule.eager.vjps`.
It is a test oracle for the compiler, and the proof that rules are
AD-agnostic: its config :class:`EagerConfig` is ``NoForwardsMode``, so a rule
that asks for forward mode takes its fallback branch here.

Contracts:

* ``grad``, ``value_and_grad`` and ``vjp`` take float arrays, Python floats,
  or nested tuples/lists of them, and return plain numpy values; a gradient
  has its primal's shape and dtype (zeros where no cotangent reached it).
* float16 and bfloat16 (``ml_dtypes.bfloat16``) are floats, stored narrow and
  computed in float32 as under ``jit`` (:mod:`ferrule.eager.narrow`): a Var
  says its narrow dtype but holds float32; outputs and gradients are
  rounded once, to the narrow dtype, when they leave the tape.
* An op with no VJP raises :class:`UnsupportedOpError` naming it — never a
  silent zero. Ops whose result is piecewise constant or not a float array
  (comparisons, ``sign``, shape queries, ``*_like``) return plain arrays.
* Ties: ``maximum``/``minimum`` send the cotangent to the first argument (as
  ferrule's compiler does); ``max``/``min`` reductions split it equally
  among the tied elements.
* A call of a ``@rules.primitive`` with a Var among its arguments uses the
  registered rrule, called as ``rule(EagerConfig(), *plain_values)``; a rule
  returning ``opt_out()`` — or no rrule at all (e.g. only an frule: this AD
  has no forward mode) — records the primal's own ops instead. The rule's
  pullback gets zero arrays for outputs no cotangent reached, and its result
  is checked: ``(∂f, x̄1, ..., x̄n)``, each ``x̄k`` a zero tangent or an array
  of the argument's shape; otherwise :class:`RuleError` names the rule.
* First order: differentiating a function that is handed Vars (``grad`` of
  ``grad``) is refused; VJPs and pullbacks run on plain arrays, so a
  primitive called inside a pullback simply runs its primal.
* Vars are immutable: ``x[i] = v``, ``out=`` arguments, ``np.asarray(x)`` and
  ``float(x)`` raise (they would drop the value from the tape).
"""

import functools
from typing import Sequence, Union

import numpy as np

from ..rules import registry
from ..rules.config import HasReverseMode, NoForwardsMode, RuleConfig
from ..rules.registry import OptOut, Primitive
from ..rules.tangents import AbstractZero, NoTangent, ZeroTangent
from ..pytree import flatten, unflatten
from ..narrow import is_float
from .errors import EagerError, RuleError, UnsupportedOpError
from .narrow import label, stored
from .tape import Var, backprop, record, values
from .vjps import FUNCTION_VJPS, UFUNC_VJPS


class EagerConfig(RuleConfig, HasReverseMode, NoForwardsMode):
    """The eager tape's rule config: reverse mode only (like Zygote's)."""

    def frule_via_ad(self, tangents, f, *args):
        raise NotImplementedError(
            f"ferrule.eager has no forward mode (EagerConfig is NoForwardsMode), so it "
            f"cannot run frule_via_ad on {getattr(f, '__name__', f)!r}: guard the rule "
            f"with isinstance(config, rules.HasForwardsMode) and return rules.opt_out() "
            f"or compute the pullback another way")

    def rrule_via_ad(self, f, *args):
        """``(y, pullback)`` of ``f`` at plain ``args`` through the tape; the
        pullback returns ``(NoTangent(), x̄1, ...)``. A primitive is
        differentiated through its primal (not its own rule, which may be
        the caller)."""
        y, pb = vjp(f.fn if isinstance(f, Primitive) else f, *args)
        return y, lambda ybar: (NoTangent(), *pb(ybar))


CONFIG = EagerConfig()


def _rule_name(rule, prim):
    return f"{getattr(rule, '__qualname__', 'rrule')} (the rrule of {prim.__name__})"


def _check_cotangent(c, x, k, name):
    """``c`` as an array for argument ``k`` (``x``), or None for a zero."""
    if c is None or isinstance(c, AbstractZero):
        return None
    if isinstance(x, (Var, np.ndarray, np.generic)):
        c = values(c)
        if np.shape(c) != x.shape:
            raise RuleError(f"the pullback of rule {name} returned a cotangent of shape "
                            f"{np.shape(c)} for argument {k + 1}, which has shape {x.shape}")
    return c


def _call_primitive(prim: Primitive, args):
    """The call hook: a primitive called on Vars (see the module docstring)."""
    leaves, _ = flatten(args)
    if not any(isinstance(l, Var) for l in leaves):
        return NotImplemented
    rule = registry.find_rrule(prim)
    if rule is None:
        return prim.fn(*args)
    name = _rule_name(rule, prim)
    parents = [(k, a) for k, a in enumerate(args) if isinstance(a, Var)]
    if len(parents) != sum(isinstance(l, Var) for l in leaves):
        raise EagerError(f"rule {name}: Vars nested inside tuple/list arguments of a "
                         f"primitive are not supported; pass them as separate arguments")
    res = rule(CONFIG, *values(args))
    dt = label(args)
    if isinstance(res, OptOut):
        return prim.fn(*args)
    if not isinstance(res, tuple) or len(res) != 2 or not callable(res[1]):
        raise RuleError(f"rule {name} must return (y, pullback) or rules.opt_out(); "
                        f"got {type(res).__name__}")
    y, pullback = res
    y_leaves, y_struct = flatten(values(y))

    def backward(gs):
        cts = pullback(unflatten(y_struct, gs))
        n = len(args)
        if not isinstance(cts, tuple) or len(cts) != n + 1:
            got = f"{len(cts)} entries" if isinstance(cts, tuple) else type(cts).__name__
            raise RuleError(f"the pullback of rule {name} must return a tuple "
                            f"(∂f, {', '.join(f'x̄{k + 1}' for k in range(n))}) of {n + 1} "
                            f"entries; got {got}")
        checked = [_check_cotangent(c, x, k, name) for k, (c, x) in enumerate(zip(cts[1:], args))]
        return [checked[k] for k, _ in parents]
    outs = record(f"rule {name}", list(y_leaves), [a for _, a in parents], backward, dt)
    return unflatten(y_struct, outs)


registry.add_call_hook(_call_primitive)


def _inputs(leaves):
    out = []
    for l in leaves:
        if isinstance(l, Var):
            raise EagerError("ferrule.eager differentiates first order only: this function "
                             "was handed Vars (grad of grad?)")
        a = np.asarray(l)
        if not is_float(a.dtype):
            raise EagerError(f"ferrule.eager: can only differentiate with respect to float "
                             f"arrays, got dtype {a.dtype}")
        out.append(Var(a))
    return out


def _vjp_leaves(f, primals):
    """Run ``f`` on Vars; return (output leaves, output structure, pullback
    over cotangent leaves -> gradient leaves, primal structure)."""
    leaves, struct = flatten(tuple(primals))
    inputs = _inputs(leaves)
    out_leaves, out_struct = flatten(f(*unflatten(struct, inputs)))

    def pullback(ct_leaves):
        if len(ct_leaves) != len(out_leaves):
            raise EagerError(f"ferrule.eager: pullback got {len(ct_leaves)} cotangents for "
                             f"{len(out_leaves)} outputs")
        seeds = []
        for o, c in zip(out_leaves, ct_leaves):
            if c is None or isinstance(c, AbstractZero) or not isinstance(o, Var):
                continue
            c = np.asarray(values(c))
            if c.shape != o.shape:
                raise EagerError(f"ferrule.eager: cotangent of shape {c.shape} for an output "
                                 f"of shape {o.shape}")
            seeds.append((o, c.astype(o.value.dtype, copy=False)))  # float32 if narrow
        cts = backprop(seeds)
        # rounded once to the input's dtype (a narrow one's cotangent is narrow)
        return [np.array(cts[v.node.id][0], dtype=v.dtype) if v.node.id in cts
                else np.zeros(v.shape, v.dtype) for v in inputs]
    return out_leaves, out_struct, pullback, struct


def vjp(f, *primals):
    """``(outputs, pullback)``: ``outputs = f(*primals)`` as plain numpy values;
    ``pullback(cotangents)`` (same structure as the outputs; ``None`` or a
    ``ZeroTangent`` for none) returns a tuple, one cotangent per primal."""
    out_leaves, out_struct, pb, struct = _vjp_leaves(f, primals)

    def pullback(cts):
        leaves = [cts] if out_struct is None else flatten(_none_as_zero(cts))[0]
        return tuple(unflatten(struct, pb(leaves)))
    return unflatten(out_struct, [_stored(o) for o in out_leaves]), pullback


def _stored(o):
    """An output leaf off the tape: a Var's value, rounded to its narrow dtype."""
    return stored(o) if isinstance(o, Var) else values(o)


def _none_as_zero(cts):
    """A ``None`` cotangent is a zero (not an empty pytree node, as flatten
    takes it): one leaf per output."""
    if cts is None:
        return ZeroTangent()
    if isinstance(cts, (tuple, list)):
        return type(cts)(_none_as_zero(c) for c in cts)
    return cts


def value_and_grad(f, argnums: Union[int, Sequence[int]] = 0, has_aux: bool = False):
    """``(f(*args), ∂f/∂args[argnums])`` for scalar-valued ``f``; with
    ``has_aux``, ``f`` returns ``(value, aux)`` and the first result is that
    pair. A tuple ``argnums`` gives a tuple of gradients."""
    multi = not isinstance(argnums, int)
    nums = tuple(argnums) if multi else (argnums,)

    @functools.wraps(f)
    def vg(*args):
        ks = [k % len(args) for k in nums]

        def g(*diff):
            call = list(args)
            for k, d in zip(ks, diff):
                call[k] = d
            return f(*call)
        out_leaves, out_struct, pb, _ = _vjp_leaves(g, [args[k] for k in ks])
        value = _stored(out_leaves[0])
        if np.ndim(value) != 0 or (not has_aux and len(out_leaves) != 1):
            raise EagerError(f"ferrule.eager.grad: {getattr(f, '__name__', 'f')} must return "
                             f"a scalar; got shape {np.shape(value)} (use eager.vjp)")
        grads = unflatten(flatten(tuple(args[k] for k in ks))[1],
                          pb([np.ones((), np.result_type(value))] + [None] * (len(out_leaves) - 1)))
        picked = tuple(grads) if multi else grads[0]
        return unflatten(out_struct, [_stored(o) for o in out_leaves]), picked
    return vg


def grad(f, argnums: Union[int, Sequence[int]] = 0, has_aux: bool = False):
    """The gradient of scalar-valued ``f`` with respect to ``args[argnums]``
    (with ``has_aux``: ``(gradient, aux)``, as ``ferrule.grad``)."""
    vg = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def g(*args):
        out, grads = vg(*args)
        return (grads, out[1]) if has_aux else grads
    return g


def supported_ops():
    """Names of the numpy ops the tape differentiates (besides indexing and
    ``astype``, which are Var methods)."""
    return sorted({f.__name__ for f in (*UFUNC_VJPS, *FUNCTION_VJPS)})


__all__ = ["grad", "value_and_grad", "vjp", "Var", "EagerConfig", "CONFIG", "EagerError",
           "UnsupportedOpError", "RuleError", "supported_ops"]
