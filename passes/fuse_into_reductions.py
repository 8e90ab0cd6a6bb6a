"""fuse-into-reductions: a pointwise region read only by a reduction becomes
part of it.

Expects: tensor-level ``linalg.generic`` ops after fuse-pointwise.
Guarantees: no ``linalg.generic`` with a reduction iterator reads a tensor
produced by a single-result, all-parallel ``linalg.generic`` that has no
other user, when both regions' indexing maps are projected permutations,
the producer writes through an identity map without reading its init, and
every loop of the fused op is still indexed by one of its operands (a
producer that broadcasts is left alone: its output alone sized that loop). The
producer's body is moved into the reduction's (its inputs read through the
composed maps), so ``sum(x * x)`` is one loop nest that writes no temporary.
Named ops (``linalg.matmul`` ...), packed matmuls (``ferrule.packed_matmul``,
``pack-scan-weights``) and everything else are left as they are.

Why not upstream ``linalg-fuse-elementwise-ops``: besides this fusion it
propagates reshapes by expanding iteration spaces, which turns a
``linalg.batch_matmul`` between reshapes into a generic contraction that
neither the CPU's ``tile-matmul`` nor any named-op lowering recognises.
"""

from typing import List, Optional

from mlir import ir

from ..dialect.ir_utils import (block_ops, body_block, create, defining_op, func_body,
                               funcs_of, generic_iterators, generic_maps,
                               generic_num_inputs, is_identity, map_dims)
from .support.matmul import PACKED_MATMUL
from .support.registry import register


@register("fuse-into-reductions")
def fuse_into_reductions(module_op: ir.Operation) -> None:
    for fn in funcs_of(module_op):
        if not len(fn.regions[0].blocks):
            continue
        changed = True
        while changed:
            changed = False
            for op in block_ops(func_body(fn)):
                if op.name == "linalg.generic" and any(
                        "reduction" in it for it in generic_iterators(op)) \
                        and PACKED_MATMUL not in op.attributes:  # tile-matmul's
                    for i in range(generic_num_inputs(op)):
                        producer = _fusable_producer(op, i)
                        if producer is not None:
                            _fuse(producer, op, i)
                            changed = True
                            break
                if changed:
                    break


def _fusable_producer(op: ir.Operation, i: int) -> Optional[ir.Operation]:
    p = defining_op(op.operands[i])
    if (p is None or p.name != "linalg.generic" or len(p.results) != 1
            or len(list(p.results[0].uses)) != 1
            or any("parallel" not in it for it in generic_iterators(p))):
        return None
    n_in = generic_num_inputs(p)
    maps = generic_maps(p)
    if not is_identity(maps[n_in]) or any(map_dims(m) is None for m in maps):
        return None
    r_maps = generic_maps(op)
    if map_dims(r_maps[i]) is None:
        return None
    # Every loop of the fused op must still get its size from some operand:
    # a producer loop that only its output indexed (a broadcast) would be
    # left unbounded.
    covered = set()
    for k, m in enumerate(r_maps):
        if k != i:
            covered.update(map_dims(m))
    for m in maps[:n_in]:
        covered.update(map_dims(_compose(m, r_maps[i])))
    if covered != set(range(r_maps[i].n_dims)):
        return None
    body = body_block(p)
    if list(body.arguments[n_in].uses):          # reads its init: not pointwise
        return None
    if any(o.name == "linalg.index" for o in block_ops(body)):
        return None
    return p


def _compose(inner: ir.AffineMap, outer: ir.AffineMap) -> ir.AffineMap:
    """``inner ∘ outer`` for projected permutations: ``outer`` maps the
    consumer's loops to the producer's, ``inner`` the producer's loops to
    one of its inputs."""
    outer_dims = map_dims(outer)
    return ir.AffineMap.get(outer.n_dims, 0,
                            [ir.AffineDimExpr.get(outer_dims[d]) for d in map_dims(inner)])


def _fuse(p: ir.Operation, r: ir.Operation, i: int) -> None:
    p_in, r_in = generic_num_inputs(p), generic_num_inputs(r)
    p_maps, r_maps = generic_maps(p), generic_maps(r)
    r_ops = list(r.operands)
    inputs: List[ir.Value] = r_ops[:i] + list(p.operands)[:p_in] + r_ops[i + 1:r_in]
    inits = r_ops[r_in:]
    maps = (r_maps[:i] + [_compose(m, r_maps[i]) for m in p_maps[:p_in]]
            + r_maps[i + 1:])
    attrs = {
        "indexing_maps": ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in maps]),
        "iterator_types": r.attributes["iterator_types"],
        "operandSegmentSizes": ir.DenseI32ArrayAttr.get([len(inputs), len(inits)]),
    }
    with ir.InsertionPoint(r), r.location:
        fused = create("linalg.generic", [v.type for v in r.results], inputs + inits,
                       attrs, regions=1)
    p_body, r_body = body_block(p), body_block(r)
    arg_types = ([a.type for a in r_body.arguments][:i] + [a.type for a in p_body.arguments][:p_in]
                 + [a.type for a in r_body.arguments][i + 1:])
    block = fused.regions[0].blocks.append(*arg_types,
                                           arg_locs=[r.location] * len(arg_types))
    new_args = list(block.arguments)
    for k, a in enumerate(list(p_body.arguments)[:p_in]):
        a.replace_all_uses_with(new_args[i + k])
    p_yield = block_ops(p_body)[-1]
    value = p_yield.operands[0]
    for o in block_ops(p_body)[:-1]:      # Block.append moves the op
        block.append(o)
    p_yield.erase()
    r_args = list(r_body.arguments)
    r_args[i].replace_all_uses_with(value)
    rest = new_args[:i] + new_args[i + p_in:]
    for a, new in zip(r_args[:i] + r_args[i + 1:], rest):
        a.replace_all_uses_with(new)
    for o in block_ops(r_body):
        block.append(o)
    for old, new in zip(r.results, fused.results):
        old.replace_all_uses_with(new)
    r.erase()
    p.erase()
