"""forward-loop-annotations: make a branch's ``llvm.loop_annotation`` the one LLVM sees.

Expects: the LLVM dialect (after ``convert-cf-to-llvm``). Guarantees: every
``llvm.br``/``llvm.cond_br`` with a discardable ``llvm.loop_annotation``
attribute has it as its inherent ``loop_annotation`` instead (which
translation turns into ``!llvm.loop`` metadata); nothing else changes.

Upstream (LLVM 22.1): ``convert-scf-to-cf`` moves an ``scf.for``'s
``llvm.loop_annotation`` onto the ``cf.br`` of its back edge, but
``convert-cf-to-llvm`` copies it to the ``llvm.br`` as a discardable
attribute, which translation ignores: the annotation is lost.
tests/test_workarounds.py checks that upstream still does so.
"""

from mlir import ir

from ..support.registry import register

LLVM_VERSION = "22.1"   # the upstream release this works around (see the docstring)
_BRANCHES = ("llvm.br", "llvm.cond_br")


@register("forward-loop-annotations")
def forward_loop_annotations(module_op: ir.Operation) -> None:
    def visit(o):
        o = o.operation
        if o.name in _BRANCHES and "llvm.loop_annotation" in o.attributes:
            attr = o.attributes["llvm.loop_annotation"]
            del o.attributes["llvm.loop_annotation"]
            o.attributes["loop_annotation"] = attr
        return ir.WalkResult.ADVANCE
    module_op.walk(visit)
