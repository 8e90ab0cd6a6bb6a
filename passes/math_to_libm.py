"""math-to-libm: float64 transcendental math ops become C library calls.

Expects: scalar ``math`` ops (after ``convert-linalg-to-loops``).
Guarantees: ``math.{exp,expm1,log,log1p,tanh,sin,cos,powf,atan,atan2,erf}`` on
``f64`` become ``func.call @exp`` etc., with private declarations added once
per module. ``f32`` ops are left to ``expand-math`` (vectorisable
approximations) and LLVM.

Why not upstream ``convert-math-to-libm``: it also claims ops it cannot
lower (``math.copysign`` from expand-math fails to legalize there), and
LLVM's own lowering of ``log1p``/``expm1`` as ``log(1 + x)``/``exp(x) - 1``
loses precision near 0; libm is accurate.
"""

from mlir import ir

from .support.ir_utils import create, func_name, funcs_of
from .support.registry import register

LIBM = {"math.exp": "exp", "math.expm1": "expm1", "math.log": "log", "math.log1p": "log1p",
        "math.tanh": "tanh", "math.sin": "sin", "math.cos": "cos", "math.powf": "pow",
        "math.atan": "atan", "math.atan2": "atan2", "math.erf": "erf"}


@register("math-to-libm")
def math_to_libm(module_op: ir.Operation) -> None:
    ops = []
    module_op.walk(lambda o: (ops.append(o.operation) if o.operation.name in LIBM
                              and isinstance(o.operation.results[0].type, ir.F64Type)
                              else None, ir.WalkResult.ADVANCE)[1])
    if not ops:
        return
    declared = {func_name(f) for f in funcs_of(module_op)}
    body = module_op.regions[0].blocks[0]
    f64 = ir.F64Type.get()
    for op in ops:
        sym = LIBM[op.name]
        if sym not in declared:
            with ir.InsertionPoint.at_block_begin(body), ir.Location.unknown():
                ftype = ir.FunctionType.get([f64] * len(op.operands), [f64])
                create("func.func", [], [], {
                    "sym_name": ir.StringAttr.get(sym),
                    "function_type": ir.TypeAttr.get(ftype),
                    "sym_visibility": ir.StringAttr.get("private")}, regions=1)
            declared.add(sym)
        with ir.InsertionPoint(op), op.location:
            call = create("func.call", [f64], list(op.operands),
                          {"callee": ir.FlatSymbolRefAttr.get(sym)})
        op.results[0].replace_all_uses_with(call.results[0])
        op.erase()
