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
import operator

import numpy as _onp
from mlir import ir
from mlir.dialects import linalg as linalg_d

from .passes.support.ir_utils import (PARALLEL, REDUCTION, create, empty,
                                       make_generic, projection_map)
from .errors import DTypeError, ShapeError, TracingError, UnsupportedOperationError
from .tracing import (Tracer, current_trace, mlir_element_type, user_location,
                      where_str)

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
_CMP = {"less": 4, "less_equal": 5, "greater": 2, "greater_equal": 3,
        "equal": 1, "not_equal": 13}


def _compare(pname):
    npfn = getattr(_onp, pname)

    def f(x, y):
        if not _traced(x, y):
            return npfn(x, y)
        pred = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), _CMP[pname])
        return _elementwise("arith.cmpf", x, y, result_dtype=_onp.dtype(_onp.bool_),
                            attrs={"predicate": pred})
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


# -- broadcasting and layout ------------------------------------------------------

def broadcast_to(x, shape):
    """numpy ``broadcast_to``: a ``linalg.generic`` reading ``x`` through a
    projection map (size-1 axes are first collapsed away)."""
    shape = tuple(int(s) for s in shape)
    if not _traced(x):
        return _onp.broadcast_to(x, shape)
    x = asarray_traced(x)
    if x.shape == shape:
        return x
    try:
        ok = _onp.broadcast_shapes(x.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ShapeError(f"{where_str()}: cannot broadcast {x.shape} to {shape}")
    lead = len(shape) - x.ndim
    kept = [i for i, s in enumerate(x.shape) if s == shape[lead + i]]
    src = x
    if len(kept) != x.ndim:
        src = _reshape_to(x, tuple(x.shape[i] for i in kept))
    dims = [lead + i for i in kept]
    elt = mlir_element_type(x.dtype)
    with user_location():
        init = empty(shape, elt)
        op = make_generic([src.value], [init],
                          [projection_map(len(shape), dims), projection_map(len(shape), range(len(shape)))],
                          [PARALLEL] * len(shape), lambda a: [a[0]])
    return _wrap(op.result, x.trace)


def _reassoc(groups):
    return ir.ArrayAttr.get([ir.ArrayAttr.get([ir.IntegerAttr.get(ir.IntegerType.get_signless(64), d)
                                               for d in g]) for g in groups])


def _unit_groups(shape):
    """A reassociation that groups each size-1 axis of ``shape`` with a
    neighbouring other axis: collapsing by it removes exactly the size-1 axes
    ([] when every axis has size 1: a collapse to rank 0)."""
    groups, pending = [], []
    for d, n in enumerate(shape):
        if n == 1:
            pending.append(d)
        else:
            groups.append(pending + [d])
            pending = []
    if pending and groups:
        groups[-1] += pending
    return groups


def _reshape_to(x: Tracer, shape) -> Tracer:
    """Reshape with static tensor ops. Adding or removing size-1 axes collapses
    and expands exactly those (valid on strided slices too); other reshapes
    collapse to 1-D and expand, which canonicalisation folds where it can."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    elt = mlir_element_type(x.dtype)

    def collapse(v, groups, to):
        return _emit("tensor.collapse_shape", [ir.RankedTensorType.get(list(to), elt)],
                     [v], {"reassociation": _reassoc(groups)}).result

    def expand(v, groups, to):
        return _emit("tensor.expand_shape", [ir.RankedTensorType.get(list(to), elt)], [v],
                     {"reassociation": _reassoc(groups),
                      "static_output_shape": ir.DenseI64ArrayAttr.get(list(to))}).result

    v = x.value
    core = tuple(n for n in shape if n != 1)
    if core == tuple(n for n in x.shape if n != 1):
        if x.shape != core:
            v = collapse(v, _unit_groups(x.shape), core)
        if shape != core:
            v = expand(v, _unit_groups(shape), shape)
    elif not shape:
        v = collapse(v, [], ())
    elif x.ndim == 0:
        v = expand(v, [], shape)
    else:
        if x.ndim != 1:
            v = collapse(v, [list(range(x.ndim))], (x.size,))
        if len(shape) != 1:
            v = expand(v, [list(range(len(shape)))], shape)
    return _wrap(v, x.trace)


def reshape(x, shape):
    """numpy ``reshape`` (one ``-1`` allowed)."""
    if isinstance(shape, int):
        shape = (shape,)
    shape = tuple(int(s) for s in shape)
    if not _traced(x):
        return _onp.reshape(x, shape)
    x = asarray_traced(x)
    if shape.count(-1) > 1:
        raise ShapeError(f"{where_str()}: reshape allows one -1, got {shape}")
    if -1 in shape:
        known = int(_onp.prod([s for s in shape if s != -1], dtype=_onp.int64))
        if known == 0 or x.size % known:
            raise ShapeError(f"{where_str()}: cannot reshape {x.shape} into {shape}")
        shape = tuple(x.size // known if s == -1 else s for s in shape)
    if int(_onp.prod(shape, dtype=_onp.int64)) != x.size:
        raise ShapeError(f"{where_str()}: cannot reshape array of size {x.size} "
                         f"(shape {x.shape}) into shape {shape}")
    return _reshape_to(x, shape)


def transpose(x, axes=None):
    """numpy ``transpose``: a ``linalg.generic`` with a permutation map."""
    if not _traced(x):
        return _onp.transpose(x, axes)
    x = asarray_traced(x)
    if axes is None:
        axes = tuple(range(x.ndim))[::-1]
    else:
        given = tuple(operator.index(a) for a in axes)
        if len(given) != x.ndim or any(not -x.ndim <= a < x.ndim for a in given):
            raise ShapeError(f"{where_str()}: axes {given} are not a permutation of the "
                             f"{x.ndim} axes of an array of shape {x.shape}")
        axes = tuple(a % x.ndim for a in given)
    if sorted(axes) != list(range(x.ndim)):
        raise ShapeError(f"{where_str()}: axes {axes} are not a permutation of {x.ndim} dims")
    if axes == tuple(range(x.ndim)):
        return x
    out_shape = tuple(x.shape[a] for a in axes)
    # out[i0..] = x[...]: input dim axes[k] is output dim k
    inv = [axes.index(d) for d in range(x.ndim)]
    with user_location():
        init = empty(out_shape, mlir_element_type(x.dtype))
        op = make_generic([x.value], [init],
                          [projection_map(x.ndim, inv), projection_map(x.ndim, range(x.ndim))],
                          [PARALLEL] * x.ndim, lambda a: [a[0]])
    return _wrap(op.result, x.trace)


def swapaxes(x, a, b):
    axes = list(range(_onp.ndim(x) if not _traced(x) else x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return transpose(x, axes)


# -- reductions ------------------------------------------------------------------

def _norm_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, _onp.integer)) else tuple(axis)
    out = []
    for a in map(operator.index, axes):
        if not -ndim <= a < ndim:
            raise ShapeError(f"{where_str()}: axis {a} is out of bounds for {ndim}-d array")
        out.append(a % ndim)
    return tuple(sorted(set(out)))


def _reduce(x, axis, keepdims, kind):
    x = asarray_traced(x)
    if x.dtype == _onp.bool_:
        if kind != "add":
            raise DTypeError(f"{where_str()}: max of a bool array is not supported")
        x = astype(x, float32)  # a count, as float32 (ferrule has no integer arrays)
    axes = _norm_axes(axis, x.ndim)
    kept = [d for d in range(x.ndim) if d not in axes]
    out_shape = tuple(x.shape[d] for d in kept)
    elt = mlir_element_type(x.dtype)
    init_val = 0.0 if kind == "add" else -_onp.inf
    fill = constant(init_val, out_shape, x.dtype)
    body_op = {"add": "arith.addf", "max": "arith.maximumf"}[kind]
    with user_location():
        op = make_generic(
            [x.value], [fill.value],
            [projection_map(x.ndim, range(x.ndim)), projection_map(x.ndim, kept)],
            [REDUCTION if d in axes else PARALLEL for d in range(x.ndim)],
            lambda a: [create(body_op, [elt], [a[0], a[1]]).result])
    r = _wrap(op.result, x.trace)
    if keepdims:
        r = _reshape_to(r, tuple(1 if d in axes else x.shape[d] for d in range(x.ndim)))
    return r


def sum(x, axis=None, keepdims=False):
    """numpy ``sum``: a ``linalg.generic`` with reduction iterators."""
    if not _traced(x):
        return _onp.sum(x, axis=axis, keepdims=keepdims)
    return _reduce(x, axis, keepdims, "add")


def max(x, axis=None, keepdims=False):
    """numpy ``max`` (``amax``)."""
    if not _traced(x):
        return _onp.max(x, axis=axis, keepdims=keepdims)
    return _reduce(x, axis, keepdims, "max")


amax = max


def mean(x, axis=None, keepdims=False):
    """numpy ``mean``: ``sum`` times ``1/N``."""
    if not _traced(x):
        return _onp.mean(x, axis=axis, keepdims=keepdims)
    x = asarray_traced(x)
    n = int(_onp.prod([x.shape[a] for a in _norm_axes(axis, x.ndim)], dtype=_onp.int64))
    return multiply(sum(x, axis, keepdims), 1.0 / n if n else nan)


# -- matmul -------------------------------------------------------------------------

def matmul(a, b):
    """numpy ``matmul`` for 1-D and 2-D operands (``linalg.matmul``)."""
    if not _traced(a, b):
        return _onp.matmul(a, b)
    tr = _trace_of(a, b)
    dtype = _result_dtype(a, b)
    a, b = asarray_traced(a), asarray_traced(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"{where_str()}: matmul of a 0-d array; use * instead")
    if a.ndim > 2 or b.ndim > 2:
        raise UnsupportedOperationError(
            f"{where_str()}: matmul of {a.ndim}-d and {b.ndim}-d arrays: batched "
            f"matmul is not implemented yet (only 1-D and 2-D operands)")
    a2 = reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
    b2 = reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
    if a2.shape[1] != b2.shape[0]:
        raise ShapeError(f"{where_str()}: matmul shapes {a.shape} and {b.shape} do not "
                         f"align ({a2.shape[1]} != {b2.shape[0]})")
    a2, b2 = astype(a2, dtype), astype(b2, dtype)
    out_shape = (a2.shape[0], b2.shape[1])
    zero = constant(0.0, out_shape, dtype)
    with user_location():
        r = linalg_d.matmul(a2.value, b2.value, outs=[zero.value])
    res = _wrap(r, tr)
    final = tuple(s for s, keep in zip(out_shape, (a.ndim == 2, b.ndim == 2)) if keep)
    return reshape(res, final)


dot = matmul


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

from .indexing import getitem, concatenate, split, stack  # noqa: E402  (uses the above)
