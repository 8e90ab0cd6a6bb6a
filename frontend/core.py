"""The plumbing every traced op builds on: values in, ops out.

* Python values to traced arrays: :func:`asarray_traced` (numpy arrays and
  scalars become constants, nested lists of arrays are stacked),
  :func:`constant`, and the trace checks;
* numpy's dtype promotion (weakly typed Python scalars, as numpy 2; the
  rules, integers included, are in :mod:`ferrule.dtypes`) and
  broadcasting: :func:`promoted_dtype`, :func:`broadcast_shapes`,
  :func:`broadcast_to`, and :func:`elementwise`, which emits one elementwise
  ``arith``/``math`` op on operands brought to one shape and dtype (the
  integer op for integers);
* the structural ops the plumbing itself needs: :func:`astype` (casts
  between every pair of dtypes),
  :func:`reshape_to`, slices and :func:`concatenate`/:func:`stack`;
* :func:`trace_into`: a Python function traced into a new ``func.func``.

The op modules (:mod:`ferrule.elementwise`, :mod:`ferrule.layout`,
:mod:`ferrule.indexing`) import this one; :mod:`ferrule.numpy` gathers them.
Every op is emitted at the user's source line (:func:`emit`).
"""

from typing import Callable, List

import numpy as _onp
from mlir import ir

from .dialect import ir_utils
from .dialect.ir_utils import cmpf_attrs, create, empty, make_generic, PARALLEL, projection_map
from .dtypes import (BOOL, F32, F64, INT_DTYPES, U32, all_weak, int_attr, int_constant_array,
                     int_op, promoted_dtype)
from .errors import DTypeError, ShapeError, TracingError
from .narrow import is_narrow
from .pytree import flatten, unflatten
from .tracing import (DTYPE_NAMES, Trace, Tracer, TypedArg, abi_element_type, active,
                      check_trace, current_trace, fresh_name, mlir_element_type, numpy_dtype,
                      user_location, where_str)


def traced(*xs) -> bool:
    """True when any of ``xs`` is a traced array (else the op is plain numpy)."""
    return any(isinstance(x, Tracer) for x in xs)


def tensor_type(shape, dtype) -> ir.RankedTensorType:
    return ir.RankedTensorType.get(list(shape), mlir_element_type(dtype))


def wrap(value: ir.Value, tr, dtype=None) -> Tracer:
    """A Tracer over ``value``; ``dtype`` says uint32 for an ``i32`` value
    (other dtypes follow from the type, uint32 from the operands too)."""
    return Tracer(value, tr, dtype)


def emit(name, result_types, operands, attrs=None) -> ir.Operation:
    """Create op ``name`` at the user's current source line."""
    with user_location():
        return create(name, result_types, operands, attrs)


# -- Python values to traced arrays ----------------------------------------------

def constant(value, shape=(), dtype=_onp.float32) -> Tracer:
    """A constant array (splat when ``value`` is a scalar). A narrow one
    holds ``value`` rounded to its dtype, in float32."""
    tr = current_trace()
    dtype = _onp.dtype(dtype)
    if is_narrow(dtype):
        arr = _onp.asarray(_onp.asarray(value, dtype=dtype), dtype=_onp.float32)
        return wrap(constant(arr, shape, _onp.float32).value, tr, dtype)
    t = tensor_type(shape, dtype)
    arr = _onp.asarray(value, dtype=dtype)
    if dtype.kind in "iu":
        return wrap(emit("arith.constant", [t], [], {"value": int_attr(arr, shape, t)}).result,
                    tr, dtype)
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
    return wrap(emit("arith.constant", [t], [], {"value": attr}).result, tr)


def zeros_value(t: ir.Type) -> ir.Value:
    """A splat zero of tensor type ``t`` (a symbolic zero for the passes)."""
    rt = ir.RankedTensorType(t)
    return constant(0.0, tuple(rt.shape), numpy_dtype(rt.element_type)).value


def asarray_traced(x, tr=None, captured: bool = True) -> Tracer:
    """``x`` as a Tracer in the current trace (numpy arrays become constants).

    ``captured``: ``x`` came from the user's code (a global, a closure, an
    argument of an op), not from ferrule's own: a non-scalar numpy array
    constant is then marked ``ferrule.captured``, which ``explain()``
    reports (it is baked into the code; docs/errors.md)."""
    tr = tr or current_trace()
    if isinstance(x, Tracer):
        check_trace(x)
        return tr.capture(x) if tr is not None and x.trace is not tr else x
    if isinstance(x, (list, tuple)):
        if any(isinstance(v, (Tracer, list, tuple)) for v in x):
            return stack([asarray_traced(v) for v in x], axis=0)  # numpy's asarray
        x = _onp.asarray(x)
    if isinstance(x, (bool, int, float, _onp.generic)) or isinstance(x, _onp.ndarray):
        arr = _onp.asarray(x)
        if is_narrow(arr.dtype):   # float16/bfloat16: kept narrow (in float32)
            return constant(arr, arr.shape, arr.dtype)
        if arr.dtype.kind not in "biuf":
            raise DTypeError(f"{where_str()}: a constant of dtype {arr.dtype} cannot be "
                             f"used in a traced function ({DTYPE_NAMES} only)")
        if isinstance(x, _onp.ndarray) or (isinstance(x, _onp.generic) and arr.dtype.kind in "iu"):
            arr = int_constant_array(arr)  # integer arrays keep an integer dtype
        if arr.dtype not in (F32, F64, BOOL, *INT_DTYPES):
            arr = arr.astype(_onp.float32 if arr.dtype.kind in "iu" else _onp.float64)
        c = constant(arr, arr.shape, arr.dtype)
        if captured and isinstance(x, _onp.ndarray) and x.size > 1:
            c.value.owner.attributes["ferrule.captured"] = ir.UnitAttr.get()
        return c
    raise TracingError(f"{where_str()}: cannot use {type(x).__name__} as an array "
                       f"in a traced function")


# -- promotion and broadcasting ------------------------------------------------------

def broadcast_shapes(*shapes):
    try:
        return tuple(_onp.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(f"{where_str()}: shapes {', '.join(map(str, shapes))} "
                         f"cannot be broadcast together") from None


def shape_of(x):
    """The shape of an array or Tracer; ``()`` for a Python scalar."""
    return tuple(x.shape) if isinstance(x, (Tracer, _onp.ndarray, _onp.generic)) else ()


def operand(x, shape, dtype) -> Tracer:
    """``x`` converted to a Tracer of exactly ``shape`` and ``dtype``."""
    if not isinstance(x, (Tracer, _onp.ndarray, _onp.generic)):  # Python scalar: splat
        return constant(x, shape, dtype)
    t = asarray_traced(x)
    if t.dtype != dtype:
        t = astype(t, dtype)
    return broadcast_to(t, shape)


_OPERAND_TYPES = (Tracer, _onp.ndarray, _onp.generic, bool, int, float, list, tuple)


def check_operands(name: str, xs) -> None:
    """A :class:`DTypeError` at the user's line for an operand that is not
    an array or a number (a string, None, a dict...): numpy would raise its
    own error from inside its files, or read a numeric string as a number."""
    for x in xs:
        if not isinstance(x, _OPERAND_TYPES):
            raise DTypeError(f"{where_str()}: {name.split('.')[-1]} got an operand of type "
                             f"{type(x).__name__} ({x!r:.40}); operands of traced ops are "
                             f"arrays or numbers")


def elementwise(name, *xs, dtype=None, result_dtype=None, attrs=None) -> Tracer:
    """Emit the elementwise op ``name`` on ``xs`` broadcast to one shape and
    promoted to one dtype (``dtype``; the result's is ``result_dtype``). On
    integers a float op becomes the integer op (:func:`ferrule.dtypes.int_op`).
    The result is weakly typed when ``xs`` are (a Python float argument and
    Python scalars)."""
    tr = check_trace(*xs)
    check_operands(name, xs)
    dtype = dtype or promoted_dtype(*xs)
    shape = broadcast_shapes(*(shape_of(x) for x in xs))
    if _onp.dtype(dtype).kind in "iu":   # the integer op, or a float one on converted ints
        name, dtype, attrs = int_op(name, dtype, attrs)
    ops = [operand(x, shape, dtype) for x in xs]
    rt = tensor_type(shape, result_dtype or dtype)
    r = wrap(emit(name, [rt], [o.value for o in ops], attrs).result, tr, result_dtype or dtype)
    r.weak = result_dtype is None and all_weak(*xs)
    return r


def astype(x, dtype):
    """Convert between float32 and float64 (``arith.extf`` / ``truncf``), from
    bool to either (``where(x, 1, 0)``, so AD sees a select), and with an
    integer or bool on either side (:func:`_astype_int`). A weakly typed
    value converted to its own dtype becomes strongly typed. float16 and
    bfloat16 (computed in float32): to one rounds (:func:`_round_narrow`),
    from one starts from its float32 value (:func:`_unlabel`)."""
    dtype = _onp.dtype(dtype)
    if not traced(x):
        # x.astype keeps array wrappers of other ADs (ferrule.eager) in play
        return x.astype(dtype) if hasattr(x, "astype") else _onp.asarray(x).astype(dtype)
    x = asarray_traced(x)
    if x.dtype == dtype:
        return x if not x.weak else wrap(x.value, x.trace)   # the same value, strongly typed
    if not is_narrow(dtype) and dtype not in (*INT_DTYPES, BOOL, F32, F64):
        raise DTypeError(f"{where_str()}: astype from {x.dtype} to {dtype} is not supported "
                         f"(ferrule computes in {DTYPE_NAMES})")
    if is_narrow(x.dtype):
        return astype(_unlabel(x), dtype)
    if is_narrow(dtype):
        return _round_narrow(astype(x, _onp.float32), dtype)
    if dtype.kind in "iub" or x.dtype.kind in "iu":
        return _astype_int(x, dtype)
    if dtype not in (_onp.float32, _onp.float64):
        raise DTypeError(f"{where_str()}: astype from {x.dtype} to {dtype} is not supported "
                         f"(ferrule computes in float32 and float64)")
    if x.dtype == _onp.bool_:
        one, zero = constant(1.0, x.shape, dtype), constant(0.0, x.shape, dtype)
        return wrap(emit("arith.select", [tensor_type(x.shape, dtype)],
                         [x.value, one.value, zero.value]).result, x.trace)
    name = "arith.extf" if dtype == _onp.float64 else "arith.truncf"
    return wrap(emit(name, [tensor_type(x.shape, dtype)], [x.value]).result, x.trace)


def _unlabel(x: Tracer) -> Tracer:
    """A narrow array as the float32 array it is computed as: a new value
    (``x + -0.0``, which is ``x`` and folds away), since a value's narrow
    dtype is recorded by value (:class:`~ferrule.tracing.Trace`)."""
    zero = constant(-0.0, (), _onp.float32)
    return elementwise("arith.addf", wrap(x.value, x.trace, _onp.float32), zero,
                       dtype=_onp.float32)


def _round_narrow(x: Tracer, dtype) -> Tracer:
    """float32 ``x`` rounded to narrow ``dtype`` (``arith.truncf``, to
    nearest even) and back (``arith.extf``, exact): later ops see the
    rounded value, as they would read it from a narrow array."""
    narrow_t = ir.RankedTensorType.get(list(x.shape), abi_element_type(dtype))
    r = emit("arith.truncf", [narrow_t], [x.value]).result
    back = emit("arith.extf", [tensor_type(x.shape, _onp.float32)], [r]).result
    return wrap(back, x.trace, dtype)


def broadcast_to(x, shape):
    """numpy ``broadcast_to``: a ``linalg.generic`` reading ``x`` through a
    projection map (size-1 axes are first collapsed away)."""
    shape = tuple(int(s) for s in shape)
    if not traced(x):
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
        src = reshape_to(x, tuple(x.shape[i] for i in kept))
    dims = [lead + i for i in kept]
    elt = mlir_element_type(x.dtype)
    with user_location():
        init = empty(shape, elt)
        op = make_generic([src.value], [init],
                          [projection_map(len(shape), dims), projection_map(len(shape), range(len(shape)))],
                          [PARALLEL] * len(shape), lambda a: [a[0]])
    return wrap(op.result, x.trace)


def _astype_int(x: Tracer, dtype) -> Tracer:
    """Casts with an integer or bool on either side (numpy's ``astype``):
    float to integer truncates toward zero; to bool is ``!= 0`` (NaN is
    True); integer to integer wraps or extends by the source's sign."""
    src = x.dtype
    if dtype not in (*INT_DTYPES, BOOL, F32, F64):
        raise DTypeError(f"{where_str()}: astype from {src} to {dtype} is not supported "
                         f"(ferrule computes in float32, float64, int32, int64, uint32 and bool)")
    t = tensor_type(x.shape, dtype)

    def emit_cast(name, v=x):
        return wrap(emit(name, [t], [v.value]).result, x.trace, dtype)
    if dtype == BOOL:
        if src.kind == "f":   # != 0.0, unordered: NaN is True
            return elementwise("arith.cmpf", x, 0.0, result_dtype=BOOL, attrs=cmpf_attrs("une"))
        ne = {"predicate": ir.IntegerAttr.get(ir.IntegerType.get_signless(64), 1)}
        return elementwise("arith.cmpi", x, constant(0, (), src), dtype=src, result_dtype=BOOL,
                           attrs=ne)
    if src == BOOL:   # to an integer (to a float: astype's select)
        return emit_cast("arith.extui")
    if src.kind == "f":
        if x.weak:
            x = astype(x, F64)
        return emit_cast("arith.fptoui" if dtype == U32 else "arith.fptosi", x)
    if dtype.kind == "f":
        return emit_cast("arith.uitofp" if src == U32 else "arith.sitofp")
    sw, dw = src.itemsize, dtype.itemsize
    if sw == dw:   # int32 <-> uint32: the same bits, a new value with the new dtype
        return emit_cast("arith.bitcast")
    if dw > sw:
        return emit_cast("arith.extui" if src == U32 else "arith.extsi")
    return emit_cast("arith.trunci")


# -- reshapes ----------------------------------------------------------------------

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


def reshape_to(x: Tracer, shape) -> Tracer:
    """Reshape with static tensor ops. Adding or removing size-1 axes collapses
    and expands exactly those (valid on strided slices too); other reshapes
    collapse to 1-D and expand, which canonicalisation folds where it can."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    elt = mlir_element_type(x.dtype)

    def collapse(v, groups, to):
        return emit("tensor.collapse_shape", [ir.RankedTensorType.get(list(to), elt)],
                    [v], {"reassociation": _reassoc(groups)}).result

    def expand(v, groups, to):
        return emit("tensor.expand_shape", [ir.RankedTensorType.get(list(to), elt)], [v],
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
    return wrap(v, x.trace, x.dtype)   # (v may be two ops from x: say its dtype)


# -- slices and concatenation ------------------------------------------------------

def extract_slice(x: Tracer, offsets, sizes, strides, result_shape) -> Tracer:
    """``tensor.extract_slice`` of ``x`` (static positions)."""
    t = ir.RankedTensorType.get(list(result_shape), mlir_element_type(x.dtype))
    with user_location():
        return Tracer(ir_utils.extract_slice(x.value, t, offsets, sizes, strides), x.trace)


def insert_slice(src: Tracer, dest: Tracer, offsets, sizes, strides) -> Tracer:
    """``tensor.insert_slice`` of ``src`` into ``dest`` (static positions)."""
    with user_location():
        return Tracer(ir_utils.insert_slice(src.value, dest.value, offsets, sizes, strides),
                      dest.trace)


def normalize_axis(axis, ndim) -> int:
    """``axis`` normalised to ``0..ndim-1``; a ShapeError when out of bounds."""
    a = int(axis)
    if not -ndim <= a < ndim:
        raise ShapeError(f"{where_str()}: axis {a} is out of bounds for an array of "
                         f"dimension {ndim}")
    return a % ndim


def concatenate(arrays, axis=0):
    """numpy ``concatenate`` along ``axis``: a chain of ``tensor.insert_slice``
    into a ``tensor.empty``."""
    arrays = list(arrays)
    if not any(isinstance(a, Tracer) for a in arrays):
        return _onp.concatenate(arrays, axis=axis)
    dtype = promoted_dtype(*arrays)
    xs = [astype(asarray_traced(a), dtype) for a in arrays]
    nd = xs[0].ndim
    if nd == 0:
        raise ShapeError(f"{where_str()}: zero-dimensional arrays cannot be concatenated")
    axis = normalize_axis(axis, nd)
    for a in xs:
        if a.ndim != nd or any(a.shape[k] != xs[0].shape[k] for k in range(nd) if k != axis):
            raise ShapeError(f"{where_str()}: concatenate shapes "
                             f"{[t.shape for t in xs]} differ off axis {axis}")
    total = sum(a.shape[axis] for a in xs)
    out_shape = list(xs[0].shape)
    out_shape[axis] = total
    with user_location():
        dest = Tracer(empty(out_shape, mlir_element_type(dtype)), xs[0].trace)
    off = 0
    for a in xs:
        offsets = [0] * nd
        offsets[axis] = off
        dest = insert_slice(a, dest, offsets, a.shape, [1] * nd)
        off += a.shape[axis]
    return dest


def stack(arrays, axis=0):
    """numpy ``stack``: new axis, then concatenate."""
    arrays = list(arrays)
    if not any(isinstance(a, Tracer) for a in arrays):
        return _onp.stack(arrays, axis=axis)
    xs = [asarray_traced(a) for a in arrays]
    axis = normalize_axis(axis, xs[0].ndim + 1)
    if any(a.shape != xs[0].shape for a in xs):
        raise ShapeError(f"{where_str()}: stack needs arrays of one shape, got "
                         f"{[a.shape for a in xs]}")
    exp = [reshape_to(a, a.shape[:axis] + (1,) + a.shape[axis:]) for a in xs]
    return concatenate(exp, axis)


# -- tracing a function ------------------------------------------------------------

class TraceResult(tuple):
    """``(func_name, out_struct, out_types)``; ``.captures`` lists the arrays
    of enclosing traces the function closed over, which follow the declared
    arguments in its signature (the caller passes them); ``.out_dtypes`` the
    results' dtypes (uint32 results are ``i32`` in the IR)."""
    captures: List[Tracer] = []
    out_dtypes: List[_onp.dtype] = []


def trace_into(module: ir.Module, fn: Callable, arg_tree, name: str,
               private: bool = False, narrow_abi: bool = False) -> TraceResult:
    """Trace ``fn`` called on ``arg_tree`` into a new func in ``module``.

    ``arg_tree`` leaves are ``ir.Type`` or :class:`~ferrule.tracing.TypedArg`
    (becoming func arguments) or Python values passed through unchanged
    (static). Returns a :class:`TraceResult`. A weakly typed result (a
    Python float argument returned as it is) becomes float32, the default
    float.

    A ``TypedArg`` of a narrow dtype whose type is ``f16``/``bf16`` is
    converted to float32 on entry (``arith.extf``, exact). ``narrow_abi``
    (a compiled function's boundary): float16/bfloat16 results are returned
    narrow (``arith.truncf``), as ``out_types`` then say; otherwise they stay
    float32 values that say their dtype (``out_dtypes``).
    """
    leaves, struct = flatten(arg_tree)
    arg_types = [l.type if isinstance(l, TypedArg) else l for l in leaves
                 if isinstance(l, (ir.Type, TypedArg))]
    name = fresh_name(module, name)
    tr = Trace(module, name, arg_types, private=private)
    with active(tr):
        it = iter(tr.block.arguments)
        with ir.InsertionPoint(tr.block):
            call_leaves = [_entry_tracer(next(it), tr, l) if isinstance(l, TypedArg)
                           else Tracer(next(it), tr) if isinstance(l, ir.Type) else l
                           for l in leaves]
        args = unflatten(struct, call_leaves)
        with ir.InsertionPoint(tr.block):
            out = fn(*args)
        out_leaves, out_struct = flatten(out)
        with tr.ip, user_location():
            traced = [strong(asarray_traced(o, tr)) for o in out_leaves]
            results = [_narrow_result(t) if narrow_abi and is_narrow(t.dtype) else t.value
                       for t in traced]
        tr.finish(results, ir.Location.unknown())
    res = TraceResult((name, out_struct, [r.type for r in results]))
    res.captures = list(tr.captures)
    res.out_dtypes = [t.dtype for t in traced]
    return res


def _entry_tracer(arg: ir.Value, tr: Trace, l: TypedArg) -> Tracer:
    """The Tracer of a ``TypedArg`` argument: a narrow one stored narrow is
    extended to the float32 it is computed in."""
    if is_narrow(l.dtype) and str(ir.RankedTensorType(arg.type).element_type) != "f32":
        shape = list(ir.RankedTensorType(arg.type).shape)
        arg = emit("arith.extf", [tensor_type(shape, _onp.float32)], [arg]).result
    return Tracer(arg, tr, l.dtype, l.weak)


def _narrow_result(t: Tracer) -> ir.Value:
    """A narrow result stored narrow: its float32 value rounded
    (``arith.truncf``, to nearest even)."""
    narrow_t = ir.RankedTensorType.get(list(t.shape), abi_element_type(t.dtype))
    return emit("arith.truncf", [narrow_t], [t.value]).result


def strong(t: Tracer) -> Tracer:
    """A weakly typed traced float (a Python float argument) as a float32
    array; any other array unchanged."""
    if isinstance(t, Tracer) and t.weak:
        return astype(t, _onp.float32)
    return t
