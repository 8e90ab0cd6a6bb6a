"""The one table of scalar derivative rules: partials per op.

Each entry maps an op name to ``partials(op, args, result) -> [p_0, p_1, ...]``
built at the current insertion point: ``p_k`` is ∂result/∂args[k] as a scalar
value, the symbol ``ONE`` / ``NEG_ONE``, or ``None`` (not differentiable in
that operand, e.g. a select's condition). Forward mode uses them as
``ẏ = Σ p_k ẋ_k``; reverse mode (the pointwise pullback) as ``x̄_k += p_k ȳ``.
There is no second table for reverse mode. An op with no entry is a hard
error (never a silent zero).
"""

from typing import Callable, Dict, List, Optional

from mlir import ir

from ...dialect.ir_utils import OEQ, OGT, OLT, create
from ...dialect.ir_utils import cmpf as _cmp
from ...dialect.ir_utils import float_const as const
from ...dialect.ir_utils import select as _select

ONE = "one"
NEG_ONE = "neg_one"

# Ops whose result carries no derivative at all (bool results, constants).
# Integer results (float-to-integer casts, bit casts, integer ops) carry none
# either: integers are never differentiated.
NON_DIFFERENTIABLE = {"arith.cmpf", "arith.constant", "arith.cmpi", "arith.fptosi",
                      "arith.fptoui", "arith.bitcast"}
# Casts: the tangent goes through the same cast, the cotangent back through
# the inverse one.
CASTS = {"arith.extf": "arith.truncf", "arith.truncf": "arith.extf"}


def _op(name, *xs, attrs=None):
    return create(name, [xs[0].type], list(xs), attrs).result


_NAN = float("nan")


def _div(op, a, r):
    x, y = a
    inv = _op("arith.divf", const(y.type, 1.0), y)
    return [inv, _op("arith.negf", _op("arith.mulf", r, inv))]


def _choice(picks_x: str):
    """maximum/minimum: the operand chosen gets the whole derivative; a tie
    splits it evenly (as JAX and PyTorch do); a NaN operand gives NaN
    partials (NaN in, NaN out). ``picks_x``: the predicate under which x is
    the result (OGT for maximum, OLT for minimum)."""
    picks_y = OLT if picks_x == OGT else OGT

    def rule(op, a, r):
        x, y = a
        t = x.type
        px = _select(_cmp(OEQ, x, y), const(t, 0.5),
                     _select(_cmp(picks_x, x, y), const(t, 1.0),
                             _select(_cmp(picks_y, x, y), const(t, 0.0), const(t, _NAN))))
        return [px, _op("arith.subf", const(t, 1.0), px)]
    return rule


def _abs(op, a, r):
    """sign(x): abs'(0) = 0 (as JAX and PyTorch), NaN at NaN."""
    x = a[0]
    t = x.type
    zero = const(t, 0.0)
    return [_select(_cmp(OLT, x, zero), const(t, -1.0),
                    _select(_cmp(OGT, x, zero), const(t, 1.0),
                            _select(_cmp(OEQ, x, zero), zero, const(t, _NAN))))]


def _pow(op, a, r):
    """∂x = y·x^(y-1), ∂y = log(x)·x^y, with JAX's conventions where these
    forms give 0·inf = NaN but the limit is 0: ∂x = 0 where y = 0 (x^0 is
    constant), ∂y = 0 where x = 0 (log taken of 1 instead). A negative base
    still gives NaN for ∂y: x^y is not real-differentiable in y there."""
    x, y = a
    zero, one = const(x.type, 0.0), const(x.type, 1.0)
    ym1 = _op("arith.subf", y, one)
    px = _op("arith.mulf", y, create("math.powf", [x.type], [x, ym1]).result)
    px = _select(_cmp(OEQ, y, zero), zero, px)
    safe_x = _select(_cmp(OEQ, x, zero), one, x)
    py = _op("arith.mulf", create("math.log", [x.type], [safe_x]).result, r)
    return [px, py]


def _select_rule(op, a, r):
    c, x, y = a
    one, zero = const(x.type, 1.0), const(x.type, 0.0)
    return [None, _select(c, one, zero), _select(c, zero, one)]


def _call(name, x):
    return create(name, [x.type], [x]).result


def _inv(v):
    return _op("arith.divf", const(v.type, 1.0), v)


def _one_minus_sq(x):
    """``1 - x²`` as ``(1 - x)(1 + x)``: no cancellation as ``|x| → 1``."""
    one = const(x.type, 1.0)
    return _op("arith.mulf", _op("arith.subf", one, x), _op("arith.addf", one, x))


def _flat(op, a, r):
    """Piecewise-constant ops (floor, ceil, rounding): 0 everywhere — at the
    jumps too, as JAX and PyTorch — and NaN at a NaN input (NaN in, NaN out)."""
    x = a[0]
    return [_select(_cmp(OEQ, x, x), const(x.type, 0.0), const(x.type, _NAN))]


def _atan2(op, a, r):
    """atan2(y, x): ∂y = x / (x² + y²), ∂x = -y / (x² + y²); NaN at (0, 0)."""
    y, x = a
    d = _op("arith.addf", _op("arith.mulf", x, x), _op("arith.mulf", y, y))
    return [_op("arith.divf", x, d), _op("arith.negf", _op("arith.divf", y, d))]


def _remf(op, a, r):
    """fmod(x, y) = x - trunc(x / y)·y: ∂x = 1, ∂y = -trunc(x / y), the
    integer quotient recovered exactly as ``roundeven((x - r) / y)``
    (piecewise: the jumps of fmod get no derivative)."""
    x, y = a
    q = _call("math.roundeven", _op("arith.divf", _op("arith.subf", x, r), y))
    return [ONE, _op("arith.negf", q)]


_LN2, _LN10 = 0.6931471805599453, 2.302585092994046
_TWO_OVER_SQRT_PI = 1.1283791670955126

RULES: Dict[str, Callable[[ir.Operation, List[ir.Value], ir.Value], List]] = {
    "arith.addf": lambda op, a, r: [ONE, ONE],
    "arith.subf": lambda op, a, r: [ONE, NEG_ONE],
    "arith.negf": lambda op, a, r: [NEG_ONE],
    "arith.mulf": lambda op, a, r: [a[1], a[0]],
    "arith.divf": _div,
    "arith.maximumf": _choice(OGT),
    "arith.minimumf": _choice(OLT),
    "arith.select": _select_rule,
    "math.exp": lambda op, a, r: [r],
    "math.expm1": lambda op, a, r: [_op("arith.addf", r, const(r.type, 1.0))],
    "math.log": lambda op, a, r: [_op("arith.divf", const(r.type, 1.0), a[0])],
    "math.log1p": lambda op, a, r: [_op("arith.divf", const(r.type, 1.0),
                                        _op("arith.addf", a[0], const(r.type, 1.0)))],
    "math.tanh": lambda op, a, r: [_op("arith.subf", const(r.type, 1.0), _op("arith.mulf", r, r))],
    "math.sin": lambda op, a, r: [create("math.cos", [r.type], [a[0]]).result],
    "math.cos": lambda op, a, r: [_op("arith.negf", create("math.sin", [r.type], [a[0]]).result)],
    "math.sqrt": lambda op, a, r: [_op("arith.divf", const(r.type, 0.5), r)],
    "math.rsqrt": lambda op, a, r: [_op("arith.mulf", const(r.type, -0.5), _op("arith.divf", r, a[0]))],
    "math.absf": _abs,
    "math.powf": _pow,
    # numpy's other float ufuncs (frontend/mathops.py)
    "math.tan": lambda op, a, r: [_op("arith.addf", const(r.type, 1.0), _op("arith.mulf", r, r))],
    "math.sinh": lambda op, a, r: [_call("math.cosh", a[0])],
    "math.cosh": lambda op, a, r: [_call("math.sinh", a[0])],
    "math.asin": lambda op, a, r: [_inv(_call("math.sqrt", _one_minus_sq(a[0])))],
    "math.acos": lambda op, a, r: [_op("arith.negf", _inv(_call("math.sqrt", _one_minus_sq(a[0]))))],
    "math.atan": lambda op, a, r: [_inv(_op("arith.addf", const(r.type, 1.0),
                                            _op("arith.mulf", a[0], a[0])))],
    "math.atan2": _atan2,
    "math.asinh": lambda op, a, r: [_inv(_call("math.sqrt", _op("arith.addf", const(r.type, 1.0),
                                                                 _op("arith.mulf", a[0], a[0]))))],
    "math.acosh": lambda op, a, r: [_inv(_op(
        "arith.mulf", _call("math.sqrt", _op("arith.subf", a[0], const(r.type, 1.0))),
        _call("math.sqrt", _op("arith.addf", a[0], const(r.type, 1.0)))))],
    "math.atanh": lambda op, a, r: [_inv(_one_minus_sq(a[0]))],
    "math.exp2": lambda op, a, r: [_op("arith.mulf", r, const(r.type, _LN2))],
    "math.log2": lambda op, a, r: [_inv(_op("arith.mulf", a[0], const(r.type, _LN2)))],
    "math.log10": lambda op, a, r: [_inv(_op("arith.mulf", a[0], const(r.type, _LN10)))],
    "math.erf": lambda op, a, r: [_op("arith.mulf", const(r.type, _TWO_OVER_SQRT_PI), _call(
        "math.exp", _op("arith.negf", _op("arith.mulf", a[0], a[0]))))],
    "math.floor": _flat,
    "math.ceil": _flat,
    "math.trunc": _flat,
    "math.roundeven": _flat,
    "arith.remf": _remf,
}

# The partials of RULES in words, one entry per rule: docs/ops.md is
# generated from this table (``python -m ferrule.optable``), and a test checks
# that every rule has its line here.
PARTIALS = {
    "arith.addf": "∂x = 1, ∂y = 1",
    "arith.subf": "∂x = 1, ∂y = -1",
    "arith.negf": "-1",
    "arith.mulf": "∂x = y, ∂y = x",
    "arith.divf": "∂x = 1/y, ∂y = -r/y",
    "arith.maximumf": "1 to the larger operand, 0 to the other; ½ each at a tie; NaN at a NaN",
    "arith.minimumf": "1 to the smaller operand, 0 to the other; ½ each at a tie; NaN at a NaN",
    "arith.select": "1 to the chosen operand, 0 to the other; none to the condition",
    "math.exp": "r",
    "math.expm1": "r + 1",
    "math.log": "1/x",
    "math.log1p": "1/(1 + x)",
    "math.tanh": "1 - r²",
    "math.sin": "cos x",
    "math.cos": "-sin x",
    "math.sqrt": "0.5/r",
    "math.rsqrt": "-0.5·r/x",
    "math.absf": "sign x; 0 at 0; NaN at NaN",
    "math.powf": "∂x = y·x^(y-1) (0 where y = 0), ∂y = log(x)·r (0 where x = 0)",
    "math.tan": "1 + r²",
    "math.sinh": "cosh x",
    "math.cosh": "sinh x",
    "math.asin": "1/√((1-x)(1+x))",
    "math.acos": "-1/√((1-x)(1+x))",
    "math.atan": "1/(1 + x²)",
    "math.atan2": "∂y = x/(x² + y²), ∂x = -y/(x² + y²); NaN at (0, 0)",
    "math.asinh": "1/√(x² + 1)",
    "math.acosh": "1/(√(x-1)·√(x+1))",
    "math.atanh": "1/((1-x)(1+x))",
    "math.exp2": "r·ln 2",
    "math.log2": "1/(x·ln 2)",
    "math.log10": "1/(x·ln 10)",
    "math.erf": "(2/√π)·exp(-x²)",
    "math.floor": "0 (at the jumps too); NaN at NaN",
    "math.ceil": "0 (at the jumps too); NaN at NaN",
    "math.trunc": "0 (at the jumps too); NaN at NaN",
    "math.roundeven": "0 (at the jumps too); NaN at NaN",
    "arith.remf": "∂x = 1, ∂y = -trunc(x/y) (fmod; the jumps get none)",
}


def scale(p, v: ir.Value) -> ir.Value:
    """``p * v`` where ``p`` may be ONE / NEG_ONE."""
    if p == ONE:
        return v
    if p == NEG_ONE:
        return _op("arith.negf", v)
    return _op("arith.mulf", p, v)


def accumulate(acc: Optional[ir.Value], v: ir.Value) -> ir.Value:
    return v if acc is None else _op("arith.addf", acc, v)
