"""forward: lower ``ad.jvp`` and ``ad.frule_via_ad`` (forward mode).

Expects: a module whose ``ad.jvp`` / ``ad.frule_via_ad`` ops name ``func.func``
callees of one block, on static tensors.
Guarantees: each such op is replaced by a call of a new private function
``@<callee>_jvp<K>`` that returns the callee's outputs and K tangents per
output. In it every pointwise region becomes ONE region that computes primal
and tangents together (dual numbers, all K directions in the same sweep);
matmul, reductions and tensor ops get the forward rules of the op rule
table (support/op_rules.py, shared with reverse mode); zero tangents (splat
zero constants) are pruned symbolically. ``ad.frule_via_ad`` ops on the same
callee and the same primals are first merged into one multi-direction op:
the primal work is shared, which is the "fused tangent code" of the rules API.
A user rule: ``ad.custom_frule`` calls the frule once per direction;
``ad.custom_rrule`` of a primitive with no frule transposes the rule's
pullback, which must be linear in the cotangents (support/transpose.py;
an error names the rule and the line that is not).
An op without a derivative rule is an error naming it and its location.
"""

from typing import Dict, List, Optional

from mlir import ir

from ..dialect.ir_utils import (PARALLEL, block_ops, body_block, clone_with_remap, element_type,
                                empty, find_func, func_body, generic_maps, generic_num_inputs,
                                identity_map, is_splat_zero, make_generic, shape_of)
from .fuse_pointwise import fuse_block
from .support import ad_common as ad
from .support import op_rules
from .support import pointwise as pw
from .support import transpose
from .support.registry import PassError, register
from .support.scalar_ad import NoRuleError, active_values, forward_body

Tangents = List[Optional[ir.Value]]


@register("forward")
def forward(module_op: ir.Operation) -> None:
    lower_in(module_op, module_op)


def lower_in(module_op: ir.Operation, scope: ir.Operation) -> None:
    """Lower every forward-mode ``ad`` op inside ``scope``."""
    ops = []
    scope.walk(lambda o: (ops.append(o.operation) if o.operation.name in ad.AD_TANGENT_OPS
                          else None, ir.WalkResult.ADVANCE)[1])
    for group in _merge_groups(ops):
        _lower_group(module_op, group)


ad.register_lowering("forward", lower_in)   # for ad ops nested in a callee


def _merge_groups(ops: List[ir.Operation]) -> List[List[ir.Operation]]:
    """frule_via_ad ops with the same callee and primals (same block) merge."""
    groups: Dict[tuple, List[ir.Operation]] = {}
    order = []
    for op in ops:
        n_p = ad.segment_sizes(op)[0]
        if op.name == "ad.frule_via_ad":
            key = ("frule", ad.callee_of(op), tuple(list(op.operands)[:n_p]),
                   op.parent.operation if op.parent is not None else None)
        else:
            key = ("jvp", id(op))
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(op)
    return [groups[k] for k in order]


def _lower_group(module_op, group: List[ir.Operation]) -> None:
    first = group[0]
    callee = ad.callee_of(first)
    n_p = ad.segment_sizes(first)[0]
    primals = list(first.operands)[:n_p]
    tangent_sets = []  # per direction: list of n_p tangent values
    for op in group:
        k = ad.int_attr(op, "num_directions")
        ts = list(op.operands)[n_p:]
        for d in range(k):
            tangent_sets.append(ts[d * n_p:(d + 1) * n_p])
    K = len(tangent_sets)
    mask = [[not is_splat_zero(t, integers=True) for t in ts] for ts in tangent_sets]
    fn = jvp_function(module_op, callee, K, mask, first.location)
    args = primals + [t for ts, m in zip(tangent_sets, mask) for t, keep in zip(ts, m) if keep]
    with ir.InsertionPoint(group[-1]), first.location:
        results = ad.call(fn, args)
    n_out = len(results) // (K + 1)
    outs, tans = results[:n_out], results[n_out:]
    d0 = 0
    for op in group:
        k = ad.int_attr(op, "num_directions")
        mine = outs + tans[d0 * n_out:(d0 + k) * n_out]
        for old, new in zip(op.results, mine):
            old.replace_all_uses_with(new)
        d0 += k
    for op in group:
        op.erase()


def jvp_function(module_op, callee: str, K: int, mask, loc) -> ir.Operation:
    """Build ``@<callee>_jvp<K>(primals, nonzero tangents) -> (outs, K*tangents)``."""
    copy = ad.prepared_copy(module_op, callee, mode="forward")
    fuse_block(func_body(copy))
    src = func_body(copy)
    args = list(src.arguments)
    arg_types = [a.type for a in args]
    tan_types = [a.type for d in range(K) for a, keep in zip(args, mask[d]) if keep]
    fn = ad.new_func(module_op, f"{callee}_jvp{K}", arg_types + tan_types, loc)
    nb = func_body(fn)
    new_args = list(nb.arguments)
    env = {a: b for a, b in zip(args, new_args)}
    tan: Dict[ir.Value, Tangents] = {a: [None] * K for a in args}
    it = iter(new_args[len(args):])
    for d in range(K):
        for a, keep in zip(args, mask[d]):
            if keep:
                t = next(it)
                tan[a][d] = t if ad.is_float(a) else None   # integers: no tangent
    ctx = op_rules.PassContext(module_op, jvp_function)
    results = None
    with ir.InsertionPoint(nb):
        for op in block_ops(src):
            with op.location:
                if op.name == "func.return":
                    outs = [env[v] for v in op.operands]
                    tout = []
                    for d in range(K):
                        for v in op.operands:
                            t = tan.get(v, [None] * K)[d]
                            tout.append(t if t is not None else ad.zeros_like(env[v]))
                    results = outs + tout
                    break
                _forward_op(op, env, tan, K, ctx)
    ad.finish_func(fn, results)
    copy.erase()
    return fn


def _tangents(tan, v, K) -> Tangents:
    return tan.get(v, [None] * K)


def _forward_op(op: ir.Operation, env, tan, K: int, ctx: op_rules.PassContext) -> None:
    ins = list(op.operands)
    if all(all(t is None for t in _tangents(tan, v, K)) for v in ins) and op.name != "linalg.generic":
        clone_with_remap(op, env)
        return
    if len(op.results) and not any(ad.is_float(r) and list(r.uses) for r in op.results):
        # integer/bool results (argmax, comparisons), float ones unused: no tangent
        clone_with_remap(op, env)
        return
    if op.name == "ad.custom_frule":
        _forward_custom_frule(op, env, tan, K)
        return
    if op.name == "ad.custom_rrule":
        _forward_custom_rrule(ctx.module_op, op, env, tan, K)
        return
    if pw.is_pointwise_generic(op):
        _forward_pointwise(op, env, tan, K)
        return
    rule = op_rules.rule_for(op)
    if rule is None:
        raise PassError("forward", op_rules.missing_rule(op, "forward-mode"), op.location)
    if isinstance(rule, op_rules.FunctionOpRule):
        rule.jvp(ctx, op, env, tan, K)
    else:
        _forward_by_rule(rule, op, env, tan, K)


def _forward_by_rule(rule: op_rules.OpRule, op: ir.Operation, env, tan, K: int) -> None:
    """The op's JVP from the op rule table, once per nonzero direction."""
    clone_with_remap(op, env)
    outs = [[None] * K for _ in op.results]
    for d in range(K):
        ts = [_tangents(tan, v, K)[d] for v in op.operands]
        if all(t is None for t in ts):
            continue
        for j, t in enumerate(rule.jvp(op, env, ts)):
            outs[j][d] = t
    for r, ts in zip(op.results, outs):
        tan[r] = ts


def _forward_custom_frule(op: ir.Operation, env, tan, K: int) -> None:
    """Use the user's frule: one call of ``@frule`` per nonzero direction
    (the primal parts of those calls are CSE'd after inlining)."""
    module_op = op.parent
    while module_op.name != "builtin.module":
        module_op = module_op.parent
    fr = find_func(module_op.operation, ir.FlatSymbolRefAttr(op.attributes["frule"]).value)
    args = [env[v] for v in op.operands]
    n_out = len(op.results)
    outs = None
    tans = [[None] * K for _ in range(n_out)]
    for d in range(K):
        ts = [_tangents(tan, v, K)[d] for v in op.operands]
        if all(t is None for t in ts) and outs is not None:
            continue
        res = ad.call(fr, args + [t if t is not None else ad.zeros_like(a) for t, a in zip(ts, args)])
        outs = outs or res[:n_out]
        if any(t is not None for t in ts):
            for j in range(n_out):
                tans[j][d] = res[n_out + j]
    if outs is None:
        outs = ad.call(fr, args + [ad.zeros_like(a) for a in args])[:n_out]
    for j, r in enumerate(op.results):
        env[r] = outs[j]
        tan[r] = tans[j]
    ad.record_rule(module_op.operation, op, "forward", "as written")


def _forward_custom_rrule(module_op, op: ir.Operation, env, tan, K: int) -> None:
    """A primitive with only an rrule: the pushforward is the transpose of
    the rule's pullback (support/transpose.py), one call per nonzero
    direction. The op itself stays for the outputs (it keeps its rule for
    a further derivative)."""
    clone_with_remap(op, env)
    n, m = len(op.operands), len(op.results)
    n_res = ad.int_attr(op, "num_residuals")
    if transpose.residuals_are_args(module_op, op):
        res = [env[v] for v in op.operands]
    else:
        fwd = find_func(module_op, ir.FlatSymbolRefAttr(op.attributes["forward"]).value)
        res = ad.call(fwd, [env[v] for v in op.operands])[m:]
    tans = [[None] * K for _ in range(m)]
    built = {}
    for d in range(K):
        ts = [_tangents(tan, v, K)[d] for v in op.operands]
        mask = tuple(t is not None for t in ts)
        if not any(mask):
            continue
        if mask not in built:
            try:
                built[mask] = transpose.pullback_pushforward(module_op, op, list(mask))
            except transpose.NotTransposable as e:
                raise PassError("forward", transpose.not_transposable_message(op, e, "forward"),
                                op.location) from None
        out = ad.call(built[mask], res + [ad.zeros_like(env[r]) for r in op.results]
                      + [t for t in ts if t is not None])
        for j in range(m):
            tans[j][d] = out[n + n_res + j]
    for j, r in enumerate(op.results):
        tan[r] = tans[j]
    if built:
        ad.record_rule(module_op, op, "forward", "transposed (its pullback is linear)")


def _forward_pointwise(op: ir.Operation, env, tan, K: int) -> None:
    n_in = generic_num_inputs(op)
    maps = generic_maps(op)
    inputs = list(op.operands)[:n_in]
    dom = shape_of(op.results[0])
    in_tans = [_tangents(tan, v, K) for v in inputs]
    if all(t is None for ts in in_tans for t in ts):
        clone_with_remap(op, env)
        return
    src = body_block(op)
    bargs = list(src.arguments)
    body_ops = block_ops(src)
    yielded = list(body_ops[-1].operands)
    # Which (output, direction) tangents are nonzero: a static dependence check.
    live = []
    for d in range(K):
        seeds = {bargs[i] for i in range(n_in) if in_tans[i][d] is not None}
        act = active_values(body_ops[:-1], seeds)
        live.append([v in act for v in yielded])
    t_inputs, t_maps, t_slots = [], [], []
    for d in range(K):
        for i in range(n_in):
            if in_tans[i][d] is not None:
                t_slots.append((i, d))
                t_inputs.append(in_tans[i][d])
                t_maps.append(maps[i])
    t_outs = [(j, d) for d in range(K) for j in range(len(yielded)) if live[d][j]]
    inits = [env[v] for v in list(op.operands)[n_in:]]
    t_inits = [empty(dom, element_type(op.results[j])) for j, d in t_outs]
    rank = len(dom)

    def body(a):
        benv = dict(env)  # captured outer values map to their clones
        benv.update({bargs[i]: a[i] for i in range(n_in)})
        btan = {bargs[i]: [None] * K for i in range(n_in)}
        for k, (i, d) in enumerate(t_slots):
            btan[bargs[i]][d] = a[n_in + k]
        try:
            forward_body(body_ops[:-1], benv, btan, K)
        except NoRuleError as e:
            raise PassError("forward", str(e), e.op.location) from None
        prim = [benv.get(v, v) for v in yielded]
        tv = []
        for j, d in t_outs:
            t = btan.get(yielded[j], [None] * K)[d]
            tv.append(t)
        return prim + tv

    new = make_generic([env[v] for v in inputs] + t_inputs, inits + t_inits,
                       maps[:n_in] + t_maps + [identity_map(rank)] * (len(inits) + len(t_inits)),
                       [PARALLEL] * rank, body)
    n_out = len(op.results)
    for r, nr in zip(op.results, list(new.results)[:n_out]):
        env[r] = nr
        tan[r] = [None] * K
    for (j, d), nr in zip(t_outs, list(new.results)[n_out:]):
        tan[op.results[j]][d] = nr


ad.register_builder("jvp", jvp_function)
