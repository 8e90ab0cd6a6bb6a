"""reverse: lower ``ad.vjp`` (reverse mode).

Expects: ``ad.vjp`` ops whose callees are ``func.func`` of one block on static
tensors. Forward-mode ops nested in a callee are lowered first.
Guarantees: each ``ad.vjp`` is replaced by a call of a new private function
``@<callee>_vjp`` returning the callee's outputs and one cotangent per
primal. Its body is the forward sweep (a clone of the callee, pointwise code
fused) followed by the backward sweep in reverse order:
  * a pointwise region's pullback is ONE backward region that reads the
    region's inputs and the output cotangents, recomputes the primal
    elementwise, and applies the scalar partials table backwards (the same
    table forward mode uses). Nothing but the inputs is kept between sweeps.
    Broadcast / transposed inputs get their cotangents summed / permuted back;
  * matmul, sum/max/min reductions, slices, inserts, reshapes and gathers
    use the reverse rules of the op rule table (support/op_rules.py, shared
    with forward mode: a linear op's reverse rule is its transpose);
  * integer and bool values are never active (not differentiable), nor is
    the result of ``ad.stop_gradient``;
  * fan-out accumulates; cotangent slices that tile a tensor are inserted
    into one buffer instead of being added;
  * symbolic zeros (splat zero cotangents, inactive values) are pruned: an
    input that does not influence the outputs gets zeros and no work;
  * a user rule: ``ad.custom_rrule`` calls the rule's traced pullback;
    ``ad.custom_frule`` (a primitive with an frule only) transposes the
    frule's tangent map, which must be linear in the tangents
    (support/transpose.py; an error names the rule and the line that is
    not). Both stay in the forward sweep as they are, so differentiating
    the result again (second order) uses the rules again.
Dead primal work disappears in the canonicalisation after inlining.
"""

from typing import Dict, List, Optional

from mlir import ir

from ..dialect.ir_utils import (block_ops, clone_with_remap, dense_i64, element_type, empty,
                                find_func, func_body, insert_slice, is_splat_zero, loc_where,
                                shape_of, slice_position, values_used)
from .fuse_pointwise import fuse_block
from .support import ad_common as ad
from .support import op_rules
from .support import pointwise as pw
from .support import pullback
from .support import transpose
from .support.registry import PassError, register


@register("reverse")
def reverse(module_op: ir.Operation, strategy: str = "auto") -> None:
    """Option ``strategy``: how pointwise pullbacks get their partials —
    ``auto`` (the cost model in support/pullback.py), ``recompute`` or
    ``store``. Each choice is recorded in the module attribute
    ``ferrule.pullbacks``."""
    lower_in(module_op, module_op, strategy)


def lower_in(module_op: ir.Operation, scope: ir.Operation, strategy: str = "auto") -> None:
    """Lower every ``ad.vjp`` inside ``scope``."""
    ops = []
    scope.walk(lambda o: (ops.append(o.operation) if o.operation.name == "ad.vjp"
                          else None, ir.WalkResult.ADVANCE)[1])
    for op in ops:
        _lower_vjp(module_op, op, strategy)


ad.register_lowering("reverse", lower_in)   # for ad ops nested in a callee


def _lower_vjp(module_op, op: ir.Operation, strategy: str = "auto") -> None:
    callee = ad.callee_of(op)
    n_p, n_c = ad.segment_sizes(op)
    operands = list(op.operands)
    primals, cts = operands[:n_p], operands[n_p:]
    mask = [not is_splat_zero(c, integers=True) for c in cts]
    # Cotangents nobody reads (arguments outside grad's argnums, arrays a
    # closure captured) are not computed at all.
    wanted = [bool(list(r.uses)) for r in list(op.results)[len(cts):]]
    fn = vjp_function(module_op, callee, mask, op.location, strategy, wanted)
    with ir.InsertionPoint(op), op.location:
        results = ad.call(fn, primals + [c for c, m in zip(cts, mask) if m])
    for old, new in zip(op.results, results):
        old.replace_all_uses_with(new)
    op.erase()


class _Cotangents:
    """Cotangent contributions per value; summed (or tiled) on demand.

    The op rules' ``cts`` (see support/op_rules.py): ``wants(v)`` is true for
    the active values, whose cotangents are wanted."""

    def __init__(self, active: set):
        self.parts: Dict[ir.Value, list] = {}
        self.active = active

    def wants(self, v: ir.Value) -> bool:
        return v in self.active

    def add(self, v: ir.Value, ct: ir.Value) -> None:
        self.parts.setdefault(v, []).append(("full", ct, None))

    def add_slice(self, v: ir.Value, ct: ir.Value, slice_op: ir.Operation) -> None:
        self.parts.setdefault(v, []).append(("slice", ct, slice_op))

    def has(self, v) -> bool:
        return v in self.parts

    def get(self, v: ir.Value, like: ir.Value) -> Optional[ir.Value]:
        parts = self.parts.get(v)
        if not parts:
            return None
        slices = [p for p in parts if p[0] == "slice"]
        fulls = [p[1] for p in parts if p[0] == "full"]
        acc = None
        if slices:
            covered = sum(_volume(p[2]) for p in slices) == _volume_of(like)
            disjoint = _disjoint([p[2] for p in slices])
            if disjoint:
                base = (empty(shape_of(like), element_type(like)) if covered
                        else ad.zeros_like(like))
                for _, ct, sl in slices:
                    base = _insert_like(sl, ct, base)
                acc = base
            else:
                for _, ct, sl in slices:
                    acc = ad.add(acc, _insert_like(sl, ct, ad.zeros_like(like)))
        for f in fulls:
            acc = ad.add(acc, f)
        self.parts[v] = [("full", acc, None)]
        return acc


def _volume(sl):
    n = 1
    for s in dense_i64(sl, "static_sizes"):
        n *= s
    return n


def _volume_of(v):
    n = 1
    for s in shape_of(v):
        n *= s
    return n


def _disjoint(slices) -> bool:
    boxes = []
    for sl in slices:
        if any(st != 1 for st in dense_i64(sl, "static_strides")):
            return False
        off, size = dense_i64(sl, "static_offsets"), dense_i64(sl, "static_sizes")
        boxes.append(list(zip(off, size)))
    for i in range(len(boxes)):
        for j in range(i):
            if all(a0 < b0 + bs and b0 < a0 + as_ for (a0, as_), (b0, bs) in zip(boxes[i], boxes[j])):
                return False
    return True


def _insert_like(extract: ir.Operation, src: ir.Value, dest: ir.Value) -> ir.Value:
    """``tensor.insert_slice`` at the offsets/sizes/strides of ``extract``."""
    return insert_slice(src, dest, *slice_position(extract))


def vjp_function(module_op, callee: str, mask: List[bool], loc,
                 strategy: str = "auto", wanted: Optional[List[bool]] = None) -> ir.Operation:
    """Build ``@<callee>_vjp(primals, nonzero cotangents) -> (outs, input cts)``.

    ``mask[j]``: output j has a nonzero cotangent; ``wanted[i]``: argument i's
    cotangent is needed (the others are returned as zeros, computed by nothing).
    """
    copy = ad.prepared_copy(module_op, callee, mode="reverse")
    fuse_block(func_body(copy))
    src = func_body(copy)
    args = list(src.arguments)
    ops = block_ops(src)
    ret = ops[-1]
    body = ops[:-1]
    outs = list(ret.operands)
    ct_types = [v.type for v, m in zip(outs, mask) if m]
    fn = ad.new_func(module_op, f"{callee}_vjp", [a.type for a in args] + ct_types, loc)
    nb = func_body(fn)
    new_args = list(nb.arguments)
    env = {a: b for a, b in zip(args, new_args)}
    seeds = {a for k, a in enumerate(args) if wanted is None or wanted[k]}
    active = _activity(body, seeds)
    cts = _Cotangents(active)
    ctx = op_rules.PassContext(module_op, vjp_function, strategy)
    with ir.InsertionPoint(nb):
        residuals: Dict[ir.Operation, object] = {}
        partials: Dict[ir.Operation, dict] = {}
        kept: Dict[ir.Operation, list] = {}
        for op in body:  # forward sweep
            rule = op_rules.rule_for(op)
            with op.location:
                if op.name == "ad.custom_rrule":
                    residuals[op] = _rule_forward(module_op, op, env)
                elif isinstance(rule, op_rules.FunctionOpRule):
                    residuals[op] = rule.vjp_forward(ctx, op, env, active)
                elif pw.is_pointwise_generic(op) and pullback.wanted_inputs(op, active):
                    how, rb, sb = pullback.choose(op, active, strategy)
                    ad.record(module_op, f"{loc_where(op.location)}: pointwise pullback of "
                            f"@{callee}: {how} (recompute re-reads {rb} B, storing "
                            f"partials moves {sb} B)")
                    if how == "store":
                        partials[op] = pullback.forward_with_partials(op, env, active)
                    elif how == "keep":
                        kept[op] = pullback.forward_keeping(op, env, active)
                    else:
                        clone_with_remap(op, env)
                else:
                    clone_with_remap(op, env)
        it = iter(new_args[len(args):])
        for v, m in zip(outs, mask):
            if m:
                c = next(it)
                if v in active:
                    cts.add(v, c)
        for op in reversed(body):  # backward sweep
            if not any(cts.has(r) for r in op.results):
                continue
            with op.location:
                if op.name == "ad.custom_rrule":
                    _rule_pullback(module_op, op, env, cts, active, residuals[op])
                elif op.name == "ad.custom_frule":
                    _frule_transposed(module_op, op, env, cts, active, strategy)
                elif op in residuals:   # a FunctionOpRule's backward sweep
                    op_rules.rule_for(op).vjp_backward(ctx, op, env, cts, active, residuals[op])
                elif op in partials:
                    ybars = [cts.get(r, env[r]) for r in op.results]
                    pullback.reverse_stored(op, env, cts, active, ybars, partials[op])
                elif op in kept:
                    ybars = [cts.get(r, env[r]) for r in op.results]
                    pullback.reverse_recompute(op, env, cts, active, ybars, kept[op])
                else:
                    _reverse_op(op, env, cts, active)
        with loc:
            results = [env[v] for v in outs]
            for a in args:
                c = cts.get(a, env[a])
                results.append(c if c is not None else ad.zeros_like(env[a]))
    ad.finish_func(fn, results)
    copy.erase()
    return fn


def _activity(body, seeds) -> set:
    """Float values that depend on the function's arguments. Integer and
    bool values are never active (not differentiable), nor is what
    ``ad.stop_gradient`` returns."""
    active = {s for s in seeds if ad.is_float(s)}
    for op in body:
        if op.name == "ad.stop_gradient":
            continue
        if any(v in active for v in values_used(op)):
            active.update(r for r in op.results if ad.is_float(r))
    return active


def _reverse_op(op: ir.Operation, env, cts: _Cotangents, active: set) -> None:
    ybars = [cts.get(r, env[r]) for r in op.results]
    if pw.is_pointwise_generic(op):
        pullback.reverse_recompute(op, env, cts, active, ybars)
        return
    rule = op_rules.rule_for(op)
    if rule is None:
        raise PassError("reverse", op_rules.missing_rule(op, "reverse-mode"), op.location)
    rule.vjp(op, env, ybars, cts)


def _rule_forward(module_op, op: ir.Operation, env) -> List[ir.Value]:
    """Forward sweep of a custom rrule: its outputs and residuals. When the
    residuals are the arguments (as the frontend builds rules), the op
    itself stays (a call of the primal that keeps its rule for a second
    derivative); otherwise ``@forward`` is called."""
    if transpose.residuals_are_args(module_op, op):
        clone_with_remap(op, env)
        return [env[v] for v in op.operands]
    fwd = find_func(module_op, ir.FlatSymbolRefAttr(op.attributes["forward"]).value)
    res = ad.call(fwd, [env[v] for v in op.operands])
    n_out = len(op.results)
    for r, nr in zip(op.results, res[:n_out]):
        env[r] = nr
    return res[n_out:]


def _rule_pullback(module_op, op: ir.Operation, env, cts: _Cotangents, active,
                   residuals: List[ir.Value]) -> None:
    """Backward sweep of a custom rrule: call the rule's traced pullback."""
    pb = find_func(module_op, ir.FlatSymbolRefAttr(op.attributes["pullback"]).value)
    ybars = []
    for r in op.results:
        g = cts.get(r, env[r])
        ybars.append(g if g is not None else ad.zeros_like(env[r]))
    xbars = ad.call(pb, list(residuals) + ybars)
    ad.record_rule(module_op, op, "reverse", "its pullback")
    for x, xb in zip(op.operands, xbars):
        if x in active:
            cts.add(x, xb)



def _frule_transposed(module_op, op: ir.Operation, env, cts: _Cotangents, active,
                      strategy: str) -> None:
    """Backward sweep of a primitive with only an frule: the transpose of
    the frule's tangent map (support/transpose.py) applied to the output
    cotangents."""
    n, m = len(op.operands), len(op.results)
    ybars = [cts.get(r, env[r]) for r in op.results]
    mask = [y is not None for y in ybars]
    wanted = [x in active and isinstance(element_type(x), (ir.F32Type, ir.F64Type))
              for x in op.operands]
    if not any(wanted) or not any(mask):
        return
    try:
        fn = transpose.frule_pullback(module_op, op, mask, wanted, strategy)
    except transpose.NotTransposable as e:
        raise PassError("reverse", transpose.not_transposable_message(op, e, "reverse"),
                        op.location) from None
    ad.record_rule(module_op, op, "reverse", "transposed (its tangent map is linear)")
    args = ([env[x] for x in op.operands] + [ad.zeros_like(env[x]) for x in op.operands]
            + [y for y in ybars if y is not None])
    xbars = ad.call(fn, args)[m + n:m + 2 * n]
    for x, xb, w in zip(op.operands, xbars, wanted):
        if w:
            cts.add(x, xb)


ad.register_builder("vjp", vjp_function)   # for transposing rules (support/transpose.py)
