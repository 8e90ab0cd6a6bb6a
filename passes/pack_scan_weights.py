"""pack-scan-weights: a scan step's matmul reads its weight packed once, before the loop.

Expects: tensor-level IR with ``ad.scan`` ops (before ``lower-scan``).
Guarantees: in each step function that only one op calls, every
``linalg.matmul`` ``C = A·B`` on static f32/f64 tensors whose ``B`` (K × N)
is one of the step's consts, with ``N`` a multiple of ``NR = 2·lanes`` (the
``tile-matmul`` tile width for ``lanes-bytes``) and ``K >= 16``, becomes

    linalg.generic {ferrule.packed_matmul = NR}
        ins(A : M×K, Bp : (N/NR)×K×NR) outs(C : M×N)
        C[m, jb·NR + l] += A[m, k] · Bp[jb, k, l]

where ``Bp`` is a new const of the step, computed before the scan by a
pointwise ``linalg.generic`` (``Bp[jb, k, l] = B[k, jb·NR + l]``) from the
scan's operand (one ``Bp`` per ``B``, whatever the number of matmuls that
read it). Same sums, same order: ``tile-matmul`` computes the generic with
the matmul's kernel, reading ``Bp``'s panels instead of packing ``B``'s
(``convert-linalg-to-loops`` would compute it as written). Passes that
rewrite reductions (``fuse-into-reductions``, ``widen-accumulators``) leave
generics with the attribute alone.

Why: the step's matmul (the LSTM's ``h @ Wh``, 32×256×1024) packed each
K×NR panel of the weight on every step, from rows 4 KiB apart — a new page
per row, which the hardware prefetcher does not follow: a third of the
product's time, 32 times per call for the same weight.
"""

from mlir import ir

from ..dialect import builders
from ..dialect.ir_utils import (PARALLEL, REDUCTION, block_ops, create, empty, find_func,
                                func_body, make_generic, shape_of)
from .support import ad_common as ad
from .support.matmul import PACKED_MATMUL, plain_matmul_on_tensors
from .support.registry import register

MIN_K = 16


@register("pack-scan-weights")
def pack_scan_weights(module_op: ir.Operation, lanes_bytes: str = "32") -> None:
    vbytes = int(lanes_bytes)
    if vbytes not in (16, 32, 64):
        raise ValueError(f"pack-scan-weights: lanes-bytes must be 16, 32 or 64, got {vbytes}")
    scans = []
    module_op.walk(lambda o: (scans.append(o.operation) if o.operation.name == "ad.scan"
                              else None, ir.WalkResult.ADVANCE)[1])
    refs = ad.callee_refs(module_op)
    for op in scans:
        if refs.get(ad.callee_of(op), 0) == 1:
            _pack(module_op, op, vbytes)


def _nr(elt: ir.Type, vbytes: int) -> int:
    return 2 * (vbytes // (4 if isinstance(elt, ir.F32Type) else 8))


def _candidates(step: ir.Operation, consts, vbytes: int):
    for o in block_ops(func_body(step)):
        if o.name != "linalg.matmul" or not plain_matmul_on_tensors(o):
            continue
        b = o.operands[1]
        k, n = shape_of(b)
        if b in consts and k >= MIN_K and n % _nr(ir.RankedTensorType(b.type).element_type,
                                                 vbytes) == 0:
            yield o


def _pack(module_op: ir.Operation, op: ir.Operation, vbytes: int) -> None:
    n_c, n_x, n_k = ad.segment_sizes(op)
    step = find_func(module_op, ad.callee_of(op))
    block = func_body(step)
    args = list(block.arguments)
    consts = args[n_c + n_x:]
    matmuls = list(_candidates(step, consts, vbytes))
    if not matmuls:
        return
    weights = []
    for m in matmuls:
        if m.operands[1] not in weights:
            weights.append(m.operands[1])
    operands = list(op.operands)
    new_consts = []
    packed_args = {}
    for w in weights:
        elt = ir.RankedTensorType(w.type).element_type
        nr = _nr(elt, vbytes)
        with ir.InsertionPoint(op), op.location:
            new_consts.append(_pack_weight(operands[n_c + n_x + consts.index(w)], nr))
        packed_args[w] = block.add_argument(new_consts[-1].type, step.location)
    for m in matmuls:
        with ir.InsertionPoint(m), m.location:
            new = _packed_matmul(m.operands[0], packed_args[m.operands[1]], m.operands[2])
        m.results[0].replace_all_uses_with(new)
        m.erase()
    ftype = ir.FunctionType(ir.TypeAttr(step.attributes["function_type"]).value)
    step.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(
        [a.type for a in block.arguments], list(ftype.results)))
    with ir.InsertionPoint(op), op.location:
        new_op = builders.scan(ad.callee_of(op), operands[:n_c], operands[n_c:n_c + n_x],
                               operands[n_c + n_x:] + new_consts, [r.type for r in op.results],
                               ad.int_attr(op, "length"), ad.int_attr(op, "reverse") != 0,
                               ad.int_attr(op, "remat") != 0)
    for r, nr_ in zip(op.results, new_op.results):
        r.replace_all_uses_with(nr_)
    op.erase()


def _pack_weight(w: ir.Value, nr: int) -> ir.Value:
    """``Bp[jb, k, l] = w[k, jb·nr + l]``: the K × nr column panels of ``w``."""
    k, n = shape_of(w)
    elt = ir.RankedTensorType(w.type).element_type
    d = [ir.AffineDimExpr.get(i) for i in range(3)]      # jb, k, l
    read = ir.AffineMap.get(3, 0, [d[1], d[0] * nr + d[2]])
    return make_generic([w], [empty([n // nr, k, nr], elt)],
                        [read, ir.AffineMap.get_identity(3)], [PARALLEL] * 3,
                        lambda a: [a[0]]).result


def _packed_matmul(a: ir.Value, bp: ir.Value, c: ir.Value) -> ir.Value:
    """``c[m, jb·NR + l] + a[m, k] · bp[jb, k, l]`` summed over ``k``."""
    nr = shape_of(bp)[2]
    d = [ir.AffineDimExpr.get(i) for i in range(4)]    # m, jb, l, k
    maps = [ir.AffineMap.get(4, 0, [d[0], d[3]]),
            ir.AffineMap.get(4, 0, [d[1], d[3], d[2]]),
            ir.AffineMap.get(4, 0, [d[0], d[1] * nr + d[2]])]

    def body(x):
        prod = create("arith.mulf", [x[0].type], [x[0], x[1]]).result
        return [create("arith.addf", [x[0].type], [x[2], prod]).result]
    mark = {PACKED_MATMUL: ir.IntegerAttr.get(ir.IntegerType.get_signless(64), nr)}
    return make_generic([a, bp], [c], maps, [PARALLEL] * 3 + [REDUCTION], body,
                        extra_attrs=mark).result
