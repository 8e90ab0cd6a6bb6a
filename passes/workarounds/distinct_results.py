"""distinct-results: give every function result its own tensor.

Expects: tensor-level IR, right before bufferization.
Guarantees: no ``func.return`` names one value twice, and none returns a
function argument directly; each such result becomes an explicit copy
(``bufferization.alloc_tensor() copy(%v)``).

Upstream (LLVM 22.1): ``buffer-results-to-out-params{hoist-static-allocs}``
crashes the process (segmentation fault) on ``return %1, %1`` — one buffer
for two out-parameters; tests/test_workarounds.py checks that it still
does. A returned argument is copied too: its out-parameter is a separate
buffer the caller allocated.
"""

from mlir import ir

from ...dialect.ir_utils import block_ops, create, func_body, funcs_of
from ..support.registry import register

LLVM_VERSION = "22.1"   # the upstream release this works around (see the docstring)


@register("distinct-results")
def distinct_results(module_op: ir.Operation) -> None:
    for fn in funcs_of(module_op):
        if not len(fn.regions[0].blocks):
            continue
        block = func_body(fn)
        ret = block_ops(block)[-1]
        seen = set()
        args = set(block.arguments)
        for k, v in enumerate(list(ret.operands)):
            if v in seen or v in args:
                with ir.InsertionPoint(ret), ret.location:
                    copy = create("bufferization.alloc_tensor", [v.type], [v], {
                        "operandSegmentSizes": ir.DenseI32ArrayAttr.get([0, 1, 0])}).result
                ret.operands[k] = copy
            seen.add(v)
