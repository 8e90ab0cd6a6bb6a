"""fuse-pointwise: gather pointwise tensor ops into maximal fused regions.

Expects: ``func.func`` bodies of one block on ranked, statically shaped tensors.
Guarantees: every elementwise ``arith``/``math`` tensor op and every pointwise
``linalg.generic`` ends up in a ``linalg.generic`` with only parallel
iterators; producer/consumer chains of one domain become ONE multi-result
region (a value used both inside and outside the region becomes an extra
result), siblings of one domain that read a common value are merged too, and
splat constants are folded into the bodies as scalars. Merging never creates a
cycle through a non-pointwise op: a group is only grown while no outside op
lies on a path between two of its members. Ops are then reordered
topologically.

Why not upstream ``linalg-fuse-elementwise-ops``: it fuses a producer only
into a sole consumer, so the LSTM cell (``c'`` feeds both ``h'`` and the
output) stays split there.
"""

from typing import Dict, List

from mlir import ir

from .support import pointwise as pw
from ..dialect.ir_utils import (attrs_of, block_ops, body_block, clone_block_body, create,
                               defining_op, element_type, empty, func_body,
                               funcs_of, identity_map, is_identity, make_generic,
                               PARALLEL, producer_indices, topo_sort_block)
from .support.registry import register


@register("fuse-pointwise")
def fuse_pointwise(module_op: ir.Operation) -> None:
    for fn in funcs_of(module_op):
        if len(fn.regions[0].blocks):
            fuse_block(func_body(fn))


def fuse_block(block: ir.Block) -> None:
    """Fuse the pointwise ops of one block (see the module docstring)."""
    ops = block_ops(block)[:-1]
    index = {o: i for i, o in enumerate(ops)}
    producers = producer_indices(ops)
    n = len(ops)
    anc = [0] * n
    for i in range(n):
        for p in producers[i]:
            anc[i] |= anc[p] | (1 << p)
    desc = [0] * n
    for i in reversed(range(n)):
        for p in producers[i]:
            desc[p] |= desc[i] | (1 << i)

    is_pw = [pw.is_pointwise(o) for o in ops]
    group_of: Dict[int, int] = {}
    groups: Dict[int, int] = {}  # group id -> member bitset

    def convex(members: int) -> bool:
        reach_from = reach_to = 0
        m, i = members, 0
        while m:
            if m & 1:
                reach_from |= desc[i]
                reach_to |= anc[i]
            m >>= 1
            i += 1
        return (reach_from & reach_to & ~members) == 0

    def merge(gids, extra_member=None):
        target = min(gids)
        members = 0
        for g in gids:
            members |= groups.pop(g)
        if extra_member is not None:
            members |= 1 << extra_member
        groups[target] = members
        m, i = members, 0
        while m:
            if m & 1:
                group_of[i] = target
            m >>= 1
            i += 1
        return target

    # Phase 1: producer -> consumer, in program order.
    for i, o in enumerate(ops):
        if not is_pw[i]:
            continue
        dom = pw.domain(o)
        cands = []
        for v, m in zip(pw.pointwise_inputs(o), pw.input_maps(o)):
            d = defining_op(v)
            if d is None or d not in index:
                continue
            j = index[d]
            if (is_pw[j] and j in group_of and is_identity(m)
                    and pw.domain(d) == dom and group_of[j] not in cands):
                cands.append(group_of[j])
        groups[i] = 1 << i
        group_of[i] = i
        if not cands:
            continue
        allm = groups[i]
        for g in cands:
            allm |= groups[g]
        if convex(allm):
            merge([i, *cands])
            continue
        for g in sorted(cands, key=lambda g: -bin(groups[g]).count("1")):
            gi = group_of[i]
            if convex(groups[gi] | groups[g]):
                merge([gi, g])

    # Phase 2: siblings of one domain reading a common value.
    readers: Dict[ir.Value, List[int]] = {}
    for i, o in enumerate(ops):
        if is_pw[i]:
            for v in pw.pointwise_inputs(o):
                readers.setdefault(v, []).append(i)
    for v, rs in readers.items():
        for a in rs:
            for b in rs:
                ga, gb = group_of[a], group_of[b]
                if ga == gb or pw.domain(ops[a]) != pw.domain(ops[b]):
                    continue
                if convex(groups[ga] | groups[gb]):
                    merge([ga, gb])

    # Materialise each group as one generic.
    changed = False
    for gid, members in sorted(groups.items()):
        idx = [i for i in range(n) if members >> i & 1]
        member_ops = [ops[i] for i in idx]
        if all(pw.is_splat_constant(o) for o in member_ops):
            continue
        if len(member_ops) == 1 and member_ops[0].name == "linalg.generic":
            continue
        _materialise(member_ops)
        changed = True
    if changed:
        topo_sort_block(block)


def _materialise(members: List[ir.Operation]) -> None:
    """Replace ``members`` (in block order, one domain) by one generic."""
    member_set = set(members)
    dom = pw.domain(members[0])
    rank = len(dom)

    inputs: List[ir.Value] = []
    maps: List[ir.AffineMap] = []
    input_slot: Dict[tuple, int] = {}
    for o in members:
        for v, m in zip(pw.pointwise_inputs(o), pw.input_maps(o)):
            d = defining_op(v)
            if d is not None and d in member_set and is_identity(m):
                continue
            key = (v, str(m))
            if key not in input_slot:
                input_slot[key] = len(inputs)
                inputs.append(v)
                maps.append(m)

    outputs: List[ir.Value] = []
    for o in members:
        for r in o.results:
            if any(use.owner.operation not in member_set for use in r.uses):
                outputs.append(r)
    if not outputs:  # dead region: keep the last result so nothing dangles
        outputs.append(members[-1].results[0])

    last = members[-1]
    loc = ir.Location.fused([o.location for o in members]) if len(members) > 1 else last.location
    with ir.InsertionPoint(last), loc:
        inits = [empty(dom, element_type(v)) for v in outputs]

        def body(args):
            scalar: Dict[ir.Value, ir.Value] = {}
            for o in members:
                ins = []
                for v, m in zip(pw.pointwise_inputs(o), pw.input_maps(o)):
                    d = defining_op(v)
                    if d is not None and d in member_set and is_identity(m):
                        ins.append(scalar[v])
                    else:
                        ins.append(args[input_slot[(v, str(m))]])
                for r, s in zip(o.results, _scalar_body(o, ins)):
                    scalar[r] = s
            return [scalar[v] for v in outputs]

        fused = make_generic(inputs, inits, [*maps, *[identity_map(rank)] * len(outputs)],
                             [PARALLEL] * rank, body)
    for old, new in zip(outputs, fused.results):
        old.replace_all_uses_with(new)
    for o in reversed(members):
        o.erase()


def _scalar_body(op: ir.Operation, ins: List[ir.Value]) -> List[ir.Value]:
    """Emit ``op`` applied to scalars ``ins``; return its scalar results."""
    if pw.is_splat_constant(op):
        attr = pw.splat_scalar_attr(op)
        return [create("arith.constant", [attr.type], [], {"value": attr},
                       loc=op.location).result]
    if op.name != "linalg.generic":
        res_types = [element_type(r) for r in op.results]
        return list(create(op.name, res_types, ins, attrs_of(op),
                           loc=op.location).results)
    # Inline a generic's body; is_pointwise_generic guarantees it never
    # reads its output-init arguments.
    src = body_block(op)
    mapping: Dict[ir.Value, ir.Value] = dict(zip(list(src.arguments)[:len(ins)], ins))
    return clone_block_body(src, mapping)
