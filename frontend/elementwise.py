"""Elementwise ops and array creation for traced arrays.

Part of ``ferrule.numpy`` (re-exported there). Each op is one elementwise
``arith``/``math`` op on tensors (the passes fuse them into pointwise
regions), after numpy's broadcasting and dtype promotion
(:func:`ferrule.core.elementwise`). Outside a trace, each is plain numpy.
"""

import builtins

import numpy as _onp

from .core import (asarray_traced, astype, broadcast_shapes, broadcast_to, constant,
                   elementwise, emit, operand, promoted_dtype, shape_of, tensor_type, traced,
                   wrap)
from .dialect.ir_utils import cmpf_attrs
from .errors import DTypeError
from .tracing import Tracer, check_trace, current_trace, where_str

float32 = _onp.float32


def _unary(name, npfn):
    def f(x):
        if not traced(x):
            return npfn(x)
        x = asarray_traced(x)
        if x.dtype == _onp.bool_:
            raise DTypeError(f"{where_str()}: {npfn.__name__} of a bool array")
        return elementwise(name, x, dtype=x.dtype)
    f.__name__ = npfn.__name__
    f.__doc__ = f"Elementwise {npfn.__name__} (``{name}``)."
    return f


def _binary(name, npfn):
    def f(x, y):
        if not traced(x, y):
            return npfn(x, y)
        return elementwise(name, x, y)
    f.__name__ = npfn.__name__
    f.__doc__ = f"Elementwise {npfn.__name__} with broadcasting (``{name}``)."
    return f


# -- elementwise ----------------------------------------------------------------

add = _binary("arith.addf", _onp.add)
subtract = _binary("arith.subf", _onp.subtract)
multiply = _binary("arith.mulf", _onp.multiply)
divide = _binary("arith.divf", _onp.divide)
true_divide = divide
maximum = _binary("arith.maximumf", _onp.maximum)
minimum = _binary("arith.minimumf", _onp.minimum)
negative = _unary("arith.negf", _onp.negative)
exp = _unary("math.exp", _onp.exp)
log = _unary("math.log", _onp.log)
log1p = _unary("math.log1p", _onp.log1p)
expm1 = _unary("math.expm1", _onp.expm1)
tanh = _unary("math.tanh", _onp.tanh)
sin = _unary("math.sin", _onp.sin)
cos = _unary("math.cos", _onp.cos)
sqrt = _unary("math.sqrt", _onp.sqrt)
abs = _unary("math.absf", _onp.abs)
absolute = abs


def square(x):
    """``x * x``."""
    return multiply(x, x)


_MAX_INT_POWER = 64


def power(x, y):
    """``x ** y``. A constant exponent that is an integer (``|y| <= 64``)
    becomes multiplies by repeated squaring (and a reciprocal when ``y < 0``),
    and ``0.5`` becomes ``sqrt``: exact for negative bases, cheaper than
    ``math.powf``, which is used for every other exponent."""
    if not traced(x, y):
        return _onp.power(x, y)
    if isinstance(y, (int, float, _onp.integer, _onp.floating)):
        v = float(y)
        if v == 0.5 or (v.is_integer() and builtins.abs(v) <= _MAX_INT_POWER):
            b = astype(asarray_traced(x), promoted_dtype(x, y))
            if v == 0.5:
                return sqrt(b)
            r = _int_power(b, int(builtins.abs(v)))
            return divide(1.0, r) if v < 0 else r
    return elementwise("math.powf", x, y)


def _int_power(b: Tracer, n: int) -> Tracer:
    if n == 0:
        return ones_like(b)  # numpy: x ** 0 == 1 for every x, NaN included
    result, p = None, b
    while n:
        if n & 1:
            result = p if result is None else multiply(result, p)
        n >>= 1
        if n:
            p = multiply(p, p)
    return result


# arith.cmpf predicates: ordered (false on NaN) except not_equal, which is
# unordered (une: true on NaN), as in numpy.
_CMP = {"less": "olt", "less_equal": "ole", "greater": "ogt", "greater_equal": "oge",
        "equal": "oeq", "not_equal": "une"}


def _compare(pname):
    npfn = getattr(_onp, pname)

    def f(x, y):
        if not traced(x, y):
            return npfn(x, y)
        return elementwise("arith.cmpf", x, y, result_dtype=_onp.dtype(_onp.bool_),
                            attrs=cmpf_attrs(_CMP[pname]))
    f.__name__ = pname
    f.__doc__ = f"Elementwise {pname}, a bool array (``arith.cmpf``)."
    return f


less, less_equal = _compare("less"), _compare("less_equal")
greater, greater_equal = _compare("greater"), _compare("greater_equal")
equal, not_equal = _compare("equal"), _compare("not_equal")


def where(cond, x, y):
    """Elementwise choice ``cond ? x : y`` (``arith.select``), broadcasting."""
    if not traced(cond, x, y):
        return _onp.where(cond, x, y)
    tr = check_trace(cond, x, y)
    c = asarray_traced(cond)
    if c.dtype != _onp.bool_:
        raise DTypeError(f"{where_str()}: where() needs a bool condition, got {c.dtype}")
    dtype = promoted_dtype(x, y)
    shape = broadcast_shapes(c.shape, shape_of(x), shape_of(y))
    c = broadcast_to(c, shape)
    a, b = operand(x, shape, dtype), operand(y, shape, dtype)
    rt = tensor_type(shape, dtype)
    return wrap(emit("arith.select", [rt], [c.value, a.value, b.value]).result, tr)


# -- constructors --------------------------------------------------------------------

def _ctor(value_of):
    def f(shape, dtype=float32):
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if current_trace() is None:
            return _onp.full(shape, value_of(None), dtype)
        return constant(value_of(None), shape, dtype)
    return f


zeros = _ctor(lambda _: 0.0)
ones = _ctor(lambda _: 1.0)


def full(shape, fill_value, dtype=float32):
    """numpy ``full``; ``fill_value`` may be a traced (0-d or broadcastable) array."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if current_trace() is None:
        return _onp.full(shape, fill_value, dtype)
    if isinstance(fill_value, Tracer):
        return broadcast_to(astype(fill_value, dtype), shape)
    return constant(fill_value, shape, dtype)


def zeros_like(x):
    return zeros(x.shape, x.dtype)


def ones_like(x):
    return ones(x.shape, x.dtype)


def full_like(x, v):
    return full(x.shape, v, x.dtype)


def asarray(x, dtype=None):
    if current_trace() is None:
        return _onp.asarray(x, dtype=dtype)
    t = asarray_traced(x)
    return astype(t, dtype) if dtype is not None else t


array = asarray
