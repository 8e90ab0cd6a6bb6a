"""widen-bool-buffers: store ``i1`` buffers as bytes after deallocation.

Expects: bufferized IR, after ``buffer-deallocation-pipeline``.
Guarantees: no ``memref`` of ``i1`` remains. Every value of type
``memref<...xi1>`` (op results, block and function arguments) becomes
``memref<...xi8>``; ``memref.load`` from such a buffer is followed by
``arith.trunci`` back to ``i1``, and ``memref.store`` into one is preceded by
``arith.extui``. Function signatures and call results are updated.

Why (LLVM 22.1, checked): ``finalize-memref-to-llvm`` aborts the process on
a load or store of a sub-byte element type ("Assertion
`integralElementType.getWidth() >= 8' failed" in MemRefToLLVM.cpp). The
ownership-based deallocation creates exactly such buffers (its
``dealloc_helper`` takes ``memref<?xi1>`` ownership flags) whenever a loop
carries freshly allocated buffers (``scan``'s carries). ``widen-bools``
covers the tensor level; this pass covers the buffers that appear after it.
tests/test_workarounds.py checks that upstream still aborts.
"""

from mlir import ir

from ...dialect.ir_utils import create
from ..support.registry import register

LLVM_VERSION = "22.1"   # the upstream release this works around (see the docstring)


def _is_i1_memref(t) -> bool:
    return (isinstance(t, ir.MemRefType) and isinstance(t.element_type, ir.IntegerType)
            and ir.IntegerType(t.element_type).width == 1)


def _widened(t: ir.MemRefType) -> ir.MemRefType:
    return ir.MemRefType.get(list(t.shape), ir.IntegerType.get_signless(8), t.layout,
                             t.memory_space)


def _widen_value(v: ir.Value) -> None:
    if _is_i1_memref(v.type):
        v.set_type(_widened(ir.MemRefType(v.type)))


@register("widen-bool-buffers")
def widen_bool_buffers(module_op: ir.Operation) -> None:
    ops = []
    module_op.walk(lambda o: (ops.append(o.operation), ir.WalkResult.ADVANCE)[1])
    # Find the accesses first: widening the buffers changes what they read.
    loads = [op for op in ops if op.name == "memref.load" and _is_i1_memref(op.operands[0].type)]
    stores = [op for op in ops if op.name == "memref.store" and _is_i1_memref(op.operands[1].type)]
    for op in ops:
        for region in op.regions:
            for block in region.blocks:
                for a in block.arguments:
                    _widen_value(a)
        for r in op.results:
            _widen_value(r)
        if op.name == "func.func":
            ftype = ir.FunctionType(ir.TypeAttr(op.attributes["function_type"]).value)
            op.attributes["function_type"] = ir.TypeAttr.get(ir.FunctionType.get(
                [_widened_type(t) for t in ftype.inputs],
                [_widened_type(t) for t in ftype.results]))
    i1, i8 = ir.IntegerType.get_signless(1), ir.IntegerType.get_signless(8)
    for op in loads:
        op.results[0].set_type(i8)
        with ir.InsertionPoint.after(op), op.location:
            narrow = create("arith.trunci", [i1], [op.results[0]]).result
        op.results[0].replace_all_uses_except(narrow, narrow.owner.operation)
    for op in stores:
        with ir.InsertionPoint(op), op.location:
            wide = create("arith.extui", [i8], [op.operands[0]]).result
        op.operands[0] = wide


def _widened_type(t: ir.Type) -> ir.Type:
    return _widened(ir.MemRefType(t)) if _is_i1_memref(t) else t
