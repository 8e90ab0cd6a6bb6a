"""``fast_math=True``: every fast-math choice of the GPU path, made on the IR.

* :func:`mark_arith_and_math` — ``fastmath<fast>`` on every float
  ``arith``/``math`` op in the kernels (before the NVVM lowering): approximate
  division, and ``convert-gpu-to-nvvm`` picks libdevice's ``__nv_fast_*``
  functions for ops marked ``afn``.
* :func:`adjust_llvm_dialect` — what lives at the LLVM level, done on the
  LLVM/NVVM dialect of each ``gpu.module`` (after the NVVM lowering, before
  translation): libdevice's flush-to-zero paths, through the
  ``nvvm-reflect-ftz`` module flag that NVVMReflect reads when it folds
  ``__nvvm_reflect("__CUDA_FTZ")`` (plain arithmetic keeps IEEE
  denormals); and ``tanhf`` as ``llvm.tanh`` with ``afn``, which NVPTX
  emits as the hardware ``tanh.approx.f32`` (sm_75 and newer) — libdevice
  has no fast tanh.

Results then differ from numpy by up to ~1e-3 relative.
"""

from mlir import ir
from mlir.dialects import llvm

from ...dialect.ir_utils import create, find_symbol
from .target import CudaTarget

# Float ops that carry an ``arith.fastmath`` attribute.
_FASTMATH_ARITH = {"arith.addf", "arith.subf", "arith.mulf", "arith.divf",
                   "arith.remf", "arith.negf", "arith.maximumf",
                   "arith.minimumf", "arith.maxnumf", "arith.minnumf",
                   "arith.cmpf"}
_FTZ_FLAG = '#llvm.mlir.module_flag<override, "nvvm-reflect-ftz", 1 : i32>'
_LIBDEVICE_TANHF = "__nv_tanhf"


def _gpu_modules(module: ir.Module):
    return [op.operation for op in module.body.operations
            if op.operation.name == "gpu.module"]


def _walk(op: ir.Operation):
    for region in op.regions:
        for b in region.blocks:
            for inner in b.operations:
                yield inner.operation
                yield from _walk(inner.operation)


def mark_arith_and_math(module: ir.Module) -> None:
    """Put ``fastmath<fast>`` on every float arith/math op inside kernels."""
    fast = ir.Attribute.parse("#arith.fastmath<fast>")
    for gm in _gpu_modules(module):
        for op in _walk(gm):
            n = op.name
            is_float_math = (n.startswith("math.") and len(op.results) == 1
                             and isinstance(op.results[0].type, ir.FloatType))
            if n in _FASTMATH_ARITH or is_float_math:
                op.attributes["fastmath"] = fast


def adjust_llvm_dialect(module: ir.Module, target: CudaTarget) -> None:
    """The LLVM-level choices (see the module docstring), in place."""
    afn = ir.Attribute.parse("#llvm.fastmath<afn>")
    for gm in _gpu_modules(module):
        with ir.InsertionPoint(gm.regions[0].blocks[0]), gm.location:
            llvm.ModuleFlagsOp(ir.ArrayAttr.get([ir.Attribute.parse(_FTZ_FLAG)]))
        if target.compute_capability < 75:
            continue
        for op in list(_walk(gm)):
            if (op.name == "llvm.call" and "callee" in op.attributes
                    and ir.FlatSymbolRefAttr(op.attributes["callee"]).value == _LIBDEVICE_TANHF):
                with ir.InsertionPoint(op), op.location:
                    fast = create("llvm.intr.tanh", [op.results[0].type], list(op.operands),
                                  {"fastmathFlags": afn})
                op.results[0].replace_all_uses_with(fast.results[0])
                op.erase()
        decl = find_symbol(gm, _LIBDEVICE_TANHF, "llvm.func")
        if decl is not None:
            decl.erase()
