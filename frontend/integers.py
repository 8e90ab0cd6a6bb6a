"""Integer arrays in ``ferrule.numpy``: promotion, arithmetic, casts, bitwise
ops and shifts, ``arange``, ``argmax``/``argmin``, ``clip``, integer
reductions.

Integer values are ``int32``, ``int64`` or ``uint32`` (and ``bool``). In the
IR they are signless ``i32``/``i64`` tensors (``uint32`` is an ``i32`` whose
Tracer says uint32): the ops carry the sign (``arith.divsi`` or ``divui``,
``cmpi slt`` or ``ult``, ``shrsi`` or ``shrui``, ``sitofp`` or ``uitofp``).
They are never differentiated: the AD passes keep every integer value
inactive, and the cotangent of an integer input is a symbolic zero
(``ferrule.float0``).

Semantics are numpy's where it matters — wrapping ``+ - *``, floor ``//``
and ``%`` (``x // 0`` and ``x % 0`` give 0, as numpy does after its
warning), shifts by the bit width or more give 0 (or -1 for a negative
``>>``), casts truncate toward zero — with these deliberate differences:

* An integer array mixed with a float array or a Python float gives the
  float's dtype (float32 by default), as JAX does; numpy gives float64 for
  int32/int64 with float32. ``int / int`` is float32.
* ``sum`` of int32, uint32 or bool gives int64 (numpy: int64, uint64 for
  uint32); ``mean`` of integers is float32.
* Only integer ops on float arrays that numpy defines are defined: ``//``
  and ``%`` of float arrays are not supported (UnsupportedOperationError).
"""

import builtins

import numpy as _onp
from mlir import ir

from . import numpy as fnp
from .errors import DTypeError, ShapeError, UnsupportedOperationError
from .passes.support.ir_utils import (PARALLEL, REDUCTION, create, empty, make_generic,
                                       projection_map)
from .tracing import Tracer, current_trace, mlir_element_type, user_location, where_str

F32, F64 = _onp.dtype(_onp.float32), _onp.dtype(_onp.float64)
I32, I64, U32 = _onp.dtype(_onp.int32), _onp.dtype(_onp.int64), _onp.dtype(_onp.uint32)
BOOL = _onp.dtype(_onp.bool_)
INT_DTYPES = (I32, I64, U32)

# arith.cmpi predicates
_CMPI = {"equal": (0, 0), "not_equal": (1, 1), "less": (2, 6), "less_equal": (3, 7),
         "greater": (4, 8), "greater_equal": (5, 9)}
_INT_OPS = {"arith.addf": "arith.addi", "arith.subf": "arith.subi", "arith.mulf": "arith.muli",
            "arith.maximumf": ("arith.maxsi", "arith.maxui"),
            "arith.minimumf": ("arith.minsi", "arith.minui")}
# Float ops on integers: computed on the integers converted to float32.
_FLOAT_ON_INTS = ("arith.divf", "math.powf")


def _i(width: int) -> ir.Type:
    return ir.IntegerType.get_signless(width)


def _is_int(d) -> bool:
    return _onp.dtype(d).kind in "iu"


def canonical_int(d) -> _onp.dtype:
    """The ferrule integer dtype holding numpy integer dtype ``d``."""
    d = _onp.dtype(d)
    if d in INT_DTYPES:
        return d
    if d.itemsize < 4:
        return I32
    if d == _onp.dtype(_onp.uint64):
        raise DTypeError(f"{where_str()}: uint64 arrays are not supported (ferrule's integer "
                         f"dtypes are int32, int64 and uint32)")
    return I64


def _int_constant_array(arr: _onp.ndarray) -> _onp.ndarray:
    """A numpy constant in a dtype ferrule computes in."""
    if arr.dtype.kind in "iu":
        return arr.astype(canonical_int(arr.dtype))
    return arr


def _int_attr(arr, shape, t: ir.RankedTensorType) -> ir.Attribute:
    """A DenseElementsAttr for integer constant ``arr`` of tensor type ``t``."""
    width = 64 if str(t.element_type) == "i64" else 32
    arr = _onp.asarray(arr)
    lo, hi = (-(1 << 63), (1 << 63) - 1) if width == 64 else (-(1 << 31), (1 << 32) - 1)
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        bad = int(arr.max()) if int(arr.max()) > hi else int(arr.min())
        raise DTypeError(f"{where_str()}: integer {bad} is out of bounds for {width}-bit "
                         f"integers")
    wrapped = arr.astype(_onp.int64)
    if width == 32:   # int32 and uint32 share the i32 bits
        wrapped = (wrapped & 0xFFFFFFFF).astype(_onp.uint32).view(_onp.int32)
    if wrapped.ndim == 0:
        return ir.DenseElementsAttr.get_splat(t, ir.IntegerAttr.get(t.element_type, int(wrapped)))
    full = _onp.ascontiguousarray(_onp.broadcast_to(wrapped, tuple(shape)))
    return ir.DenseElementsAttr.get(full, type=t)


# -- promotion -------------------------------------------------------------------------

def _int_promote(ints) -> _onp.dtype:
    ints = [canonical_int(d) for d in ints]
    if any(d == I64 for d in ints) or (U32 in ints and I32 in ints):
        return I64
    return U32 if all(d == U32 for d in ints) else I32


def promote(*xs) -> _onp.dtype:
    """The result dtype of an op on ``xs``: numpy's (NEP 50) among arrays and
    numpy scalars, with Python scalars and weakly typed tracers (Python
    float arguments of jit) weak, and these ferrule choices: integers with a
    float (array or Python float) give the float's dtype, float32 by default
    (as JAX); an op on weakly typed tracers and Python scalars only is
    float64 (as Python computes) and stays weak."""
    strong, weak_float, weak_tracer = [], False, False
    for x in xs:
        if isinstance(x, Tracer):
            if x.weak:
                weak_float = weak_tracer = True
            else:
                strong.append(x.dtype)
        elif isinstance(x, (_onp.ndarray, _onp.generic)):
            strong.append(_onp.dtype(x.dtype))
        elif isinstance(x, float):
            weak_float = True
    floats = [d for d in strong if d.kind == "f"]
    if floats:
        return F64 if any(d == F64 for d in floats) else F32
    ints = [d for d in strong if d.kind in "iu"]
    if ints:
        return F32 if weak_float else _int_promote(ints)
    if weak_tracer and not strong:
        return F64
    return F32


def all_weak(*xs) -> bool:
    """True when ``xs`` hold a weakly typed tracer and otherwise only Python
    scalars: the result of an op on them is weak too."""
    tracers = [x for x in xs if isinstance(x, Tracer)]
    return (bool(tracers) and all(t.weak for t in tracers)
            and not any(isinstance(x, (_onp.ndarray, _onp.generic)) for x in xs))


# -- elementwise -----------------------------------------------------------------------

def int_op(name: str, dtype, attrs):
    """(op name, operand dtype, attrs) of float op ``name`` on integers."""
    if name in _FLOAT_ON_INTS:
        return name, F32, attrs
    mapped = _INT_OPS.get(name)
    if mapped is None:
        if name.split(".")[-1].endswith("i"):   # already an integer op (addi, absi, cmpi, ...)
            return name, dtype, attrs        # already an integer op
        raise UnsupportedOperationError(f"{where_str()}: '{name}' is not defined on integer "
                                        f"arrays ({_onp.dtype(dtype)})")
    if isinstance(mapped, tuple):
        mapped = mapped[1] if _onp.dtype(dtype) == U32 else mapped[0]
    return mapped, dtype, attrs


def int_unary(name: str, x: Tracer) -> Tracer:
    """Unary op ``name`` (a float op) on an integer array."""
    if name == "arith.negf":
        return fnp._elementwise("arith.subi", 0, x, dtype=x.dtype)
    if name == "math.absf":
        return x if x.dtype == U32 else fnp._elementwise("math.absi", x, dtype=x.dtype)
    # exp, log, tanh, ...: on the integers as float32 (JAX; numpy gives float64)
    return fnp._elementwise(name, fnp.astype(x, F32), dtype=F32)


def int_compare(pname: str, x, y) -> Tracer:
    dtype = promote(x, y)
    pred = _CMPI[pname][1 if dtype == U32 else 0]
    return fnp._elementwise("arith.cmpi", x, y, dtype=dtype, result_dtype=BOOL,
                            attrs={"predicate": ir.IntegerAttr.get(_i(64), pred)})


def _int_power_args(x, y) -> bool:
    ints = [v for v in (x, y) if isinstance(v, (Tracer, _onp.ndarray, _onp.generic))]
    return bool(ints) and promote(x, y).kind in "iu"


def int_power(x, y) -> Tracer:
    """``x ** y`` on integers: a constant non-negative exponent becomes
    multiplications (numpy's result); anything else is not supported."""
    if isinstance(y, (int, _onp.integer)) and not isinstance(y, bool):
        if int(y) < 0:
            raise DTypeError(f"{where_str()}: integers to negative integer powers are not "
                             f"allowed (numpy raises too); use a float base")
        b = fnp.astype(fnp.asarray_traced(x), promote(x, y))
        return fnp._int_power(b, int(y))
    raise UnsupportedOperationError(f"{where_str()}: integer ** a traced integer exponent is "
                                    f"not supported; convert to float first")


def _traced_int_operands(name, x, y):
    if not fnp._traced(x, y):
        return None
    dtype = promote(x, y)
    if dtype.kind not in "iu":
        kinds = sorted({str(v.dtype) for v in (x, y) if isinstance(v, (Tracer, _onp.ndarray))})
        raise UnsupportedOperationError(f"{where_str()}: {name} is only supported on integer "
                                        f"arrays here, got {', '.join(kinds) or 'floats'}")
    shape = fnp._broadcast_shapes(fnp._shape(x), fnp._shape(y))
    return dtype, fnp._operand(x, shape, dtype), fnp._operand(y, shape, dtype)


def _op(name, *xs, dtype, result_dtype=None, attrs=None):
    return fnp._elementwise(name, *xs, dtype=dtype, result_dtype=result_dtype, attrs=attrs)


def _eq(a, v):
    return int_compare("equal", a, v)


def floor_divide(x, y):
    """numpy ``//`` on integers: floor division; ``x // 0`` is 0 (numpy warns
    and gives 0), ``INT_MIN // -1`` wraps to ``INT_MIN``."""
    ops = _traced_int_operands("floor_divide (//)", x, y)
    if ops is None:
        return _onp.floor_divide(x, y)
    dtype, a, b = ops
    zero = _eq(b, 0)
    if dtype == U32:
        q = _op("arith.divui", a, fnp.where(zero, 1, b), dtype=dtype)
        return fnp.where(zero, _onp.uint32(0), q)
    neg1 = _eq(b, -1)
    safe = fnp.where(bitwise_or(zero, neg1), 1, b)
    q = _op("arith.divsi", a, safe, dtype=dtype)       # truncates toward zero
    r = fnp.subtract(a, fnp.multiply(q, safe))
    down = bitwise_and(fnp.not_equal(r, 0), bitwise_xor(fnp.less(r, 0), fnp.less(safe, 0)))
    q = fnp.where(down, fnp.subtract(q, 1), q)
    q = fnp.where(neg1, fnp.subtract(0, a), q)
    return fnp.where(zero, fnp.constant(0, (), dtype), q)


def remainder(x, y):
    """numpy ``%`` on integers: the sign of the divisor; ``x % 0`` is 0."""
    ops = _traced_int_operands("remainder (%)", x, y)
    if ops is None:
        return _onp.remainder(x, y)
    dtype, a, b = ops
    zero = _eq(b, 0)
    if dtype == U32:
        r = _op("arith.remui", a, fnp.where(zero, 1, b), dtype=dtype)
        return fnp.where(zero, _onp.uint32(0), r)
    neg1 = _eq(b, -1)
    safe = fnp.where(bitwise_or(zero, neg1), 1, b)
    r = _op("arith.remsi", a, safe, dtype=dtype)
    fix = bitwise_and(fnp.not_equal(r, 0), bitwise_xor(fnp.less(r, 0), fnp.less(safe, 0)))
    r = fnp.where(fix, fnp.add(r, safe), r)
    return fnp.where(bitwise_or(zero, neg1), fnp.constant(0, (), dtype), r)


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
        if not fnp._traced(x, y):
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
    if not fnp._traced(x):
        return _onp.invert(x)
    x = fnp.asarray_traced(x)
    if x.dtype == BOOL:
        return _op("arith.xori", x, True, dtype=BOOL)
    if x.dtype.kind not in "iu":
        raise DTypeError(f"{where_str()}: ~ (invert) of a {x.dtype} array; it needs integers "
                         f"or bools")
    return _op("arith.xori", x, fnp.constant(-1 if x.dtype != U32 else 0xFFFFFFFF, (), x.dtype),
               dtype=x.dtype)


bitwise_not = invert


def _shift(left: bool):
    npfn = _onp.left_shift if left else _onp.right_shift

    def f(x, y):
        if not fnp._traced(x, y):
            return npfn(x, y)
        dtype, a, b = _traced_int_operands(npfn.__name__, x, y)
        width = 64 if dtype == I64 else 32
        name = "arith.shli" if left else ("arith.shrui" if dtype == U32 else "arith.shrsi")
        r = _op(name, a, b, dtype=dtype)
        if isinstance(y, (int, _onp.integer)) and 0 <= int(y) < width:
            return r
        # numpy: shifting by the width or more (or a negative count) gives 0,
        # or -1 for a right shift of a negative number; LLVM gives poison.
        out = bitwise_or(fnp.less(b, 0), fnp.greater_equal(b, width))
        zero = fnp.constant(0, (), dtype)
        fill = (fnp.where(fnp.less(a, 0), fnp.constant(-1, (), dtype), zero)
                if name == "arith.shrsi" else zero)
        return fnp.where(out, fill, r)
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
    if not fnp._traced(x):
        return _onp.asarray(x).view(dtype)
    x = fnp.asarray_traced(x)
    if x.dtype.itemsize != dtype.itemsize:
        raise DTypeError(f"{where_str()}: bitcast from {x.dtype} to {dtype} changes the width")
    return fnp._wrap(fnp._emit("arith.bitcast", [fnp._tensor_type(x.shape, dtype)],
                               [x.value]).result, x.trace, dtype)


# -- casts -------------------------------------------------------------------------------

def astype_int(x: Tracer, dtype) -> Tracer:
    """Casts with an integer or bool on either side (numpy's ``astype``):
    float to integer truncates toward zero; to bool is ``!= 0`` (NaN is
    True); integer to integer wraps or extends by the source's sign."""
    dtype = _onp.dtype(dtype)
    src = x.dtype
    if dtype not in (*INT_DTYPES, BOOL, F32, F64):
        raise DTypeError(f"{where_str()}: astype from {src} to {dtype} is not supported "
                         f"(ferrule computes in float32, float64, int32, int64, uint32 and bool)")
    if src == dtype:
        return x
    t = fnp._tensor_type(x.shape, dtype)

    def emit(name, v=x):
        return fnp._wrap(fnp._emit(name, [t], [v.value]).result, x.trace, dtype)
    if dtype == BOOL:
        if src.kind == "f":
            return fnp.not_equal(x, 0.0)
        return fnp.not_equal(x, fnp.constant(0, (), src))
    if src == BOOL:
        if dtype.kind == "f":
            return fnp.where(x, fnp.constant(1.0, (), dtype), fnp.constant(0.0, (), dtype))
        return emit("arith.extui")
    if src.kind == "f":
        if x.weak:
            x = fnp.astype(x, F64)
        return emit("arith.fptoui" if dtype == U32 else "arith.fptosi", x)
    if dtype.kind == "f":
        return emit("arith.uitofp" if src == U32 else "arith.sitofp")
    sw, dw = src.itemsize, dtype.itemsize
    if sw == dw:   # int32 <-> uint32: the same bits, a new value with the new dtype
        return emit("arith.bitcast")
    if dw > sw:
        return emit("arith.extui" if src == U32 else "arith.extsi")
    return emit("arith.trunci")


# -- constructors --------------------------------------------------------------------------

_CONSTANT_IOTA_MAX = 4096   # longer ranges are computed (linalg.index), not stored


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
    if n <= _CONSTANT_IOTA_MAX or builtins.any(isinstance(v, float) for v in (start, step)):
        return fnp.constant(values.astype(dtype), (n,), dtype)
    return iota((n,), 0, dtype, start=int(start), step=int(step))


def iota(shape, dim: int, dtype, start: int = 0, step: int = 1) -> Tracer:
    """``start + step * index`` along ``dim`` of ``shape``, computed by a
    ``linalg.generic`` reading ``linalg.index`` (no data in the IR)."""
    dtype = _onp.dtype(dtype)
    tr = current_trace()
    elt = mlir_element_type(dtype)
    rank = len(shape)

    def body(a):
        i = create("linalg.index", [ir.IndexType.get()], [],
                   {"dim": ir.IntegerAttr.get(_i(64), dim)}).result
        v = create("arith.index_cast", [_i(64)], [i]).result
        if step != 1:
            v = create("arith.muli", [_i(64)], [v, _iconst(64, step)]).result
        if start:
            v = create("arith.addi", [_i(64)], [v, _iconst(64, start)]).result
        if dtype.kind == "f":
            return [create("arith.sitofp", [elt], [v]).result]
        if elt != _i(64):
            v = create("arith.trunci", [elt], [v]).result
        return [v]
    with user_location():
        op = make_generic([], [empty(shape, elt)], [projection_map(rank, range(rank))],
                          [PARALLEL] * rank, body)
    return fnp._wrap(op.result, tr, dtype)


def _iconst(width, v):
    t = _i(width)
    return create("arith.constant", [t], [], {"value": ir.IntegerAttr.get(t, int(v))}).result


def _fconst(t, v):
    return create("arith.constant", [t], [], {"value": ir.FloatAttr.get(t, float(v))}).result


# -- reductions -----------------------------------------------------------------------------

def _limits(dtype):
    if dtype == U32:
        return 0, 0xFFFFFFFF
    info = _onp.iinfo(dtype)
    return int(info.min), int(info.max)


def reduce_int(x: Tracer, axis, keepdims, kind) -> Tracer:
    """``sum``/``max``/``min`` of an integer (or, for sums, bool) array.
    Sums accumulate in int64 (numpy's dtype for int32, bool; uint64 for
    uint32, which ferrule does not have)."""
    from .layout import _norm_axes, _reshape_to
    if kind == "add":
        x = fnp.astype(x, I64)
    dtype = x.dtype
    axes = _norm_axes(axis, x.ndim)
    if kind != "add" and any(x.shape[d] == 0 for d in axes):
        name = "maximum" if kind == "max" else "minimum"
        raise ShapeError(f"{where_str()}: zero-size array to reduction operation {name} "
                         f"which has no identity")
    kept = [d for d in range(x.ndim) if d not in axes]
    out_shape = tuple(x.shape[d] for d in kept)
    lo, hi = _limits(dtype)
    init = {"add": 0, "max": lo, "min": hi}[kind]
    u = dtype == U32
    body_op = {"add": "arith.addi", "max": "arith.maxui" if u else "arith.maxsi",
               "min": "arith.minui" if u else "arith.minsi"}[kind]
    fill = fnp.constant(init, out_shape, dtype)
    elt = mlir_element_type(dtype)
    with user_location():
        op = make_generic(
            [x.value], [fill.value],
            [projection_map(x.ndim, range(x.ndim)), projection_map(x.ndim, kept)],
            [REDUCTION if d in axes else PARALLEL for d in range(x.ndim)],
            lambda a: [create(body_op, [elt], [a[0], a[1]]).result])
    r = fnp._wrap(op.result, x.trace, dtype)
    if keepdims:
        r = _reshape_to(r, tuple(1 if d in axes else x.shape[d] for d in range(x.ndim)))
    return r


def _arg_reduce(x, axis, keepdims, largest: bool):
    from .layout import _reshape_to
    name = "argmax" if largest else "argmin"
    if not fnp._traced(x):
        fn = _onp.argmax if largest else _onp.argmin
        return fn(x, axis=axis, keepdims=keepdims)
    x = fnp.asarray_traced(x)
    if x.dtype == BOOL:
        x = fnp.astype(x, I32)
    ndim = x.ndim
    if axis is None:
        y, ax = fnp.reshape(x, (-1,)), 0
    else:
        ax = int(axis)
        if not -ndim <= ax < ndim:
            raise ShapeError(f"{where_str()}: axis {ax} is out of bounds for array of "
                             f"dimension {ndim}")
        ax %= ndim
        y = x
    n = y.shape[ax]
    if n == 0:
        raise ShapeError(f"{where_str()}: attempt to get {name} of an empty sequence")
    dtype = y.dtype
    elt = mlir_element_type(dtype)
    kept = [d for d in range(y.ndim) if d != ax]
    out_shape = tuple(y.shape[d] for d in kept)
    idx = arange(n) if n <= _CONSTANT_IOTA_MAX else iota((n,), 0, I64)
    if dtype.kind == "f":
        start = fnp.constant(-_onp.inf if largest else _onp.inf, out_shape, dtype)
    else:
        lo, hi = _limits(dtype)
        start = fnp.constant(lo if largest else hi, out_shape, dtype)
    first = fnp.constant(0, out_shape, I64)
    i1 = _i(1)

    def cmp(name, pred, a, b):
        return create(name, [i1], [a, b], {"predicate": ir.IntegerAttr.get(_i(64), pred)}).result

    def body(a):
        v, k, m, best = a
        if dtype.kind == "f":
            # strictly better, or the first NaN (numpy: a NaN wins, the first one)
            better = cmp("arith.cmpf", 2 if largest else 4, v, m)       # ogt / olt
            nan_v = cmp("arith.cmpf", 14, v, v)                          # uno
            m_ok = cmp("arith.cmpf", 7, m, m)                            # ord
            better = create("arith.ori", [i1], [better, create("arith.andi", [i1],
                                                                 [nan_v, m_ok]).result]).result
        else:
            pred = (8 if largest else 6) if dtype == U32 else (4 if largest else 2)
            better = cmp("arith.cmpi", pred, v, m)
        return [create("arith.select", [elt], [better, v, m]).result,
                create("arith.select", [_i(64)], [better, k, best]).result]
    with user_location():
        op = make_generic(
            [y.value, idx.value], [start.value, first.value],
            [projection_map(y.ndim, range(y.ndim)), projection_map(y.ndim, [ax]),
             projection_map(y.ndim, kept), projection_map(y.ndim, kept)],
            [REDUCTION if d == ax else PARALLEL for d in range(y.ndim)], body)
    r = fnp._wrap(op.results[1], x.trace, I64)
    if keepdims:
        r = _reshape_to(r, (1,) * ndim if axis is None
                        else tuple(1 if d == ax else x.shape[d] for d in range(ndim)))
    return r


def argmax(x, axis=None, keepdims=False):
    """numpy ``argmax``: the index (int64) of the largest element along
    ``axis`` (of the flattened array for ``axis=None``); the first one on
    ties; the first NaN if there is one (as numpy)."""
    return _arg_reduce(x, axis, keepdims, True)


def argmin(x, axis=None, keepdims=False):
    """numpy ``argmin`` (int64; first occurrence; the first NaN wins)."""
    return _arg_reduce(x, axis, keepdims, False)


# -- clip ------------------------------------------------------------------------------------

def clip(x, lo=None, hi=None):
    """numpy ``clip(x, lo, hi)`` = ``minimum(maximum(x, lo), hi)`` (either
    bound may be None). Derivative with respect to ``x``: 1 where
    ``lo <= x <= hi`` (at a bound too, as PyTorch's ``clamp``), 0 outside,
    NaN at a NaN ``x``; the bound that is chosen gets the derivative there."""
    if not fnp._traced(x, lo, hi):
        return _onp.clip(x, lo, hi)
    if lo is None and hi is None:
        raise ValueError(f"{where_str()}: clip needs at least one of lo, hi")
    x = fnp.asarray_traced(x)
    r = x
    if promote(x, *(b for b in (lo, hi) if b is not None)).kind == "f" and x.dtype.kind == "f":
        # x * (1, or NaN at a NaN x): the derivative is NaN there (NaN in, NaN out)
        r = fnp.multiply(x, fnp.where(fnp.equal(x, x), 1.0, fnp.nan))
    if lo is not None:
        r = fnp.where(fnp.less(x, lo), lo, r)
    if hi is not None:
        r = fnp.where(fnp.greater(r, hi), hi, r)
    return r
