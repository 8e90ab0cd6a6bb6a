"""numpy's other float ufuncs for traced arrays: trigonometric and
hyperbolic functions and their inverses, ``log2 log10 exp2``, rounding,
``fmod`` and float ``%``/``//``, and composites (``hypot``, ``logaddexp``,
``fmax``, ``sinc``, ...).

Part of ``ferrule.numpy`` (re-exported there). A function with an upstream
``math``/``arith`` op is that op (:func:`~ferrule.elementwise.unary_op`):
its derivative is the op's entry in the compiler's one table of scalar
partials (``passes/support/scalar_rules.py``). The others are written from
those ops in forms that keep numpy's accuracy and special values; their
derivatives follow from the composition, and each docstring's
``Derivative:`` line states the convention at kinks, ties and NaNs (the
op table docs/ops.md is generated from these lines and the partials table:
``python -m ferrule.optable``). Outside a trace each is plain numpy.
"""

import numpy as _onp

from .core import asarray_traced, elementwise, traced
from .dtypes import BOOL, promoted_dtype
from .elementwise import (abs, add, binary_op, divide, equal, exp, greater, less, log1p,
                          maximum, minimum, multiply, not_equal, sin, sqrt, subtract, unary_op,
                          where)
from .errors import DTypeError
from .narrow import is_float
from .tracing import where_str

tan = unary_op("math.tan", _onp.tan)
arcsin = unary_op("math.asin", _onp.arcsin)
arccos = unary_op("math.acos", _onp.arccos)
arctan = unary_op("math.atan", _onp.arctan)
sinh = unary_op("math.sinh", _onp.sinh)
cosh = unary_op("math.cosh", _onp.cosh)
arcsinh = unary_op("math.asinh", _onp.arcsinh)
arccosh = unary_op("math.acosh", _onp.arccosh)
arctanh = unary_op("math.atanh", _onp.arctanh)
exp2 = unary_op("math.exp2", _onp.exp2)
log2 = unary_op("math.log2", _onp.log2)
log10 = unary_op("math.log10", _onp.log10)
arctan2 = binary_op("math.atan2", _onp.arctan2)


def _erf_reference(x):
    import math
    return _onp.vectorize(math.erf, otypes=[_onp.result_type(x, _onp.float32)])(x)


_erf_reference.__name__ = "erf"
# The error function (``math.erf``; numpy has none, scipy.special.erf is
# this): ferrule.nn.gelu's. Not in ferrule.numpy, whose names are numpy's.
erf = unary_op("math.erf", _erf_reference)


def _float_only(f):
    """``f`` on float operands; integer operands are a DTypeError naming the op."""
    def g(x, y):
        if not traced(x, y):
            return getattr(_onp, f.__name__)(x, y)
        if not is_float(promoted_dtype(x, y)):
            raise DTypeError(f"{where_str()}: {f.__name__} of integer arrays is not supported; "
                             f"convert them to float first")
        return f(x, y)
    g.__name__, g.__doc__ = f.__name__, f.__doc__
    g.primitive = getattr(f, "primitive", None)
    return g


fmod = _float_only(binary_op("arith.remf", _onp.fmod))
fmod.__doc__ = ("numpy ``fmod``: the C remainder, with the sign of ``x`` (``arith.remf``); "
                "``fmod(x, 0)`` is NaN. Floats only.")


def _rounding(name, npfn):
    """A rounding op: the float op ``name``; integers are returned as they
    are (already integral; JAX's choice, numpy gives float64 for some)."""
    op = unary_op(name, npfn)

    def f(x):
        if traced(x) and asarray_traced(x).dtype.kind in "iu":
            return asarray_traced(x)
        return op(x)
    f.__name__ = npfn.__name__
    f.__doc__ = f"Elementwise {npfn.__name__} (``{name}``); integers pass through."
    f.primitive = name
    return f


floor = _rounding("math.floor", _onp.floor)
ceil = _rounding("math.ceil", _onp.ceil)
trunc = _rounding("math.trunc", _onp.trunc)
rint = _rounding("math.roundeven", _onp.rint)


def around(x, decimals=0):
    """numpy ``round``/``around``: to the nearest even at halves
    (``math.roundeven``); with ``decimals``, numpy's own scaling:
    ``rint(x·10ᵈ)/10ᵈ`` (``rint(x/10⁻ᵈ)·10⁻ᵈ`` for ``d < 0``), so the
    results match numpy's bit for bit.

    Derivative: 0 (at the jumps too), NaN at a NaN."""
    if not traced(x):
        return _onp.round(x, decimals)
    x = asarray_traced(x)
    decimals = int(decimals)
    if x.dtype.kind in "iu" and decimals >= 0:
        return x
    if decimals == 0:
        return rint(x)
    if decimals > 0:
        s = 10.0 ** decimals
        return divide(rint(multiply(x, s)), s)
    s = 10.0 ** -decimals
    return multiply(rint(divide(x, s)), s)


round = around


def sign(x):
    """numpy ``sign``: -1, 0 or 1; NaN at a NaN.

    Derivative: 0 everywhere (at 0 too), NaN at a NaN."""
    if not traced(x):
        return _onp.sign(x)
    x = asarray_traced(x)
    if x.dtype.kind in "iu":
        one, zero = _onp.asarray(1, x.dtype), _onp.asarray(0, x.dtype)
        neg = where(less(x, zero), _onp.asarray(-1, x.dtype), zero) if x.dtype.kind == "i" else zero
        return where(greater(x, zero), one, neg)
    # floor(x) * 0 is 0 at 0 and NaN at NaN, and carries floor's derivative:
    # 0, NaN at a NaN (the constants of the outer selects carry none).
    return where(greater(x, 0.0), 1.0, where(less(x, 0.0), -1.0, multiply(floor(x), 0.0)))


def reciprocal(x):
    """numpy ``reciprocal``: ``1/x`` (floats only: numpy's integer
    reciprocal truncates to 0 or ±1).

    Derivative: -1/x² (through the division)."""
    if not traced(x):
        return _onp.reciprocal(x)
    x = asarray_traced(x)
    if not is_float(x.dtype):
        raise DTypeError(f"{where_str()}: reciprocal of a {x.dtype} array is not supported "
                         f"(numpy's integer reciprocal truncates); convert it to float first")
    return divide(1.0, x)


def deg2rad(x):
    """numpy ``deg2rad``: ``x·(π/180)``. Derivative: π/180."""
    if not traced(x):
        return _onp.deg2rad(x)
    return multiply(x, _onp.pi / 180.0)


def rad2deg(x):
    """numpy ``rad2deg``: ``x·(180/π)``. Derivative: 180/π."""
    if not traced(x):
        return _onp.rad2deg(x)
    return multiply(x, 180.0 / _onp.pi)


radians, degrees = deg2rad, rad2deg


def _isnan(x):
    return not_equal(x, x)


def _logaddexp_tail(x, y, tail):
    """``max(x, y) + tail(|x - y|)``; ``x - y`` is taken as 0 where ``x ==
    y``, so two equal infinities give that infinity, not NaN."""
    d = where(equal(x, y), 0.0, subtract(x, y))
    return add(maximum(x, y), tail(abs(d)))


def logaddexp(x, y):
    """numpy ``logaddexp``: ``log(exp(x) + exp(y))`` as ``max(x, y) +
    log1p(exp(-|x - y|))`` (no overflow; ``logaddexp(-inf, -inf) = -inf``).

    Derivative: ∂x = exp(x - r) (a sigmoid of x - y); ½ each at a tie
    (``maximum``'s tie split, ``abs'(0) = 0``); NaN at a NaN."""
    if not traced(x, y):
        return _onp.logaddexp(x, y)
    return _logaddexp_tail(x, y, lambda d: log1p(exp(-d)))


def logaddexp2(x, y):
    """numpy ``logaddexp2``: ``log2(2ˣ + 2ʸ)`` as ``max(x, y) +
    log1p(2^-|x - y|)/ln 2``.

    Derivative: ∂x = 2^(x - r); ½ each at a tie; NaN at a NaN."""
    if not traced(x, y):
        return _onp.logaddexp2(x, y)
    return _logaddexp_tail(x, y, lambda d: multiply(log1p(exp2(-d)), 1.0 / float(_onp.log(2.0))))


def hypot(x, y):
    """numpy ``hypot``: ``√(x² + y²)`` without overflow or underflow, as
    ``m·√(1 + (n/m)²)`` with ``m = max(|x|, |y|)``, ``n = min(|x|, |y|)``;
    an infinite operand gives ``inf`` (NaN in the other one too, as C's).

    Derivative: ∂x = x/r, ∂y = y/r; 0 at (0, 0) (``abs'(0) = 0``); 0 where
    an operand is infinite."""
    if not traced(x, y):
        return _onp.hypot(x, y)
    ax, ay = abs(x), abs(y)
    m, n = maximum(ax, ay), minimum(ax, ay)
    t = divide(n, where(equal(m, 0.0), 1.0, m))
    r = multiply(m, sqrt(add(1.0, multiply(t, t))))
    inf = _onp.inf
    return where(equal(ax, inf), inf, where(equal(ay, inf), inf, r))


def _nan_ignoring(pick, npfn):
    def f(x, y):
        if not traced(x, y):
            return npfn(x, y)
        # A NaN operand is replaced by the other one (a tie, split ½ + ½ to
        # that one) rather than selected around: pick's NaN partials would
        # turn the branch not taken's zero cotangent into NaN.
        nx, ny = _isnan(x), _isnan(y)
        return pick(where(nx, y, x), where(ny, x, y))
    f.__name__ = npfn.__name__
    f.__doc__ = (f"numpy ``{npfn.__name__}``: ``{pick.__name__}``, but a NaN operand is "
                 f"ignored (NaN only where both are).\n\n    Derivative: as "
                 f"``{pick.__name__}`` (½ each at a tie); 1 to the other operand where one "
                 f"is NaN.")
    return f


fmax = _nan_ignoring(maximum, _onp.fmax)
fmin = _nan_ignoring(minimum, _onp.fmin)

# |pi x| below which sinc is its Taylor polynomial (to u⁶): there the
# polynomial is exact to the dtype, and its derivatives of every order are
# right at 0, where sin(u)/u's are 0/0.
_SINC_TAYLOR = {_onp.dtype(_onp.float32): 0.3, _onp.dtype(_onp.float64): 0.01}


def sinc(x):
    """numpy ``sinc``: ``sin(πx)/(πx)``, 1 at 0; near 0 (``|πx|`` below
    0.3 in float32, 0.01 in float64) the Taylor polynomial ``1 - u²/6 +
    u⁴/120 - u⁶/5040``.

    Derivative: ``(cos u - sinc x)/x`` with ``u = πx``; 0 at 0 (and
    ``-π²/3`` the second: the polynomial's)."""
    if not traced(x):
        return _onp.sinc(x)
    x = asarray_traced(x)
    if not is_float(x.dtype):
        x = x.astype(promoted_dtype(x, 1.0))
    u = multiply(x, _onp.pi)
    small = less(abs(u), _SINC_TAYLOR[x.dtype])
    safe = where(small, 1.0, u)           # no 0/0 in the branch not taken
    u2 = multiply(u, u)
    poly = add(1.0, multiply(u2, add(-1.0 / 6, multiply(u2, add(1.0 / 120,
                                                                   multiply(u2, -1.0 / 5040))))))
    return where(small, poly, divide(sin(safe), safe))


def float_remainder(x, y):
    """numpy ``%`` on floats: the sign of ``y``, ``fmod(x, y) + y`` where
    fmod's sign differs; ``x % 0`` is NaN.

    Derivative: ∂x = 1, ∂y = -floor(x/y) (the jumps get none)."""
    r = fmod(x, y)
    fix = _xor(less(r, 0.0), less(y, 0.0))
    return where(_and(not_equal(r, 0.0), fix), add(r, y), r)


def float_floor_divide(x, y):
    """numpy ``//`` on floats: ``(x - fmod(x, y))/y``, one less where fmod's
    sign differs from ``y``'s, rounded to the integer it is (numpy's
    ``divmod``); ``x // 0`` is ``x / 0``.

    Derivative: 0, NaN at a NaN."""
    r = fmod(x, y)
    q = divide(subtract(x, r), y)
    q = where(_and(not_equal(r, 0.0), _xor(less(r, 0.0), less(y, 0.0))), subtract(q, 1.0), q)
    return where(equal(y, 0.0), divide(x, y), rint(q))


def _and(a, b):
    return elementwise("arith.andi", a, b, dtype=BOOL)


def _xor(a, b):
    return elementwise("arith.xori", a, b, dtype=BOOL)
