"""``ferrule.numpy``: the traced numpy-style op set.

Inside a trace (``jit``, ``grad``, ``vjp``, ``jvp``), each function emits MLIR
on tensors: elementwise ``arith``/``math`` ops, ``linalg`` for broadcasts,
transposes, reductions and matmul, ``tensor`` ops for reshapes and slices.
Outside a trace, with concrete arrays, each function is plain numpy.
Semantics (broadcasting, ``axis``/``keepdims``, dtype promotion with weakly
typed Python scalars) follow numpy 2, except that the default dtype is
float32 (as in JAX): constructors without ``dtype`` and ops whose operands
are only Python scalars and bools give float32, and integer constants
become float32.
"""

import builtins

import numpy as _onp
from mlir import ir

from .dialect.ir_utils import cmpf_attrs, create
from .errors import DTypeError, ShapeError, TracingError
from .tracing import (Tracer, current_trace, mlir_element_type, numpy_dtype,
                      user_location, where_str)

float32, float64, bool_ = _onp.float32, _onp.float64, _onp.bool_
ndarray = _onp.ndarray
pi, e, inf, nan = _onp.pi, _onp.e, _onp.inf, _onp.nan


# -- plumbing -----------------------------------------------------------------

def _traced(*xs) -> bool:
    return any(isinstance(x, Tracer) for x in xs)


def _trace_of(*xs):
    """The current trace; a TracingError if a Tracer in ``xs`` belongs to another."""
    tr = current_trace()
    for x in xs:
        if isinstance(x, Tracer) and x.trace is not tr:
            if tr is not None and tr.encloses(x.trace):
                continue  # a closure over an enclosing trace: captured on use
            if tr is None:
                raise TracingError(
                    f"{where_str()}: a traced array {x.dtype}{list(x.shape)} is used "
                    f"outside the function that traced it (it escaped through a "
                    f"global, an attribute or a closure); return it instead")
            raise TracingError(
                f"{where_str()}: a traced array {x.dtype}{list(x.shape)} from another "
                f"trace is used here: an enclosing function's array captured by a "
                f"closure (pass it to the differentiated function as an argument "
                f"instead), or one that escaped an earlier trace through a global")
    return tr


def _tensor_type(shape, dtype):
    return ir.RankedTensorType.get(list(shape), mlir_element_type(dtype))


def _wrap(value, tr) -> Tracer:
    return Tracer(value, tr)


def _emit(name, result_types, operands, attrs=None):
    with user_location():
        return create(name, result_types, operands, attrs)


def constant(value, shape=(), dtype=float32) -> Tracer:
    """A constant array (splat when ``value`` is a scalar)."""
    tr = current_trace()
    dtype = _onp.dtype(dtype)
    t = _tensor_type(shape, dtype)
    arr = _onp.asarray(value, dtype=dtype)
    if arr.ndim == 0:
        scalar_t = t.element_type
        if dtype == _onp.bool_:
            attr = ir.DenseElementsAttr.get_splat(t, ir.BoolAttr.get(bool(arr)))
        else:
            attr = ir.DenseElementsAttr.get_splat(t, ir.FloatAttr.get(scalar_t, float(arr)))
    else:
        arr = _onp.ascontiguousarray(_onp.broadcast_to(arr, shape))
        # bool: the bindings deduce i1 from the numpy buffer, but refuse it with type=
        attr = (ir.DenseElementsAttr.get(arr) if dtype == _onp.bool_
                else ir.DenseElementsAttr.get(arr, type=t))
    return _wrap(_emit("arith.constant", [t], [], {"value": attr}).result, tr)


def zeros_value(t: ir.Type) -> ir.Value:
    """A splat zero of tensor type ``t`` (a symbolic zero for the passes)."""
    rt = ir.RankedTensorType(t)
    return constant(0.0, tuple(rt.shape), numpy_dtype(rt.element_type)).value


def asarray_traced(x, tr=None) -> Tracer:
    """``x`` as a Tracer in the current trace (numpy arrays become constants)."""
    tr = tr or current_trace()
    if isinstance(x, Tracer):
        _trace_of(x)
        return tr.capture(x) if tr is not None and x.trace is not tr else x
    if isinstance(x, (list, tuple)):
        if any(isinstance(v, (Tracer, list, tuple)) for v in x):
            return _np_stack_traced(x)
        x = _onp.asarray(x)
    if isinstance(x, (bool, int, float, _onp.generic)) or isinstance(x, _onp.ndarray):
        arr = _onp.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise DTypeError(f"{where_str()}: a constant of dtype {arr.dtype} cannot be "
                             f"used in a traced function (float32/float64 only)")
        if arr.dtype not in (_onp.float32, _onp.float64, _onp.bool_):
            arr = arr.astype(_onp.float32 if arr.dtype.kind in "iu" else _onp.float64)
        return constant(arr, arr.shape, arr.dtype)
    raise TracingError(f"{where_str()}: cannot use {type(x).__name__} as an array "
                       f"in a traced function")


def _np_stack_traced(xs):
    """``asarray([a, b, ...])`` with traced elements: numpy's stack."""
    return stack([asarray_traced(v) for v in xs], axis=0)


def _result_dtype(*xs):
    """numpy promotion among arrays and numpy scalars; Python scalars are
    weakly typed (numpy 2, NEP 50)."""
    dts = [_onp.dtype(x.dtype) for x in xs if isinstance(x, (Tracer, _onp.ndarray, _onp.generic))]
    floats = [d for d in dts if d != _onp.bool_]
    if not floats:
        return _onp.dtype(_onp.float32)
    return _onp.dtype(_onp.float64) if any(d == _onp.float64 for d in floats) else _onp.dtype(_onp.float32)


def _broadcast_shapes(*shapes):
    try:
        return tuple(_onp.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(f"{where_str()}: shapes {', '.join(map(str, shapes))} "
                         f"cannot be broadcast together") from None


def _shape(x):
    return tuple(x.shape) if isinstance(x, (Tracer, _onp.ndarray, _onp.generic)) else ()


def _operand(x, shape, dtype) -> Tracer:
    """``x`` converted to a Tracer of exactly ``shape`` and ``dtype``."""
    if not isinstance(x, (Tracer, _onp.ndarray, _onp.generic)):  # Python scalar: splat
        return constant(x, shape, dtype)
    t = asarray_traced(x)
    if t.dtype != dtype:
        t = astype(t, dtype)
    return broadcast_to(t, shape)


def _elementwise(name, *xs, dtype=None, result_dtype=None, attrs=None):
    tr = _trace_of(*xs)
    dtype = dtype or _result_dtype(*xs)
    shape = _broadcast_shapes(*(_shape(x) for x in xs))
    ops = [_operand(x, shape, dtype) for x in xs]
    rt = _tensor_type(shape, result_dtype or dtype)
    return _wrap(_emit(name, [rt], [o.value for o in ops], attrs).result, tr)


def _unary(name, npfn):
    def f(x):
        if not _traced(x):
            return npfn(x)
        x = asarray_traced(x)
        if x.dtype == _onp.bool_:
            raise DTypeError(f"{where_str()}: {npfn.__name__} of a bool array")
        return _elementwise(name, x, dtype=x.dtype)
    f.__name__ = npfn.__name__
    f.__doc__ = f"Elementwise {npfn.__name__} (``{name}``)."
    return f


def _binary(name, npfn):
    def f(x, y):
        if not _traced(x, y):
            return npfn(x, y)
        return _elementwise(name, x, y)
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
    if not _traced(x, y):
        return _onp.power(x, y)
    if isinstance(y, (int, float, _onp.integer, _onp.floating)):
        v = float(y)
        if v == 0.5 or (v.is_integer() and builtins.abs(v) <= _MAX_INT_POWER):
            b = astype(asarray_traced(x), _result_dtype(x, y))
            if v == 0.5:
                return sqrt(b)
            r = _int_power(b, int(builtins.abs(v)))
            return divide(1.0, r) if v < 0 else r
    return _elementwise("math.powf", x, y)


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
        if not _traced(x, y):
            return npfn(x, y)
        return _elementwise("arith.cmpf", x, y, result_dtype=_onp.dtype(_onp.bool_),
                            attrs=cmpf_attrs(_CMP[pname]))
    f.__name__ = pname
    f.__doc__ = f"Elementwise {pname}, a bool array (``arith.cmpf``)."
    return f


less, less_equal = _compare("less"), _compare("less_equal")
greater, greater_equal = _compare("greater"), _compare("greater_equal")
equal, not_equal = _compare("equal"), _compare("not_equal")


def where(cond, x, y):
    """Elementwise choice ``cond ? x : y`` (``arith.select``), broadcasting."""
    if not _traced(cond, x, y):
        return _onp.where(cond, x, y)
    tr = _trace_of(cond, x, y)
    c = asarray_traced(cond)
    if c.dtype != _onp.bool_:
        raise DTypeError(f"{where_str()}: where() needs a bool condition, got {c.dtype}")
    dtype = _result_dtype(x, y)
    shape = _broadcast_shapes(c.shape, _shape(x), _shape(y))
    c = broadcast_to(c, shape)
    a, b = _operand(x, shape, dtype), _operand(y, shape, dtype)
    rt = _tensor_type(shape, dtype)
    return _wrap(_emit("arith.select", [rt], [c.value, a.value, b.value]).result, tr)


def astype(x, dtype):
    """Convert between float32 and float64 (``arith.extf`` / ``truncf``), and
    from bool to either (``where(x, 1, 0)``, so AD sees a select)."""
    dtype = _onp.dtype(dtype)
    if not _traced(x):
        # x.astype keeps array wrappers of other ADs (ferrule.eager) in play
        return x.astype(dtype) if hasattr(x, "astype") else _onp.asarray(x).astype(dtype)
    x = asarray_traced(x)
    if x.dtype == dtype:
        return x
    if dtype not in (_onp.float32, _onp.float64):
        raise DTypeError(f"{where_str()}: astype from {x.dtype} to {dtype} is not supported "
                         f"(ferrule computes in float32 and float64)")
    if x.dtype == _onp.bool_:
        one, zero = constant(1.0, x.shape, dtype), constant(0.0, x.shape, dtype)
        return _wrap(_emit("arith.select", [_tensor_type(x.shape, dtype)],
                           [x.value, one.value, zero.value]).result, x.trace)
    name = "arith.extf" if dtype == _onp.float64 else "arith.truncf"
    return _wrap(_emit(name, [_tensor_type(x.shape, dtype)], [x.value]).result, x.trace)


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

# The structured ops live in their own modules; they use the plumbing above.
from .layout import (amax, broadcast_to, dot, matmul, max, mean, reshape,  # noqa: E402
                     sum, swapaxes, transpose)
from .indexing import getitem, concatenate, split, stack  # noqa: E402
