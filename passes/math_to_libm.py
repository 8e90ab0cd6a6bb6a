"""math-to-libm: float64 transcendental math ops (and the float32 ones
that ``expand-math`` has no kernel for) become C library calls.

Expects: scalar ``math`` ops (after ``convert-linalg-to-loops``).
Guarantees: ``math.{exp,expm1,log,log1p,tanh,sin,cos,powf,atan,atan2,erf,
tan,sinh,cosh,asin,acos,asinh,acosh,atanh}`` on ``f64`` become ``func.call
@exp`` etc., and ``math.{powf,tan,sinh,cosh,asin,acos,atan,atan2,asinh,
acosh,atanh}`` on ``f32`` become ``func.call @powf``, ``@tanf``..., with
private declarations added once per module. Other ``f32`` ops are left to
``expand-math`` (vectorisable approximations) and LLVM.

Why the float32 inverse-trigonometric and hyperbolic functions: upstream's
``math-expand-ops`` writes them with ``exp``/``log`` (``sinh x = (eˣ -
e⁻ˣ)/2``, ``atanh x = ½ log((1+x)/(1-x))``), which loses all relative
precision near 0 where numpy's (libm's) results are exact; the C library's
``sinhf`` etc. are accurate (a call per element: these loops do not
vectorise).

Why ``powf`` too: its only other lowering, ``exp(y * log(x))``, is wrong
where numpy's ``power`` is defined — a negative base with an integral
exponent (``(-2) ** 3``), ``0 ** 0``, ``1 ** nan`` — and loses accuracy as
``|y log x|`` grows; libm's ``powf`` handles all of them.

Why not upstream ``convert-math-to-libm``: it also claims ops it cannot
lower (``math.copysign`` from expand-math fails to legalize there), and
LLVM's own lowering of ``log1p``/``expm1`` as ``log(1 + x)``/``exp(x) - 1``
loses precision near 0; libm is accurate.
"""

from mlir import ir

from ..dialect.ir_utils import create, func_name, funcs_of
from .support.registry import register

LIBM = {"math.exp": "exp", "math.expm1": "expm1", "math.log": "log", "math.log1p": "log1p",
        "math.tanh": "tanh", "math.sin": "sin", "math.cos": "cos", "math.powf": "pow",
        "math.atan": "atan", "math.atan2": "atan2", "math.erf": "erf"}
_MORE = ("tan", "sinh", "cosh", "asin", "acos", "asinh", "acosh", "atanh")
LIBM.update({f"math.{n}": n for n in _MORE})
LIBM_F32 = {"math.powf": "powf", "math.atan": "atanf", "math.atan2": "atan2f",
            **{f"math.{n}": f"{n}f" for n in _MORE}}


def _symbol(op: ir.Operation):
    """The libm function for ``op``, or None if it stays."""
    t = op.results[0].type if len(op.results) == 1 else None
    if isinstance(t, ir.F64Type):
        return LIBM.get(op.name)
    if isinstance(t, ir.F32Type):
        return LIBM_F32.get(op.name)
    return None


@register("math-to-libm")
def math_to_libm(module_op: ir.Operation) -> None:
    ops = []
    module_op.walk(lambda o: (ops.append(o.operation) if _symbol(o.operation)
                              else None, ir.WalkResult.ADVANCE)[1])
    if not ops:
        return
    declared = {func_name(f) for f in funcs_of(module_op)}
    body = module_op.regions[0].blocks[0]
    for op in ops:
        sym = _symbol(op)
        ft = op.results[0].type
        if sym not in declared:
            with ir.InsertionPoint.at_block_begin(body), ir.Location.unknown():
                ftype = ir.FunctionType.get([ft] * len(op.operands), [ft])
                create("func.func", [], [], {
                    "sym_name": ir.StringAttr.get(sym),
                    "function_type": ir.TypeAttr.get(ftype),
                    "sym_visibility": ir.StringAttr.get("private")}, regions=1)
            declared.add(sym)
        with ir.InsertionPoint(op), op.location:
            call = create("func.call", [ft], list(op.operands),
                          {"callee": ir.FlatSymbolRefAttr.get(sym)})
        op.results[0].replace_all_uses_with(call.results[0])
        op.erase()
