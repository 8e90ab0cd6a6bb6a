"""Derivative rules of the non-pointwise ops: one entry per op, read by both
the ``forward`` and the ``reverse`` pass.

As JAX's primitives: each entry gives an op's forward-mode rule (its JVP)
and its reverse-mode rule (its VJP). A **linear** op — slices, inserts,
reshapes, sums — is declared with :func:`linear` and only a *transpose*:
its JVP is the op itself applied to the tangents, and its VJP is the
transpose applied to the cotangent, so nothing is written twice. Ops that
are not linear give both rules: ``matmul`` (bilinear: a product rule
forward, one transposed product per operand backward) and ``max`` (whose
derivative goes to the elements equal to the maximum, ties sharing it;
``min`` uses the same rules). Gathers are linear in the table
(``ad.gather``: a gather of the tangent, a scatter-add of the cotangent)
and ``ad.scatter_add`` in its destination and updates (its transpose is a
gather), so their derivatives differentiate again.

Pointwise regions are not here: the one table of scalar partials
(:mod:`.scalar_rules`) serves them in both modes. Custom user rules
(``ad.custom_frule`` / ``ad.custom_rrule``) are handled by the passes.

An op that runs a function of its own (``ad.scan``: a loop whose step is a
function) is differentiated through that function's derivative, which the
pass builds: its entry is a :class:`FunctionOpRule`, whose rules get the
pass's :class:`PassContext` (the module and the pass's way of building a
function's JVP or VJP), take every tangent direction at once, and split the
reverse rule into a forward-sweep part that returns residuals and a
backward-sweep part that uses them (:mod:`.scan_ad` has scan's).

Contracts, for an op ``op`` of the function being differentiated; ``env``
maps its operands to their values in the function being built, and the
rules emit at the current insertion point and location:

* ``jvp(op, env, tangents) -> [tangent per result]`` — ONE tangent
  direction. ``tangents[i]`` is operand ``i``'s tangent, None for a zero
  (at least one is not None); a None result is a zero tangent. ``env``
  already maps ``op``'s results to their primal values.
* ``vjp(op, env, ybars, cts)`` — ``ybars[j]`` is result ``j``'s cotangent
  (None for a zero). Adds each operand's cotangent through ``cts``:
  ``cts.wants(v)`` (does ``v`` need one?), ``cts.add(v, value)``,
  ``cts.add_slice(v, value, slice_op)`` (``value`` is the part of ``v``'s
  cotangent at ``slice_op``'s position).
* a :class:`FunctionOpRule`: ``jvp(ctx, op, env, tan, K)`` (``tan[v]``: K
  tangents, None for zeros; the rule fills ``env`` and ``tan`` for the
  results), ``vjp_forward(ctx, op, env, active) -> residuals`` (emits the
  primal into ``env``), ``vjp_backward(ctx, op, env, cts, active, residuals)``.

An op without an entry is an error naming it (:func:`missing_rule`), never
a silent zero. **Adding an op** (scan, gather, …) is one entry in
:data:`RULES` plus its rules, written next to the others.
"""

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Union

from mlir import ir
from mlir.dialects import linalg

from ...dialect import builders
from ...dialect.ir_utils import (OEQ, PARALLEL, block_ops, body_block, cmpf, create,
                                 element_type, empty, extract_slice, float_const,
                                 generic_maps, generic_num_inputs,
                                 identity_map, insert_slice, is_identity, loc_where,
                                 make_generic,
                                 projection_map, select, shape_of, slice_position)
from . import ad_common as ad
from . import scan_ad
from .registry import PassError

Jvp = Callable[[ir.Operation, dict, List[Optional[ir.Value]]], List[Optional[ir.Value]]]
Vjp = Callable[[ir.Operation, dict, List[Optional[ir.Value]], object], None]


@dataclass(frozen=True)
class OpRule:
    """Both modes' rules for one op (see the module docstring)."""
    jvp: Jvp
    vjp: Vjp


@dataclass(frozen=True)
class PassContext:
    """What the pass running a :class:`FunctionOpRule` lends it: the module,
    and ``derivative_function`` — the forward pass's ``jvp_function`` or the
    reverse pass's ``vjp_function`` (its pullback ``strategy`` too)."""
    module_op: ir.Operation
    derivative_function: Callable
    strategy: str = "auto"


@dataclass(frozen=True)
class FunctionOpRule:
    """The rules of an op that runs a function of its own (see the module
    docstring for the signatures)."""
    jvp: Callable
    vjp_forward: Callable
    vjp_backward: Callable


Rule = Union[OpRule, FunctionOpRule]


def apply_to_tangents(op: ir.Operation, env, tangents, operands: Sequence[int]):
    """The JVP of an op linear (jointly) in ``operands``: the op itself on
    their tangents (zeros where None), its other operands unchanged."""
    vals = [(t if t is not None else ad.zeros_like(env[v])) if k in operands
            else env.get(v, v) for k, (v, t) in enumerate(zip(op.operands, tangents))]
    new = op.clone(ir.InsertionPoint.current)
    for k, v in enumerate(vals):
        new.operands[k] = v
    return list(new.results)


def linear(transpose: Vjp, operands: Sequence[int] = (0,), jvp: Optional[Jvp] = None) -> OpRule:
    """The rule of an op linear (jointly) in ``operands``: its JVP is
    :func:`apply_to_tangents` (unless a cheaper ``jvp`` is given), its VJP
    ``transpose``."""
    return OpRule(jvp or (lambda op, env, ts: apply_to_tangents(op, env, ts, operands)),
                  transpose)


def _no_tangent(op, env, tangents):
    return [None] * len(op.results)


def _no_cotangent(op, env, ybars, cts):
    pass


# -- slices and reshapes (linear) --------------------------------------------------

def _extract_slice_T(op, env, ybars, cts):
    src = op.operands[0]
    if cts.wants(src):
        cts.add_slice(src, ybars[0], op)


def _insert_slice_T(op, env, ybars, cts):
    src, dest = op.operands[0], op.operands[1]
    g = ybars[0]
    if cts.wants(src):
        cts.add(src, extract_slice(g, src.type, *slice_position(op)))
    if cts.wants(dest):
        cts.add(dest, insert_slice(ad.zeros_like(env[src]), g, *slice_position(op)))


def _reshape_T(op, env, ybars, cts):
    """The transpose of a reshape is the inverse reshape."""
    x = op.operands[0]
    if not cts.wants(x):
        return
    inverse = ("tensor.expand_shape" if op.name == "tensor.collapse_shape"
               else "tensor.collapse_shape")
    attrs = {"reassociation": op.attributes["reassociation"]}
    if inverse == "tensor.expand_shape":
        attrs["static_output_shape"] = ir.DenseI64ArrayAttr.get(list(shape_of(x)))
    cts.add(x, create(inverse, [x.type], [ybars[0]], attrs).result)


# -- reductions: y = init + sum(x) (linear), y = max(init, max(x)), min ------------

def reduction_kind(op: ir.Operation) -> Optional[str]:
    """"sum", "max" or "min" for a generic reducing with addf/maximumf/minimumf
    into its init (a min differentiates as a max: through the elements equal
    to the result)."""
    if op.name != "linalg.generic" or len(op.results) != 1 or generic_num_inputs(op) != 1:
        return None
    b = body_block(op)
    ops = block_ops(b)
    if len(ops) != 2 or ops[1].name != "linalg.yield":
        return None
    body, args = ops[0], list(b.arguments)
    if set(body.operands) != {args[0], args[1]} or ops[1].operands[0] != body.results[0]:
        return None
    return {"arith.addf": "sum", "arith.maximumf": "max", "arith.minimumf": "min"}.get(body.name)


def _check_input_map(op):
    if not is_identity(generic_maps(op)[0]):
        raise PassError("reverse", "reduction with a non-identity input map", op.location)


def _sum_jvp(op, env, tangents):
    tx, ti = tangents
    if tx is None:            # y = init + sum(x): only the start moves
        return [ti]
    return apply_to_tangents(op, env, tangents, (0, 1))


def _sum_T(op, env, ybars, cts):
    """The transpose of a sum broadcasts the cotangent back."""
    _check_input_map(op)
    x, init = list(op.operands)
    g, maps = ybars[0], generic_maps(op)
    if cts.wants(x):
        rank = len(shape_of(x))
        cts.add(x, make_generic([g], [empty(shape_of(x), element_type(x))],
                                [maps[1], identity_map(rank)], [PARALLEL] * rank,
                                lambda a: [a[0]]).result)
    if cts.wants(init):
        cts.add(init, g)



def _at_max(x: ir.Value, y: ir.Value, maps, value: Optional[ir.Value] = None) -> ir.Value:
    """Sum, per element of the max ``y`` (``y = max(x)`` through ``maps``),
    of ``value`` (default 1) over the elements of ``x`` equal to it.

    Built from ops with derivative rules of their own — a pointwise select
    and a sum reduction — so a max's derivative can be differentiated again
    (``grad(grad(max))``, ``jvp(grad(max))``): the select's condition
    carries no derivative, its chosen branch does.
    """
    elt = element_type(y)
    rank = maps[0].n_dims
    ins = [x, y] + ([value] if value is not None else [])
    in_maps = [maps[0], maps[1]] + ([maps[0]] if value is not None else [])

    def body(a):
        chosen = a[2] if value is not None else float_const(elt, 1.0)
        return [select(cmpf(OEQ, a[0], a[1]), chosen, float_const(elt, 0.0))]
    hits = make_generic(ins, [empty(shape_of(x), elt)],
                        in_maps + [projection_map(rank, range(rank))], [PARALLEL] * rank,
                        body).result
    return ad.reduce_to(hits, maps[1], shape_of(y))


def _max_jvp(op, env, tangents):
    """ẏ = mean of ẋ over the maximising elements (ties split), plus the start's."""
    tx, ti = tangents
    if tx is None:
        return [ti]
    x = op.operands[0]
    maps = generic_maps(op)
    y = env[op.results[0]]
    picked = _at_max(env[x], y, maps, tx)
    count = _at_max(env[x], y, maps)
    picked = create("arith.divf", [y.type], [picked, count]).result
    return [picked if ti is None else create("arith.addf", [y.type], [ti, picked]).result]


def _max_vjp(op, env, ybars, cts):
    """x̄ = ȳ / (number of ties) at the maximising elements, 0 elsewhere."""
    _check_input_map(op)
    x, init = list(op.operands)
    g, maps = ybars[0], generic_maps(op)
    if cts.wants(x):
        xs, elt = shape_of(x), element_type(x)
        rank = len(xs)
        y = env[op.results[0]]
        count = _at_max(env[x], y, maps)

        def body(a):
            # hit * (g / count), not select(hit, g / count, 0): where the
            # max is NaN no element equals it (count 0), and 0 * inf gives
            # NaN: NaN in, NaN out.
            share = create("arith.divf", [elt], [a[2], a[3]]).result
            hit = select(cmpf(OEQ, a[0], a[1]), float_const(elt, 1.0), float_const(elt, 0.0))
            return [create("arith.mulf", [elt], [hit, share]).result]
        cts.add(x, make_generic([env[x], y, g, count], [empty(xs, elt)],
                                [identity_map(rank), maps[1], maps[1], maps[1],
                                 identity_map(rank)], [PARALLEL] * rank, body).result)
    if cts.wants(init):
        cts.add(init, g)


# -- matmul (bilinear in A and B, linear in the accumulator C) ---------------------

def _matmul_like(op: ir.Operation, a: ir.Value, b: ir.Value, acc: ir.Value) -> ir.Value:
    """``op``'s kind of product (``linalg.matmul`` or ``batch_matmul``) of
    ``a`` and ``b`` accumulated onto ``acc``."""
    build = linalg.batch_matmul if op.name == "linalg.batch_matmul" else linalg.matmul
    return build(a, b, outs=[acc])


def _transpose_matrices(v: ir.Value) -> ir.Value:
    """Swap the last two dims of a 2-D or 3-D (batch of matrices) tensor."""
    s = shape_of(v)
    perm = [1, 0] if len(s) == 2 else [0, 2, 1]
    init = empty(tuple(s[p] for p in perm), element_type(v))
    return make_generic([v], [init], [projection_map(len(s), perm),
                                      projection_map(len(s), range(len(s)))],
                        [PARALLEL] * len(s), lambda a: [a[0]]).result


def _matmul_jvp(op, env, tangents):
    """d(A·B + C) = dA·B + A·dB + dC."""
    a, b, c = op.operands
    ta, tb, tc = tangents
    acc = tc if tc is not None else ad.zeros_like(env[c])
    if ta is not None:
        acc = _matmul_like(op, ta, env[b], acc)
    if tb is not None:
        acc = _matmul_like(op, env[a], tb, acc)
    return [acc]


def _matmul_vjp(op, env, ybars, cts):
    """Ā = Ȳ·Bᵀ, B̄ = Aᵀ·Ȳ, C̄ = Ȳ."""
    a, b, c = op.operands
    g = ybars[0]
    if cts.wants(a):
        cts.add(a, _matmul_like(op, g, _transpose_matrices(env[b]), ad.zeros_like(env[a])))
    if cts.wants(b):
        cts.add(b, _matmul_like(op, _transpose_matrices(env[a]), g, ad.zeros_like(env[b])))
    if cts.wants(c):
        cts.add(c, g)


# -- gathers: ad.gather linear in the table, ad.scatter_add in (dest, updates) ----

def _axis(op: ir.Operation) -> int:
    return ad.int_attr(op, "axis")


def _gather_T(op, env, ybars, cts):
    """The transpose of a gather scatter-adds the cotangent into zeros of the
    table's shape (the indices are integers: no cotangent)."""
    table, idx = op.operands
    if cts.wants(table):
        cts.add(table, builders.scatter_add(ad.zeros_like(env[table]), env[idx], ybars[0],
                                            _axis(op)).result)


def _scatter_add_jvp(op, env, tangents):
    """The scatter-add of the tangents; scattering zero updates is the
    identity on ``dest``."""
    td, _, tu = tangents
    if tu is None:
        return [td]
    return apply_to_tangents(op, env, tangents, (0, 2))


def _scatter_add_T(op, env, ybars, cts):
    """``dest`` gets the cotangent, ``updates`` the gather of it."""
    dest, idx, updates = op.operands
    if cts.wants(dest):
        cts.add(dest, ybars[0])
    if cts.wants(updates):
        cts.add(updates, builders.gather(ybars[0], env[idx], _axis(op)).result)


# -- scan (runs its step function: rules in scan_ad.py) ---------------------------

SCAN = FunctionOpRule(
    jvp=lambda ctx, op, env, tan, K: scan_ad.jvp(ctx.module_op, op, env, tan, K,
                                                ctx.derivative_function),
    vjp_forward=lambda ctx, op, env, active: scan_ad.forward(
        ctx.module_op, op, env, active, ctx.derivative_function, ctx.strategy),
    vjp_backward=lambda ctx, op, env, cts, active, residuals: scan_ad.backward(
        ctx.module_op, op, env, cts, active, residuals))


# -- host callbacks: not differentiable ---------------------------------------------

def _callback_message(op, mode: str) -> str:
    name = ir.StringAttr(op.attributes["name"]).value
    return (f"pure_callback {name!r} (at {loc_where(op.location)}) is not differentiable: "
            f"ferrule cannot see into host code, so {mode} mode has no derivative for it. "
            f"Wrap the function that calls it in a @rules.primitive and give that an "
            f"rrule (reverse mode) or an frule (forward mode); either also serves the "
            f"other mode by transposition when it is linear and its tangents do not pass "
            f"through a callback")


def _callback_jvp(op, env, tangents):
    raise PassError("forward", _callback_message(op, "forward"), op.location)


def _callback_vjp(op, env, ybars, cts):
    raise PassError("reverse", _callback_message(op, "reverse"), op.location)


# -- the table -----------------------------------------------------------------------

_NO_DERIVATIVE = OpRule(_no_tangent, _no_cotangent)

RULES = {
    "tensor.extract_slice": linear(_extract_slice_T),
    "tensor.insert_slice": linear(_insert_slice_T, operands=(0, 1)),
    "tensor.collapse_shape": linear(_reshape_T),
    "tensor.expand_shape": linear(_reshape_T),
    "linalg.generic:sum": linear(_sum_T, operands=(0, 1), jvp=_sum_jvp),
    "linalg.generic:max": OpRule(_max_jvp, _max_vjp),
    "linalg.generic:min": OpRule(_max_jvp, _max_vjp),
    "linalg.matmul": OpRule(_matmul_jvp, _matmul_vjp),
    "linalg.batch_matmul": OpRule(_matmul_jvp, _matmul_vjp),
    "ad.gather": linear(_gather_T),
    "ad.scatter_add": linear(_scatter_add_T, operands=(0, 2), jvp=_scatter_add_jvp),
    "ad.stop_gradient": _NO_DERIVATIVE,   # no tangent, no cotangent, at every order
    "ad.scan": SCAN,
    "ad.pure_callback": OpRule(_callback_jvp, _callback_vjp),
    "tensor.empty": _NO_DERIVATIVE,
    "arith.constant": _NO_DERIVATIVE,
}


def rule_for(op: ir.Operation) -> Optional[Rule]:
    """``op``'s entry in :data:`RULES` (a ``linalg.generic`` reduction is
    keyed ``linalg.generic:<kind>``), or None."""
    if op.name == "linalg.generic":
        kind = reduction_kind(op)
        return RULES.get(f"linalg.generic:{kind}") if kind else None
    return RULES.get(op.name)


def missing_rule(op: ir.Operation, mode: str) -> str:
    """The error message for an op without a ``mode`` ("forward-mode" or
    "reverse-mode") rule."""
    if op.name == "linalg.generic":
        return (f"no {mode} rule for this linalg.generic (only pointwise regions and "
                f"sum/max/min reductions)")
    return f"no {mode} rule for '{op.name}'"
