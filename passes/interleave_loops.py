"""interleave-loops: ask LLVM to interleave the loops bound by long math chains.

Expects: buffer-level IR after ``convert-linalg-to-loops`` (and before
``expand-math``, so that the math ops are still visible as such).
Guarantees: every innermost ``scf.for`` (no loop nested in it) whose body,
at any depth, holds a long-latency op — a ``math`` op other than
``absf``/``copysign``/``fma``, or ``arith.divf`` — and no vector-typed value,
whose trip count is unknown or at least :data:`MIN_TRIP`, and which carries
no ``llvm.loop_annotation`` yet, gets
``llvm.loop_annotation = #llvm.loop_annotation<interleave = <count = N>>``.
``convert-scf-to-cf`` moves it onto the loop's back edge and
``forward-loop-annotations`` (after ``convert-cf-to-llvm``) makes it the
branch's ``!llvm.loop`` metadata. Semantics are unchanged: the annotation
only tells LLVM's loop vectoriser how many vector iterations to run side by
side.

Why: a fused pointwise loop is one long dependency chain per element
(``sin(exp(tanh(x)...))``: each expanded function a few dozen dependent
instructions). LLVM's cost model interleaves only small loops, so such a
loop ran one vector iteration at a time, bound by the chain's latency:
``exp(tanh(x))`` took 3.0 ms on 1M float32 where ``tanh(x)`` and
``exp(x)`` alone take 1.44 and 0.83. Two interleaved iterations give the
core two independent chains (Zen 2, AVX2, one thread, fresh outputs:
``exp(tanh(x))`` 3.0 -> 2.5 ms; the suite's LSTM/GRU cells and 10-op chain
forward + backward 12-20% faster at 64x256 to 1024x2048). Four were faster
still on some loops and slower on others (spills: AVX2 has 16 vector
registers), so the default is 2. Loops of the matmul micro-kernels (vector
code already) and loops without transcendental math are left to LLVM.
"""

from mlir import ir

from ..dialect.ir_utils import defining_op
from .support.registry import register

MIN_TRIP = 64     # shorter loops would run as the scalar remainder
_CHEAP_MATH = ("math.absf", "math.copysign", "math.fma")
ANNOTATION = "llvm.loop_annotation"


@register("interleave-loops")
def interleave_loops(module_op: ir.Operation, count: str = "2") -> None:
    n = int(count)
    if n < 1:
        raise ValueError(f"interleave-loops: count must be >= 1, got {n}")
    loops = []
    module_op.walk(lambda o: (loops.append(o.operation) if o.operation.name == "scf.for"
                              else None, ir.WalkResult.ADVANCE)[1])
    attr = ir.Attribute.parse(f"#llvm.loop_annotation<interleave = <count = {n}>>")
    for loop in loops:
        if ANNOTATION not in loop.attributes and _worth_it(loop):
            loop.attributes[ANNOTATION] = attr


def _worth_it(loop: ir.Operation) -> bool:
    trip = _trip_count(loop)
    if trip is not None and trip < MIN_TRIP:
        return False
    found = {"latency": False, "veto": False}

    def visit(o):
        o = o.operation
        if o == loop:
            return ir.WalkResult.ADVANCE
        if o.name == "scf.for" or any(isinstance(v.type, ir.VectorType)
                                      for v in list(o.results) + list(o.operands)):
            found["veto"] = True
            return ir.WalkResult.INTERRUPT
        if ((o.name.startswith("math.") and o.name not in _CHEAP_MATH)
                or o.name == "arith.divf"):
            found["latency"] = True
        return ir.WalkResult.ADVANCE
    loop.walk(visit)
    return found["latency"] and not found["veto"]


def _trip_count(loop: ir.Operation):
    """The static trip count of ``scf.for``, or None if a bound is not a constant."""
    vals = []
    for v in list(loop.operands)[:3]:
        o = defining_op(v)
        if o is None or o.name != "arith.constant":
            return None
        vals.append(ir.IntegerAttr(o.attributes["value"]).value)
    lo, hi, step = vals
    return max(0, -(-(hi - lo) // step)) if step > 0 else None
