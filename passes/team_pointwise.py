"""team-pointwise: a large pointwise loop nest is split over a team of threads.

Expects: bufferized IR with ``linalg.generic`` ops on memrefs (before
``convert-linalg-to-loops``), static shapes.
Guarantees: each ``linalg.generic`` directly in a function that

* has only parallel iterators,
* indexes every operand with a projected permutation, and every output
  with one that uses the first loop dimension ``d0`` (so threads that take
  different ranges of ``d0`` write different elements),
* and does at least :data:`MIN_WORK` operations (iterations times the ops
  of its body; about 30 us of scalar work on one core),

is replaced by a call of a team function (:mod:`.support.parallel`) that
runs the same generic on the subviews of rows ``[E*tid/nt, E*(tid+1)/nt)``
of ``d0`` (``E``: its extent), called with ``tid = 0, nt = 1`` (the whole
loop nest: the serial meaning) for ``parallel-calls`` to run on a team.
Identical loop nests (same body, maps and operand types) share one team
function. Each element is computed by the same scalar code as before, so
results are bitwise those of one thread.

Option ``threads`` (default 2): the team size the function is made for
(nothing is done for 1).

Why: in a ``scan`` (an RNN over a sequence) the function runs on one
thread, row splitting does not apply, and after its matmuls run on teams
(``tile-matmul{threads}``) the gate math of each step — a few thousand
transcendental functions — is what is left on one core.
"""

from typing import List

from mlir import ir
from mlir.dialects import arith, memref

from ..dialect.ir_utils import (block_ops, body_block, find_symbol, func_body, funcs_of,
                                generic_iterators, generic_maps, map_dims)
from .support.parallel import TeamFunctions, is_team_function
from .support.registry import register

MIN_WORK = 1 << 17


@register("team-pointwise")
def team_pointwise(module_op: ir.Operation, threads: str = "2") -> None:
    nthreads = int(threads)
    if not 1 <= nthreads <= 256:
        raise ValueError(f"team-pointwise: threads must be 1..256, got {threads!r}")
    if nthreads == 1:
        return
    team = TeamFunctions(module_op, "pointwise", nthreads)
    for fn in funcs_of(module_op):
        if not len(fn.regions[0].blocks) or _is_team(fn):
            continue
        for op in block_ops(func_body(fn)):
            extent = _splittable(op)
            if extent is not None:
                with ir.InsertionPoint(op), op.location:
                    _on_team(team, op, extent)
                op.erase()


def _is_team(fn: ir.Operation) -> bool:
    return is_team_function(ir.StringAttr(fn.attributes["sym_name"]).value)


def _splittable(op: ir.Operation):
    """The extent of ``d0`` when ``op`` qualifies (module docstring), else None."""
    if op.name != "linalg.generic" or len(op.results):
        return None
    if any(it != "#linalg.iterator_type<parallel>" for it in generic_iterators(op)):
        return None
    types = [v.type for v in op.operands]
    if not all(isinstance(t, ir.MemRefType) and ir.MemRefType(t).has_static_shape
               for t in types):
        return None
    maps = generic_maps(op)
    dims = [map_dims(m) for m in maps]
    if any(d is None for d in dims):
        return None
    n_in = len(op.operands) - _num_outputs(op)
    if not all(0 in d for d in dims[n_in:]):
        return None
    extent, iterations = None, 1
    loop_extents = {}
    for t, d in zip(types, dims):
        for r, dim in enumerate(d):
            loop_extents[dim] = ir.MemRefType(t).shape[r]
    extent = loop_extents.get(0)
    if extent is None or extent < 2 or len(loop_extents) != maps[0].n_dims:
        return None
    for e in loop_extents.values():
        iterations *= e
    body_ops = len(list(body_block(op).operations))
    if iterations * body_ops < MIN_WORK or _captured(op) is None:
        return None
    return extent


def _num_outputs(op: ir.Operation) -> int:
    return int(ir.DenseI32ArrayAttr(op.attributes["operandSegmentSizes"])[1])


def _on_team(team: TeamFunctions, op: ir.Operation, extent: int) -> None:
    operands = list(op.operands)
    captured = _captured(op)
    dims = [map_dims(m) for m in generic_maps(op)]
    # Operands read from constant globals are read again inside the team
    # function rather than passed: LLVM then sees their values (a splat
    # -0.0 added to a value folds away there, as it does in the caller).
    globals_ = {k: v.owner.operation for k, v in enumerate(operands) if _constant_global(v)}
    passed = [v for k, v in enumerate(operands) if k not in globals_]
    key = (_op_text_key(op), tuple(str(v.type) for v in operands),
           tuple((k, str(g.attributes["name"])) for k, g in globals_.items()))

    def body(args: List[ir.Value], tid: ir.Value, nt: ir.Value) -> None:
        index = ir.IndexType.get()
        e = arith.constant(index, extent)
        lo = arith.divui(arith.muli(e, tid), nt)
        hi = arith.divui(arith.muli(e, arith.addi(tid, arith.constant(index, 1))), nt)
        rows = arith.subi(hi, lo)
        given = iter(args)
        values = [globals_[k].clone().results[0] if k in globals_ else next(given)
                  for k in range(len(operands))]
        views = [_rows_view(a, d, lo, rows) for a, d in zip(values, dims)]
        copies = {v: v.owner.clone().results[0] for v in captured}
        clone = op.clone()
        for k, v in enumerate(views):
            clone.operands[k] = v
        _rebind(clone, copies)

    team.call(key, passed, body)


def _constant_global(v: ir.Value) -> bool:
    """``v`` is a ``memref.get_global`` of a constant global."""
    owner = v.owner
    if isinstance(owner, ir.Block) or owner.operation.name != "memref.get_global":
        return False
    owner = owner.operation
    module_op = owner
    while module_op.parent is not None and module_op.name != "builtin.module":
        module_op = module_op.parent.operation
    name = ir.FlatSymbolRefAttr(owner.attributes["name"]).value
    g = find_symbol(module_op, name, "memref.global")
    return g is not None and "constant" in g.attributes


def _op_text_key(op: ir.Operation):
    """A structural key of the generic without its operands — maps,
    iterators and body, values numbered locally: equal for two generics
    that differ only in what they are applied to."""
    block = body_block(op)
    number = {}
    for a in block.arguments:
        number[a] = len(number)
    body = []
    for inner in block.operations:
        inner = inner.operation
        if len(inner.regions):
            return ("unique", id(op))
        attrs = tuple(sorted((n, str(inner.attributes[n])) for n in inner.attributes))
        body.append((inner.name, tuple(number.get(v, None) if v in number else
                                       ("constant", str(v.owner.attributes["value"]))
                                       for v in inner.operands),
                     tuple(str(r.type) for r in inner.results), attrs))
        for r in inner.results:
            number[r] = len(number)
    return (str(op.attributes["indexing_maps"]), str(op.attributes["iterator_types"]),
            tuple(str(a.type) for a in block.arguments), tuple(body))


def _captured(op: ir.Operation):
    """The values from outside that the body uses (canonicalize hoists its
    constants out), or None when one is not an ``arith.constant`` (which
    the team function could not recreate)."""
    block = body_block(op)
    inside = set(block.arguments)
    captured = []
    for inner in block.operations:
        for v in inner.operands:
            if v not in inside and v not in captured:
                owner = v.owner
                if isinstance(owner, ir.Block) or owner.operation.name != "arith.constant":
                    return None
                captured.append(v)
        for r in inner.results:
            inside.add(r)
    return captured


def _rebind(clone: ir.Operation, mapping) -> None:
    """Point the uses of captured values in ``clone``'s body at their copies."""
    for inner in body_block(clone).operations:
        for k, v in enumerate(inner.operands):
            if v in mapping:
                inner.operands[k] = mapping[v]


def _rows_view(v: ir.Value, dims: List[int], lo: ir.Value, rows: ir.Value) -> ir.Value:
    """``v`` restricted to rows ``lo .. lo+rows`` of loop dimension 0."""
    if 0 not in dims:
        return v
    t = ir.MemRefType(v.type)
    strides, _ = t.get_strides_and_offset()
    dyn = ir.ShapedType.get_dynamic_size()
    shape = [dyn if d == 0 else s for d, s in zip(dims, t.shape)]
    layout = ir.StridedLayoutAttr.get(ir.ShapedType.get_dynamic_stride_or_offset(), strides)
    view_t = ir.MemRefType.get(shape, t.element_type, layout)
    offsets = [lo if d == 0 else 0 for d in dims]
    sizes = [rows if d == 0 else s for d, s in zip(dims, t.shape)]
    return memref.subview(v, offsets, sizes, [1] * t.rank, result_type=view_t)
