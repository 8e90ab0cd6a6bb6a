"""Integer-only ops of ``ferrule.numpy``: ``//``, ``%``, bitwise ops and
shifts, and ``bitcast``.

Integer values are ``int32``, ``int64`` or ``uint32`` (and ``bool``); how
they are represented in the IR, and how they promote, is in
:mod:`ferrule.dtypes`. The ops shared with floats (``+ - *``, comparisons,
``where``, casts, reductions, ``argmax``) take integers too, in their own
modules. Integers are never differentiated: the AD passes keep every
integer value inactive, and the cotangent of an integer input is a symbolic
zero (``ferrule.float0``).

Semantics are numpy's where it matters — wrapping ``+ - *``, floor ``//``
and ``%`` (``x // 0`` and ``x % 0`` give 0, as numpy does after its
warning), shifts by the bit width or more give 0 (or -1 for a negative
``>>``), casts truncate toward zero — with these deliberate differences:

* An integer array mixed with a float array or a Python float gives the
  float's dtype (float32 by default), as JAX does; numpy gives float64 for
  int32/int64 with float32. ``int / int`` is float32.
* ``sum`` of int32, uint32 or bool gives int64 (numpy: int64, uint64 for
  uint32); ``mean`` of integers is float32.
* ``//`` and ``%`` of float arrays are numpy's float ``floor_divide`` and
  ``remainder`` (:mod:`ferrule.mathops`; ``%`` is differentiable); the
  bitwise ops and shifts need integers (UnsupportedOperationError).
"""

import numpy as _onp

from .core import (asarray_traced, broadcast_shapes, constant, elementwise, emit, operand,
                   shape_of, tensor_type, traced, wrap)
from .dtypes import BOOL, I64, U32, promoted_dtype
from .elementwise import (add, greater_equal, int_compare, less, multiply, not_equal, subtract,
                          where)
from .errors import DTypeError, UnsupportedOperationError
from .mathops import float_floor_divide, float_remainder
from .narrow import is_float
from .tracing import Tracer, where_str


def _traced_int_operands(name, x, y):
    if not traced(x, y):
        return None
    dtype = promoted_dtype(x, y)
    if dtype.kind not in "iu":   # (// and % of floats are mathops', before this)
        kinds = sorted({str(v.dtype) for v in (x, y) if isinstance(v, (Tracer, _onp.ndarray))})
        raise UnsupportedOperationError(f"{where_str()}: {name} is only supported on integer "
                                        f"arrays here, got {', '.join(kinds) or 'floats'}")
    shape = broadcast_shapes(shape_of(x), shape_of(y))
    return dtype, operand(x, shape, dtype), operand(y, shape, dtype)


def _float_operands(x, y) -> bool:
    """Traced operands that promote to a float (``//`` and ``%`` of floats)."""
    return traced(x, y) and is_float(promoted_dtype(x, y))


def _op(name, *xs, dtype, result_dtype=None, attrs=None):
    return elementwise(name, *xs, dtype=dtype, result_dtype=result_dtype, attrs=attrs)


def _eq(a, v):
    return int_compare("equal", a, v)


def floor_divide(x, y):
    """numpy ``//``. Integers: floor division; ``x // 0`` is 0 (numpy warns
    and gives 0), ``INT_MIN // -1`` wraps to ``INT_MIN``. Floats:
    :func:`~ferrule.mathops.float_floor_divide`.

    Derivative: 0 (floats; NaN at a NaN); none for integers."""
    if _float_operands(x, y):
        return float_floor_divide(x, y)
    ops = _traced_int_operands("floor_divide (//)", x, y)
    if ops is None:
        return _onp.floor_divide(x, y)
    dtype, a, b = ops
    zero = _eq(b, 0)
    if dtype == U32:
        q = _op("arith.divui", a, where(zero, 1, b), dtype=dtype)
        return where(zero, _onp.uint32(0), q)
    neg1 = _eq(b, -1)
    safe = where(bitwise_or(zero, neg1), 1, b)
    q = _op("arith.divsi", a, safe, dtype=dtype)       # truncates toward zero
    r = subtract(a, multiply(q, safe))
    down = bitwise_and(not_equal(r, 0), bitwise_xor(less(r, 0), less(safe, 0)))
    q = where(down, subtract(q, 1), q)
    q = where(neg1, subtract(0, a), q)
    return where(zero, constant(0, (), dtype), q)


def remainder(x, y):
    """numpy ``%``: the sign of the divisor. Integers: ``x % 0`` is 0;
    floats: :func:`~ferrule.mathops.float_remainder` (``x % 0`` is NaN).

    Derivative (floats): ∂x = 1, ∂y = -floor(x/y); none for integers."""
    if _float_operands(x, y):
        return float_remainder(x, y)
    ops = _traced_int_operands("remainder (%)", x, y)
    if ops is None:
        return _onp.remainder(x, y)
    dtype, a, b = ops
    zero = _eq(b, 0)
    if dtype == U32:
        r = _op("arith.remui", a, where(zero, 1, b), dtype=dtype)
        return where(zero, _onp.uint32(0), r)
    neg1 = _eq(b, -1)
    safe = where(bitwise_or(zero, neg1), 1, b)
    r = _op("arith.remsi", a, safe, dtype=dtype)
    fix = bitwise_and(not_equal(r, 0), bitwise_xor(less(r, 0), less(safe, 0)))
    r = where(fix, add(r, safe), r)
    return where(bitwise_or(zero, neg1), constant(0, (), dtype), r)


mod = remainder


def _all_bool(*xs) -> bool:
    for x in xs:
        if isinstance(x, (Tracer, _onp.ndarray, _onp.generic)):
            if _onp.dtype(x.dtype) != BOOL:
                return False
        elif not isinstance(x, (bool, _onp.bool_)):
            return False
    return True


def _bitwise(name, npfn):
    def f(x, y):
        if not traced(x, y):
            return npfn(x, y)
        if _all_bool(x, y):
            return _op(name, x, y, dtype=BOOL)
        ops = _traced_int_operands(npfn.__name__, x, y)
        return _op(name, ops[1], ops[2], dtype=ops[0])
    f.__name__ = npfn.__name__
    f.__doc__ = f"numpy ``{npfn.__name__}`` on integer or bool arrays (``{name}``)."
    return f


bitwise_and = _bitwise("arith.andi", _onp.bitwise_and)
bitwise_or = _bitwise("arith.ori", _onp.bitwise_or)
bitwise_xor = _bitwise("arith.xori", _onp.bitwise_xor)


def invert(x):
    """numpy ``~``: bitwise not of integers, logical not of bools."""
    if not traced(x):
        return _onp.invert(x)
    x = asarray_traced(x)
    if x.dtype == BOOL:
        return _op("arith.xori", x, True, dtype=BOOL)
    if x.dtype.kind not in "iu":
        raise DTypeError(f"{where_str()}: ~ (invert) of a {x.dtype} array; it needs integers "
                         f"or bools")
    return _op("arith.xori", x, constant(-1 if x.dtype != U32 else 0xFFFFFFFF, (), x.dtype),
               dtype=x.dtype)


bitwise_not = invert


def _shift(left: bool):
    npfn = _onp.left_shift if left else _onp.right_shift

    def f(x, y):
        if not traced(x, y):
            return npfn(x, y)
        dtype, a, b = _traced_int_operands(npfn.__name__, x, y)
        width = 64 if dtype == I64 else 32
        name = "arith.shli" if left else ("arith.shrui" if dtype == U32 else "arith.shrsi")
        r = _op(name, a, b, dtype=dtype)
        if isinstance(y, (int, _onp.integer)) and 0 <= int(y) < width:
            return r
        # numpy: shifting by the width or more (or a negative count) gives 0,
        # or -1 for a right shift of a negative number; LLVM gives poison.
        out = bitwise_or(less(b, 0), greater_equal(b, width))
        zero = constant(0, (), dtype)
        fill = (where(less(a, 0), constant(-1, (), dtype), zero)
                if name == "arith.shrsi" else zero)
        return where(out, fill, r)
    f.__name__ = npfn.__name__
    f.__doc__ = (f"numpy ``{npfn.__name__}`` on integers"
                 + ("" if left else " (logical for uint32, arithmetic for signed)") + ".")
    return f


left_shift = _shift(True)
right_shift = _shift(False)


def bitcast(x, dtype) -> Tracer:
    """Reinterpret the bits of ``x`` as ``dtype`` of the same width
    (numpy's ``x.view(dtype)``; ``arith.bitcast``). Not differentiable."""
    dtype = _onp.dtype(dtype)
    if not traced(x):
        return _onp.asarray(x).view(dtype)
    x = asarray_traced(x)
    if x.dtype.itemsize != dtype.itemsize:
        raise DTypeError(f"{where_str()}: bitcast from {x.dtype} to {dtype} changes the width")
    return wrap(emit("arith.bitcast", [tensor_type(x.shape, dtype)],
                               [x.value]).result, x.trace, dtype)
