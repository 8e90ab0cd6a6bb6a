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


class _Partition:
    """The ops of one block, partitioned into groups that may each become
    one region.

    For every group it keeps the ops reachable from it (``desc``) and the
    ops that reach it (``anc``) in the graph where each group is contracted
    to one node. A merge is allowed only when no op outside the merged
    groups lies on a path between them in that graph, so the contracted
    graph stays acyclic after every merge: the regions can always be
    ordered, whatever the order of merges (checking each group's convexity
    on its own is not enough: two groups can each be convex and still feed
    each other).
    """

    def __init__(self, producers: List[set], not_fusable_with: List[int]):
        n = len(producers)
        anc = [0] * n
        for i in range(n):
            for p in producers[i]:
                anc[i] |= anc[p] | (1 << p)
        desc = [0] * n
        for i in reversed(range(n)):
            for p in producers[i]:
                desc[p] |= desc[i] | (1 << i)
        self.n = n
        self.members: Dict[int, int] = {i: 1 << i for i in range(n)}
        self.desc: Dict[int, int] = dict(enumerate(desc))
        self.anc: Dict[int, int] = dict(enumerate(anc))
        self.group_of: List[int] = list(range(n))
        self._not_fusable_with = not_fusable_with

    def can_merge(self, gids) -> bool:
        """True when the groups ``gids`` can become one region: no outside
        op (or group) lies on a path between them, and no member reads
        another through a non-identity map."""
        members = desc = anc = conflicts = 0
        for g in gids:
            members |= self.members[g]
            desc |= self.desc[g]
            anc |= self.anc[g]
        for i in _bits(members):
            conflicts |= self._not_fusable_with[i]
        return (desc & anc & ~members) == 0 and (conflicts & members) == 0

    def merge(self, gids) -> int:
        """Merge the groups ``gids`` (``can_merge`` must hold); returns the
        merged group's id."""
        target = min(gids)
        members = desc = anc = 0
        for g in set(gids):
            members |= self.members.pop(g)
            desc |= self.desc.pop(g)
            anc |= self.anc.pop(g)
        desc &= ~members
        anc &= ~members
        # Whoever reaches one member now reaches the whole group and all it
        # reaches; whoever one member reaches is now reached from all of it.
        for g, m in self.members.items():
            if m & anc:
                self.desc[g] |= members | desc
            if m & desc:
                self.anc[g] |= members | anc
        self.members[target], self.desc[target], self.anc[target] = members, desc, anc
        for i in _bits(members):
            self.group_of[i] = target
        return target


def _bits(mask: int):
    """The indices of the set bits of ``mask``, in increasing order."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def fuse_block(block: ir.Block) -> None:
    """Fuse the pointwise ops of one block (see the module docstring)."""
    ops = block_ops(block)[:-1]
    index = {o: i for i, o in enumerate(ops)}
    n = len(ops)
    is_pw = [pw.is_pointwise(o) for o in ops]
    # not_fusable_with[i]: the ops whose results op i reads through anything
    # but the identity map (a transpose or broadcast of them). Such a pair
    # can never share a region: element (i, j) of the consumer needs element
    # (j, i) of the producer, which the fused loop computes at another
    # iteration.
    not_fusable_with = [0] * n
    for i, o in enumerate(ops):
        if not is_pw[i]:
            continue
        for v, m in zip(pw.pointwise_inputs(o), pw.input_maps(o)):
            d = defining_op(v)
            if d is not None and d in index and not is_identity(m):
                not_fusable_with[i] |= 1 << index[d]
    part = _Partition(producer_indices(ops), not_fusable_with)
    group_of = part.group_of

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
            if (is_pw[j] and is_identity(m) and pw.domain(d) == dom
                    and group_of[j] not in cands and group_of[j] != group_of[i]):
                cands.append(group_of[j])
        if not cands:
            continue
        if part.can_merge([group_of[i], *cands]):
            part.merge([group_of[i], *cands])
            continue
        for g in sorted(cands, key=lambda g: -bin(part.members[g]).count("1")):
            if g in part.members and part.can_merge([group_of[i], g]):
                part.merge([group_of[i], g])

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
                if part.can_merge([ga, gb]):
                    part.merge([ga, gb])

    # Materialise each group as one generic.
    changed = False
    for gid, members in sorted(part.members.items()):
        if not is_pw[gid]:
            continue
        member_ops = [ops[i] for i in _bits(members)]
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
