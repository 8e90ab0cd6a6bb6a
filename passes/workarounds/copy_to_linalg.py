"""copy-to-linalg: rewrite a strided ``memref.copy`` as a ``linalg.generic`` copy.

Expects: bufferized IR. Guarantees: every ``memref.copy`` left is between
two static, contiguous row-major memrefs (``finalize-memref-to-llvm`` makes
it one ``llvm.intr.memcpy``: no loop to compile, libc's copy to run); every
other becomes an identity ``linalg.generic`` that
``convert-linalg-to-loops`` turns into a loop nest.

Upstream (LLVM 22.1): ``finalize-memref-to-llvm`` lowers a copy between
strided (non-contiguous) memrefs to a call of ``memrefCopy`` from MLIR's C
runner library, which ferrule's generated code does not link (the JIT would
refuse the missing symbol). tests/test_workarounds.py checks that upstream
still does so.
"""

from mlir import ir

from ...dialect.ir_utils import PARALLEL, identity_map
from ..support.registry import register

LLVM_VERSION = "22.1"   # the upstream release this works around (see the docstring)


@register("copy-to-linalg")
def copy_to_linalg(module_op: ir.Operation) -> None:
    copies = []
    module_op.walk(lambda o: (copies.append(o.operation) if o.operation.name == "memref.copy"
                              else None, ir.WalkResult.ADVANCE)[1])
    for op in copies:
        src, dst = op.operands
        if _contiguous(src.type) and _contiguous(dst.type):
            continue
        rank = ir.MemRefType(src.type).rank
        with ir.InsertionPoint(op), op.location:
            _memref_generic(src, dst, rank)
        op.erase()


def _memref_generic(src, dst, rank):
    attrs = {
        "indexing_maps": ir.ArrayAttr.get([ir.AffineMapAttr.get(identity_map(rank))] * 2),
        "iterator_types": ir.ArrayAttr.get([ir.Attribute.parse(PARALLEL)] * rank),
        "operandSegmentSizes": ir.DenseI32ArrayAttr.get([1, 1]),
    }
    op = ir.Operation.create("linalg.generic", results=[], operands=[src, dst],
                             attributes=attrs, regions=1)
    elt = ir.MemRefType(src.type).element_type
    block = op.regions[0].blocks.append(elt, elt, arg_locs=[ir.Location.current] * 2)
    with ir.InsertionPoint(block):
        ir.Operation.create("linalg.yield", results=[], operands=[block.arguments[0]])
    return op


def _contiguous(t: ir.Type) -> bool:
    """A static memref whose strides are exactly the row-major ones of its
    shape (any offset): what upstream copies with ``memcpy``."""
    if not isinstance(t, ir.MemRefType) or not t.has_static_shape:
        return False
    t = ir.MemRefType(t)
    strides, _ = t.get_strides_and_offset()
    expect, n = [], 1
    for d in reversed(t.shape):
        expect.append(n)
        n *= d
    return list(strides) == expect[::-1]
