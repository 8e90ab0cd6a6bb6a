"""lower-callbacks: host callbacks from tensors onto buffers.

Expects: calls of the external functions ``@__ferrule_callback_<n>`` on
tensors (``lower-ad`` makes them from ``ad.pure_callback``), with their
private declarations; the last tensor-level pass before
``one-shot-bufferize``.
Guarantees: equal calls (same callback, same operands) in one block are
merged and calls whose results are unused are dropped — callbacks are pure.
Each remaining call becomes
``call @__ferrule_callback_<n>(in buffers..., out buffers...) -> ()``: every
operand through ``bufferization.to_buffer read_only`` (identity layout:
bufferization copies a strided view), every result a fresh ``memref.alloc``
that the callback fills, read back with ``bufferization.to_tensor
restrict``; the declaration takes the same buffers and returns nothing
(the CPU runtime binds it: runtime/cpu/callbacks.py).
Why here: the call must see its buffers as operands so that bufferization
and deallocation keep them alive and ordered around it; and no tensor-level
pass may run after it, since ``to_tensor`` hides the write into its buffer
from SSA order (a fusion could move a reader of the result before the call).
"""

from typing import Dict, List

from mlir import ir

from ..dialect.builders import CALLBACK_PREFIX
from ..dialect.ir_utils import create, funcs_of
from .support.registry import register


def _is_callback_call(op: ir.Operation) -> bool:
    return (op.name == "func.call"
            and ir.FlatSymbolRefAttr(op.attributes["callee"]).value.startswith(CALLBACK_PREFIX))


def _memref(t: ir.Type) -> ir.MemRefType:
    t = ir.RankedTensorType(t)
    return ir.MemRefType.get(list(t.shape), t.element_type)


@register("lower-callbacks")
def lower_callbacks(module_op: ir.Operation) -> None:
    calls: List[ir.Operation] = []
    module_op.walk(lambda o: (calls.append(o.operation) if _is_callback_call(o.operation)
                              else None, ir.WalkResult.ADVANCE)[1])
    # Merge equal calls (in order, so the first stays) and drop unused ones.
    seen: Dict[tuple, ir.Operation] = {}
    kept = []
    for op in calls:
        key = (ir.FlatSymbolRefAttr(op.attributes["callee"]).value, op.parent,
               tuple(op.operands))
        first = seen.get(key)
        if first is not None:
            for old, new in zip(op.results, first.results):
                old.replace_all_uses_with(new)
            op.erase()
            continue
        seen[key] = op
        kept.append(op)
    live = []
    for op in reversed(kept):   # a dropped call may free the operands of an earlier one
        if all(not list(r.uses) for r in op.results):
            op.erase()
        else:
            live.append(op)
    declared = {}
    for op in reversed(live):
        callee = ir.FlatSymbolRefAttr(op.attributes["callee"]).value
        with ir.InsertionPoint(op), op.location:
            ins = [create("bufferization.to_buffer", [_memref(v.type)], [v],
                          {"read_only": ir.UnitAttr.get()}).result for v in op.operands]
            outs = [create("memref.alloc", [_memref(r.type)], [],
                           {"operandSegmentSizes": ir.DenseI32ArrayAttr.get([0, 0])}).result
                    for r in op.results]
            create("func.call", [], ins + outs, {"callee": op.attributes["callee"]})
            for r, m in zip(op.results, outs):
                t = create("bufferization.to_tensor", [r.type], [m],
                           {"restrict": ir.UnitAttr.get()}).result
                r.replace_all_uses_with(t)
        declared[callee] = [v.type for v in ins + outs]
        op.erase()
    for fn in funcs_of(module_op):
        name = ir.StringAttr(fn.attributes["sym_name"]).value
        if name.startswith(CALLBACK_PREFIX) and not len(fn.regions[0].blocks):
            if name in declared:
                fn.attributes["function_type"] = ir.TypeAttr.get(
                    ir.FunctionType.get(declared[name], []))
            else:                  # every call of it was dropped
                fn.erase()
