"""Broadcasting, reshapes, transposes, reductions and matmul for traced arrays.

Part of ``ferrule.numpy`` (re-exported there). Transposes are
``linalg.generic`` ops reading through permutation maps, so they fuse into
pointwise regions (broadcasts too: :func:`ferrule.core.broadcast_to`);
reshapes are ``tensor.collapse_shape`` / ``expand_shape``; reductions
(``sum``, ``max``, ``min``, and ``argmax``/``argmin``, which give int64
indices) are generics with reduction iterators; matmul is ``linalg.matmul``.
"""

import operator

import numpy as _onp
from mlir.dialects import linalg as linalg_d

from mlir import ir

from .core import (asarray_traced, astype, broadcast_to, constant, promoted_dtype,
                   reshape_to, stack, traced, wrap)
from .dialect.ir_utils import (PARALLEL, REDUCTION, cmpf, create, empty, make_generic,
                               projection_map)
from .dtypes import I32, I64, U32
from .elementwise import CMPI, CONSTANT_IOTA_MAX, arange, iota, multiply
from .errors import DTypeError, ShapeError
from .narrow import is_float
from .tracing import check_trace, mlir_element_type, user_location, where_str

# -- layout ---------------------------------------------------------------------

def reshape(x, shape):
    """numpy ``reshape`` (one ``-1`` allowed)."""
    if isinstance(shape, int):
        shape = (shape,)
    shape = tuple(int(s) for s in shape)
    if not traced(x):
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
    return reshape_to(x, shape)


def transpose(x, axes=None):
    """numpy ``transpose``: a ``linalg.generic`` with a permutation map."""
    if not traced(x):
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
    return wrap(op.result, x.trace)


def swapaxes(x, a, b):
    axes = list(range(_onp.ndim(x) if not traced(x) else x.ndim))
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


def _limits(dtype):
    """The smallest and largest value of integer ``dtype``."""
    if dtype == U32:
        return 0, 0xFFFFFFFF
    info = _onp.iinfo(dtype)
    return int(info.min), int(info.max)


def _reduction_op(kind, dtype):
    """(start value, body op) of a ``kind`` reduction of ``dtype``."""
    if is_float(dtype):
        return ({"add": 0.0, "max": -_onp.inf, "min": _onp.inf}[kind],
                {"add": "arith.addf", "max": "arith.maximumf", "min": "arith.minimumf"}[kind])
    lo, hi = _limits(dtype)
    u = dtype == U32
    return ({"add": 0, "max": lo, "min": hi}[kind],
            {"add": "arith.addi", "max": "arith.maxui" if u else "arith.maxsi",
             "min": "arith.minui" if u else "arith.minsi"}[kind])


def _reduce(x, axis, keepdims, kind):
    x = asarray_traced(x)
    if x.dtype == _onp.bool_ and kind != "add":
        raise DTypeError(f"{where_str()}: {kind} of a bool array is not supported")
    if kind == "add" and x.dtype.kind in "biu":
        # Sums of integers accumulate in int64 (numpy's dtype for int32 and
        # bool: a count; uint64 for uint32, which ferrule does not have).
        x = astype(x, I64)
    axes = _norm_axes(axis, x.ndim)
    if kind in ("max", "min") and any(x.shape[d] == 0 for d in axes):
        raise ShapeError(f"{where_str()}: zero-size array to reduction operation "
                         f"{'maximum' if kind == 'max' else 'minimum'} which has no identity")
    kept = [d for d in range(x.ndim) if d not in axes]
    out_shape = tuple(x.shape[d] for d in kept)
    elt = mlir_element_type(x.dtype)
    init_val, body_op = _reduction_op(kind, x.dtype)
    fill = constant(init_val, out_shape, x.dtype)
    with user_location():
        op = make_generic(
            [x.value], [fill.value],
            [projection_map(x.ndim, range(x.ndim)), projection_map(x.ndim, kept)],
            [REDUCTION if d in axes else PARALLEL for d in range(x.ndim)],
            lambda a: [create(body_op, [elt], [a[0], a[1]]).result])
    r = wrap(op.result, x.trace, x.dtype)
    if keepdims:
        r = reshape_to(r, tuple(1 if d in axes else x.shape[d] for d in range(x.ndim)))
    return r


def sum(x, axis=None, keepdims=False):
    """numpy ``sum``: a ``linalg.generic`` with reduction iterators."""
    if not traced(x):
        return _onp.sum(x, axis=axis, keepdims=keepdims)
    return _reduce(x, axis, keepdims, "add")


def max(x, axis=None, keepdims=False):
    """numpy ``max`` (``amax``)."""
    if not traced(x):
        return _onp.max(x, axis=axis, keepdims=keepdims)
    return _reduce(x, axis, keepdims, "max")


amax = max


def min(x, axis=None, keepdims=False):
    """numpy ``min`` (``amin``); derivative conventions as ``max``: the
    cotangent is split among tied minima, NaN in gives NaN out."""
    if not traced(x):
        return _onp.min(x, axis=axis, keepdims=keepdims)
    return _reduce(x, axis, keepdims, "min")


amin = min


def _arg_reduce(x, axis, keepdims, largest: bool):
    name = "argmax" if largest else "argmin"
    if not traced(x):
        fn = _onp.argmax if largest else _onp.argmin
        return fn(x, axis=axis, keepdims=keepdims)
    x = asarray_traced(x)
    if x.dtype == _onp.bool_:
        x = astype(x, I32)
    ndim = x.ndim
    if axis is None:
        y, ax = reshape(x, (-1,)), 0
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
    idx = arange(n) if n <= CONSTANT_IOTA_MAX else iota((n,), 0, I64)
    if is_float(dtype):
        start = constant(-_onp.inf if largest else _onp.inf, out_shape, dtype)
    else:
        lo, hi = _limits(dtype)
        start = constant(lo if largest else hi, out_shape, dtype)
    first = constant(0, out_shape, I64)
    i1, i64 = ir.IntegerType.get_signless(1), ir.IntegerType.get_signless(64)

    def body(a):
        v, k, m, best = a
        if is_float(dtype):
            # strictly better, or the first NaN (numpy: a NaN wins, the first one)
            better = cmpf("ogt" if largest else "olt", v, m)
            nan_v = cmpf("uno", v, v)
            m_ok = cmpf("ord", m, m)
            better = create("arith.ori", [i1], [better, create("arith.andi", [i1],
                                                                 [nan_v, m_ok]).result]).result
        else:
            pred = CMPI["greater" if largest else "less"][1 if dtype == U32 else 0]
            better = create("arith.cmpi", [i1], [v, m],
                            {"predicate": ir.IntegerAttr.get(i64, pred)}).result
        return [create("arith.select", [elt], [better, v, m]).result,
                create("arith.select", [i64], [better, k, best]).result]
    with user_location():
        op = make_generic(
            [y.value, idx.value], [start.value, first.value],
            [projection_map(y.ndim, range(y.ndim)), projection_map(y.ndim, [ax]),
             projection_map(y.ndim, kept), projection_map(y.ndim, kept)],
            [REDUCTION if d == ax else PARALLEL for d in range(y.ndim)], body)
    r = wrap(op.results[1], x.trace, I64)
    if keepdims:
        r = reshape_to(r, (1,) * ndim if axis is None
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


def mean(x, axis=None, keepdims=False):
    """numpy ``mean``: ``sum`` times ``1/N``; a list or tuple of (traced)
    arrays is their ``stack``, as numpy makes it one array.

    Derivative: linear, ``sum``'s times ``1/N``."""
    if isinstance(x, (list, tuple)) and traced(*x):
        x = stack(x)
    if not traced(x):
        return _onp.mean(x, axis=axis, keepdims=keepdims)
    x = asarray_traced(x)
    n = int(_onp.prod([x.shape[a] for a in _norm_axes(axis, x.ndim)], dtype=_onp.int64))
    return multiply(sum(x, axis, keepdims), 1.0 / n if n else _onp.nan)


# -- matmul -------------------------------------------------------------------------

def matmul(a, b):
    """numpy ``matmul``: 1-D and 2-D operands (``linalg.matmul``), and stacks
    of matrices with numpy's broadcasting of the leading (batch) dimensions
    (``linalg.batch_matmul`` over the flattened batch)."""
    if not traced(a, b):
        return _onp.matmul(a, b)
    tr = check_trace(a, b)
    dtype = promoted_dtype(a, b)
    a, b = asarray_traced(a), asarray_traced(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"{where_str()}: matmul of a 0-d array; use * instead")
    a2 = reshape(a, (1, a.shape[0])) if a.ndim == 1 else a
    b2 = reshape(b, (b.shape[0], 1)) if b.ndim == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise ShapeError(f"{where_str()}: matmul shapes {a.shape} and {b.shape} do not "
                         f"align ({a2.shape[-1]} != {b2.shape[-2]})")
    try:
        batch = tuple(_onp.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]))
    except ValueError:
        raise ShapeError(f"{where_str()}: matmul shapes {a.shape} and {b.shape}: batch "
                         f"dimensions {a2.shape[:-2]} and {b2.shape[:-2]} do not "
                         f"broadcast") from None
    a2, b2 = astype(a2, dtype), astype(b2, dtype)
    (m, k), n = a2.shape[-2:], b2.shape[-1]
    if batch and b2.ndim == 2:
        # A stack of matrices times one matrix is one 2-D product over all
        # the stack's rows (and its gradients are 2-D products too).
        rows = int(_onp.prod(a2.shape[:-1], dtype=_onp.int64))
        zero = constant(0.0, (rows, n), dtype)
        with user_location():
            r = linalg_d.matmul(reshape(a2, (rows, k)).value, b2.value, outs=[zero.value])
    elif batch:
        nb = int(_onp.prod(batch, dtype=_onp.int64))
        a3, b3 = (reshape(v if v.shape[:-2] == batch else broadcast_to(v, batch + v.shape[-2:]),
                          (nb,) + v.shape[-2:]) for v in (a2, b2))
        zero = constant(0.0, (nb, m, n), dtype)
        with user_location():
            r = linalg_d.batch_matmul(a3.value, b3.value, outs=[zero.value])
    else:
        zero = constant(0.0, (m, n), dtype)
        with user_location():
            r = linalg_d.matmul(a2.value, b2.value, outs=[zero.value])
    res = wrap(r, tr, dtype)
    final = batch + tuple(s for s, keep in zip((m, n), (a.ndim >= 2, b.ndim >= 2)) if keep)
    return reshape(res, final)


def dot(a, b):
    """numpy ``dot``: a product with a 0-d operand is ``*``; for 1-D and 2-D
    operands, and an N-D ``a`` with a 1-D or 2-D ``b``, it is ``matmul``;
    for ``b`` of 3 or more dimensions it sums over the last axis of ``a``
    and the second-to-last of ``b`` (``dot(a, b)[i, j, k, m] = sum(a[i, j,
    :] * b[k, :, m])``), computed as one 2-D matmul."""
    if not traced(a, b):
        return _onp.dot(a, b)
    a, b = asarray_traced(a), asarray_traced(b)
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    if b.ndim <= 2:
        return matmul(a, b)
    k = b.shape[-2]
    if a.shape[-1] != k:
        raise ShapeError(f"{where_str()}: dot shapes {a.shape} and {b.shape} do not align "
                         f"({a.shape[-1]} (dim {a.ndim - 1}) != {k} (dim {b.ndim - 2}))")
    axes = (b.ndim - 2, *range(b.ndim - 2), b.ndim - 1)
    bt = reshape(transpose(b, axes), (k, -1))               # (K, J*N)
    r = matmul(reshape(a, (-1, k)), bt)                     # (A, J*N)
    return reshape(r, a.shape[:-1] + b.shape[:-2] + b.shape[-1:])
