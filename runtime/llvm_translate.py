"""MLIR (LLVM/NVVM dialects) -> LLVM IR text, refusing what would crash.

``translate_module_to_llvmir`` crashes the process (LLVM 22.1: segfault) on
an op that no conversion turned into the LLVM dialect — e.g. a ``vector.*``
op left by a pipeline that lacks ``convert-vector-to-llvm``. So every
translation in ferrule goes through :func:`translate_to_llvm_ir`, which
names the leftover op and where it came from instead.
"""

from mlir import ir
from mlir.dialects import llvm as mlir_llvm

# Ops that translate: the LLVM and NVVM dialects and the module containers.
_TRANSLATABLE_PREFIXES = ("llvm.", "nvvm.")
_CONTAINERS = frozenset({"builtin.module", "gpu.module"})


class UnconvertedOpError(RuntimeError):
    """A pipeline left an op that LLVM IR translation cannot handle."""


def _first_unconverted(op: ir.Operation):
    """The first op (in walk order) that does not translate, or None. One
    walk driven by MLIR (a Python call per op: ~3x faster than recursing
    through regions and blocks in Python)."""
    found = []

    def visit(o):
        name = o.name
        if name not in _CONTAINERS and not name.startswith(_TRANSLATABLE_PREFIXES):
            found.append(o.operation)
            return ir.WalkResult.INTERRUPT
        return ir.WalkResult.ADVANCE
    op.walk(visit, ir.WalkOrder.PRE_ORDER)
    return found[0] if found else None


def translate_to_llvm_ir(op: ir.Operation) -> str:
    """LLVM IR text of ``op`` (a module or ``gpu.module`` in the LLVM
    dialect); raises :class:`UnconvertedOpError` if any other op is left."""
    bad = _first_unconverted(op)
    if bad is not None:
        raise UnconvertedOpError(
            f"internal error: '{bad.name}' at {bad.location} was not lowered to the "
            f"LLVM dialect, so it cannot be translated to LLVM IR (a lowering pass "
            f"is missing from the pipeline)")
    return mlir_llvm.translate_module_to_llvmir(op)
