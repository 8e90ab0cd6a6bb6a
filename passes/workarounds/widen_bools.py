"""widen-bools: store bool tensors as bytes (``i1`` tensors become ``i8``).

Expects: tensor-level IR after fuse-pointwise, before bufferization.
Guarantees: no ranked tensor of ``i1`` remains. Function arguments and
results, constants, tensor ops and region operands of type ``tensor<...xi1>``
become ``tensor<...xi8>``; inside a region's body the scalar stays ``i1``
(``arith.trunci`` where an input is read, ``arith.extui`` where an output is
yielded). A numpy bool array is one byte per element holding 0 or 1, so the
caller's bool arrays are passed unchanged.

Upstream (LLVM 22.1): ``finalize-memref-to-llvm`` aborts the process on a
store to a buffer of ``i1`` (the assertion ``integralElementType.getWidth()
>= 8`` in MemRefToLLVM.cpp), so bool buffers must not reach it;
tests/test_workarounds.py checks that it still does.
"""

from mlir import ir

from ...dialect.ir_utils import block_ops, create, func_body, funcs_of, generic_num_inputs
from ..support.registry import register

LLVM_VERSION = "22.1"   # the upstream release this works around (see the docstring)


def _i1_tensor(t) -> bool:
    return (isinstance(t, ir.RankedTensorType) and isinstance(t.element_type, ir.IntegerType)
            and t.element_type.width == 1)


def _i8(t):
    return ir.RankedTensorType.get(list(t.shape), ir.IntegerType.get_signless(8))


@register("widen-bools")
def widen_bools(module_op: ir.Operation) -> None:
    for fn in funcs_of(module_op):
        if len(fn.regions[0].blocks):
            _widen_func(fn)


def _widen_func(fn: ir.Operation) -> None:
    block = func_body(fn)
    for a in block.arguments:
        if _i1_tensor(a.type):
            a.set_type(_i8(a.type))
    for op in block_ops(block):
        if op.name == "linalg.generic":
            _widen_generic(op)
        elif op.name == "arith.constant" and _i1_tensor(op.results[0].type):
            _widen_constant(op)
        else:
            for r in op.results:
                if _i1_tensor(r.type):
                    r.set_type(_i8(r.type))
    ftype = ir.FunctionType(ir.TypeAttr(fn.attributes["function_type"]).value)
    results = [_i8(t) if _i1_tensor(t) else t for t in ftype.results]
    fn.attributes["function_type"] = ir.TypeAttr.get(
        ir.FunctionType.get([a.type for a in block.arguments], results))


def _widen_generic(op: ir.Operation) -> None:
    n_in = generic_num_inputs(op)
    body = op.regions[0].blocks[0]
    args = list(body.arguments)
    i8, i1 = ir.IntegerType.get_signless(8), ir.IntegerType.get_signless(1)
    first = block_ops(body)[0]
    for k, v in enumerate(op.operands):
        if not (isinstance(v.type, ir.RankedTensorType) and v.type.element_type == i8):
            continue
        a = args[k]
        if a.type != i1:
            continue
        a.set_type(i8)
        if k < n_in and list(a.uses):
            with ir.InsertionPoint(first), op.location:
                narrow = create("arith.trunci", [i1], [a]).result
            a.replace_all_uses_except(narrow, narrow.owner.operation)
    yld = block_ops(body)[-1]
    for j, r in enumerate(op.results):
        if _i1_tensor(r.type):
            r.set_type(_i8(r.type))
            init = args[n_in + j]
            init.set_type(i8)
            with ir.InsertionPoint(yld), op.location:
                wide = create("arith.extui", [i8], [yld.operands[j]]).result
            yld.operands[j] = wide


def _widen_constant(op: ir.Operation) -> None:
    import numpy as np
    t = op.results[0].type
    attr = ir.DenseElementsAttr(op.attributes["value"])
    if attr.is_splat:
        val = bool(ir.BoolAttr(attr.get_splat_value()).value) if isinstance(
            attr.get_splat_value(), ir.BoolAttr) else bool(ir.IntegerAttr(attr.get_splat_value()).value)
        new = ir.DenseElementsAttr.get_splat(_i8(t), ir.IntegerAttr.get(ir.IntegerType.get_signless(8), int(val)))
    else:
        arr = np.array(attr, dtype=np.bool_).astype(np.int8).reshape(t.shape)
        new = ir.DenseElementsAttr.get(np.ascontiguousarray(arr), type=_i8(t))
    op.attributes["value"] = new
    op.results[0].set_type(_i8(t))
