"""Elementwise ops and array creation for traced arrays.

Part of ``ferrule.numpy`` (re-exported there). Each op is one elementwise
``arith``/``math`` op on tensors (the passes fuse them into pointwise
regions), after numpy's broadcasting and dtype promotion
(:func:`ferrule.core.elementwise`). On integer arrays they are the integer
ops (``arith.addi``, ``cmpi``, ...; see :mod:`ferrule.dtypes`); the
integer-only ops (``//``, ``%``, bitwise, shifts) are in
:mod:`ferrule.integers`. Outside a trace, each is plain numpy.
"""

import builtins

import numpy as _onp
from mlir import ir

from .core import (asarray_traced, astype, broadcast_shapes, broadcast_to, check_operands, constant,
                   elementwise, emit, operand, promoted_dtype, shape_of, tensor_type, traced,
                   wrap)
from .dialect.ir_utils import PARALLEL, cmpf_attrs, create, empty, make_generic, projection_map
from .dtypes import BOOL, F32, I64, U32, all_weak
from .errors import DTypeError, UnsupportedOperationError
from .narrow import is_float, is_narrow
from .tracing import Tracer, check_trace, current_trace, mlir_element_type, user_location, where_str

float32 = _onp.float32


def unary_op(name, npfn):
    """numpy's ufunc ``npfn`` as the elementwise op ``name`` on a traced
    array (integers: the integer op, or ``name`` on the array as float32)."""
    def f(x):
        if current_trace() is not None:
            check_operands(npfn.__name__, (x,))
        if not traced(x):
            return npfn(x)
        x = asarray_traced(x)
        if x.dtype == _onp.bool_:
            raise DTypeError(f"{where_str()}: {npfn.__name__} of a bool array")
        if x.dtype.kind in "iu":
            return _int_unary(name, x)
        return elementwise(name, x, dtype=x.dtype)
    f.__name__ = npfn.__name__
    f.__doc__ = f"Elementwise {npfn.__name__} (``{name}``)."
    f.primitive = name   # its derivative: the scalar partials of ``name`` (docs/ops.md)
    return f


def binary_op(name, npfn):
    """numpy's binary ufunc ``npfn`` as the elementwise op ``name``, after
    broadcasting and dtype promotion."""
    def f(x, y):
        if current_trace() is not None:
            check_operands(npfn.__name__, (x, y))
        if not traced(x, y):
            return npfn(x, y)
        return elementwise(name, x, y)
    f.__name__ = npfn.__name__
    f.__doc__ = f"Elementwise {npfn.__name__} with broadcasting (``{name}``)."
    f.primitive = name
    return f


# -- elementwise ----------------------------------------------------------------

add = binary_op("arith.addf", _onp.add)
subtract = binary_op("arith.subf", _onp.subtract)
multiply = binary_op("arith.mulf", _onp.multiply)
divide = binary_op("arith.divf", _onp.divide)
true_divide = divide
maximum = binary_op("arith.maximumf", _onp.maximum)
minimum = binary_op("arith.minimumf", _onp.minimum)
negative = unary_op("arith.negf", _onp.negative)
exp = unary_op("math.exp", _onp.exp)
log = unary_op("math.log", _onp.log)
log1p = unary_op("math.log1p", _onp.log1p)
expm1 = unary_op("math.expm1", _onp.expm1)
tanh = unary_op("math.tanh", _onp.tanh)
sin = unary_op("math.sin", _onp.sin)
cos = unary_op("math.cos", _onp.cos)
sqrt = unary_op("math.sqrt", _onp.sqrt)
abs = unary_op("math.absf", _onp.abs)
absolute = abs


def _int_unary(name: str, x: Tracer) -> Tracer:
    """Unary op ``name`` (a float op) on an integer array."""
    if name == "arith.negf":
        return elementwise("arith.subi", 0, x, dtype=x.dtype)
    if name == "math.absf":
        return x if x.dtype == U32 else elementwise("math.absi", x, dtype=x.dtype)
    # exp, log, tanh, ...: on the integers as float32 (JAX; numpy gives float64)
    return elementwise(name, astype(x, F32), dtype=F32)


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
    if _int_power_args(x, y):
        return _int_power_of(x, y)
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


def _int_power_args(x, y) -> bool:
    ints = [v for v in (x, y) if isinstance(v, (Tracer, _onp.ndarray, _onp.generic))]
    return bool(ints) and promoted_dtype(x, y).kind in "iu"


def _int_power_of(x, y) -> Tracer:
    """``x ** y`` on integers: a constant non-negative exponent becomes
    multiplications (numpy's result); anything else is not supported."""
    if isinstance(y, (int, _onp.integer)) and not isinstance(y, bool):
        if int(y) < 0:
            raise DTypeError(f"{where_str()}: integers to negative integer powers are not "
                             f"allowed (numpy raises too); use a float base")
        b = astype(asarray_traced(x), promoted_dtype(x, y))
        return _int_power(b, int(y))
    raise UnsupportedOperationError(f"{where_str()}: integer ** a traced integer exponent is "
                                    f"not supported; convert to float first")


# arith.cmpf predicates: ordered (false on NaN) except not_equal, which is
# unordered (une: true on NaN), as in numpy.
_CMP = {"less": "olt", "less_equal": "ole", "greater": "ogt", "greater_equal": "oge",
        "equal": "oeq", "not_equal": "une"}


def _compare(pname):
    npfn = getattr(_onp, pname)

    def f(x, y):
        if current_trace() is not None:
            check_operands(npfn.__name__, (x, y))
        if not traced(x, y):
            return npfn(x, y)
        if promoted_dtype(x, y).kind in "iu":
            return int_compare(pname, x, y)
        return elementwise("arith.cmpf", x, y, result_dtype=_onp.dtype(_onp.bool_),
                            attrs=cmpf_attrs(_CMP[pname]))
    f.__name__ = pname
    f.__doc__ = f"Elementwise {pname}, a bool array (``arith.cmpf``)."
    return f


# arith.cmpi predicates (signed, unsigned)
CMPI = {"equal": (0, 0), "not_equal": (1, 1), "less": (2, 6), "less_equal": (3, 7),
         "greater": (4, 8), "greater_equal": (5, 9)}


def int_compare(pname: str, x, y) -> Tracer:
    dtype = promoted_dtype(x, y)
    pred = CMPI[pname][1 if dtype == U32 else 0]
    return elementwise("arith.cmpi", x, y, dtype=dtype, result_dtype=BOOL,
                       attrs={"predicate": ir.IntegerAttr.get(ir.IntegerType.get_signless(64),
                                                             pred)})


less, less_equal = _compare("less"), _compare("less_equal")
greater, greater_equal = _compare("greater"), _compare("greater_equal")
equal, not_equal = _compare("equal"), _compare("not_equal")


_NOT_GIVEN = object()


def where(cond, x=_NOT_GIVEN, y=_NOT_GIVEN):
    """Elementwise choice ``cond ? x : y`` (``arith.select``), broadcasting.
    The one-argument form (numpy's indices of the true elements) has a
    data-dependent shape: an :class:`UnsupportedOperationError`."""
    if x is _NOT_GIVEN or y is _NOT_GIVEN:
        if not traced(cond):
            return _onp.where(cond) if x is _NOT_GIVEN and y is _NOT_GIVEN \
                else _onp.where(cond, x, y)
        raise UnsupportedOperationError(
            f"{where_str()}: where(condition) with one argument (the indices of the true "
            f"elements) is not supported: its shape depends on the data; use where(cond, x, y)")
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
    r = wrap(emit("arith.select", [rt], [c.value, a.value, b.value]).result, tr, dtype)
    r.weak = all_weak(x, y)
    return r


def clip(x, lo=None, hi=None):
    """numpy ``clip(x, lo, hi)`` = ``minimum(maximum(x, lo), hi)`` (either
    bound may be None). Derivative with respect to ``x``: 1 where
    ``lo <= x <= hi`` (at a bound too, as PyTorch's ``clamp``), 0 outside,
    NaN at a NaN ``x``; the bound that is chosen gets the derivative there."""
    if not traced(x, lo, hi):
        return _onp.clip(x, lo, hi)
    if lo is None and hi is None:
        raise ValueError(f"{where_str()}: clip needs at least one of lo, hi")
    x = asarray_traced(x)
    r = x
    if is_float(promoted_dtype(x, *(b for b in (lo, hi) if b is not None))) and \
            is_float(x.dtype):
        # x * (1, or NaN at a NaN x): the derivative is NaN there (NaN in, NaN out)
        ones = where(equal(x, x), 1.0, _onp.nan)   # float32: keep a narrow x narrow
        r = multiply(x, astype(ones, x.dtype) if is_narrow(x.dtype) else ones)
    if lo is not None:
        r = where(less(x, lo), lo, r)
    if hi is not None:
        r = where(greater(r, hi), hi, r)
    return r


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


CONSTANT_IOTA_MAX = 4096   # longer ranges are computed (linalg.index), not stored


def arange(start, stop=None, step=1, dtype=None):
    """numpy ``arange`` with Python numbers (static). Integers give int64
    (numpy's default), floats float32 (ferrule's default float)."""
    if stop is None:
        start, stop = 0, start
    if any(isinstance(v, Tracer) for v in (start, stop, step)):
        raise UnsupportedOperationError(f"{where_str()}: arange needs Python numbers (its "
                                        f"length is part of the array's shape)")
    values = _onp.arange(start, stop, step)
    if dtype is None:
        dtype = I64 if values.dtype.kind in "iu" else F32
    dtype = _onp.dtype(dtype)
    if current_trace() is None:
        return values.astype(dtype)
    n = len(values)
    if n <= CONSTANT_IOTA_MAX or builtins.any(isinstance(v, float) for v in (start, step)):
        return constant(values.astype(dtype), (n,), dtype)
    return iota((n,), 0, dtype, start=int(start), step=int(step))


def iota(shape, dim: int, dtype, start: int = 0, step: int = 1) -> Tracer:
    """``start + step * index`` along ``dim`` of ``shape``, computed by a
    ``linalg.generic`` reading ``linalg.index`` (no data in the IR)."""
    dtype = _onp.dtype(dtype)
    tr = current_trace()
    elt = mlir_element_type(dtype)
    rank = len(shape)
    i64 = ir.IntegerType.get_signless(64)

    def iconst(v):
        return create("arith.constant", [i64], [], {"value": ir.IntegerAttr.get(i64, int(v))}).result

    def body(a):
        i = create("linalg.index", [ir.IndexType.get()], [],
                   {"dim": ir.IntegerAttr.get(i64, dim)}).result
        v = create("arith.index_cast", [i64], [i]).result
        if step != 1:
            v = create("arith.muli", [i64], [v, iconst(step)]).result
        if start:
            v = create("arith.addi", [i64], [v, iconst(start)]).result
        if is_float(dtype):
            return [create("arith.sitofp", [elt], [v]).result]
        if elt != i64:
            v = create("arith.trunci", [elt], [v]).result
        return [v]
    with user_location():
        op = make_generic([], [empty(shape, elt)], [projection_map(rank, range(rank))],
                          [PARALLEL] * rank, body)
    return wrap(op.result, tr, dtype)


def asarray(x, dtype=None):
    if current_trace() is None:
        return _onp.asarray(x, dtype=dtype)
    t = asarray_traced(x)
    return astype(t, dtype) if dtype is not None else t


array = asarray
