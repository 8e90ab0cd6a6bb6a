"""Gathers: ``take``, ``take_along_axis`` and integer-array indexing.

Each is one ``ad.gather`` op (``out[p, j, q] = table[p, idx[j], q]``), whose
derivative rules (a gather of the tangent; an ``ad.scatter_add`` of the
cotangent) are entries of ``passes/support/op_rules.py``. Indexing with several
integer arrays, and ``take_along_axis``, gather from the table reshaped so
that the indexed axes are one, at a linear index computed here. A numpy
boolean mask as an index is its ``nonzero()`` arrays (:func:`expand_masks`):
static indices; a traced mask would give a data-dependent shape, an error.

Out-of-range indices: numpy raises ``IndexError``. Indices known while
tracing (numpy arrays, lists, Python ints) are checked here and raise
:class:`~ferrule.errors.ShapeError` (an ``IndexError`` too); traced
indices cannot be checked by compiled code, so they are, as in JAX,
*clamped*: a negative index ``i`` counts from the end (``i + n``), then
anything outside ``[0, n)`` reads the nearest end. The derivative follows
what was read (the clamped element gets the cotangent).
"""

import builtins

import numpy as _onp

from .core import asarray_traced, astype, broadcast_to, check_trace, constant, traced, wrap
from .dialect import builders
from .dtypes import I64
from .elementwise import add, greater, less, multiply, not_equal, where
from .errors import (DTypeError, NonConcreteBooleanIndexError, ShapeError,
                     UnsupportedOperationError)
from .layout import reshape, transpose
from .tracing import Tracer, user_location, where_str


class IndexOutOfBounds(ShapeError, IndexError):
    """An index known while tracing is out of bounds (numpy's IndexError)."""


def _traced_mask_error(mask: Tracer) -> NonConcreteBooleanIndexError:
    return NonConcreteBooleanIndexError(
        f"{where_str()}: x[mask] with a traced boolean mask {mask.dtype}{list(mask.shape)}: "
        f"the result's shape (the number of true elements) depends on the data, which "
        f"compiled code cannot have. Keep the shape instead: ferrule.numpy.where(mask, x, 0) "
        f"or x * mask (a sum over the selection: (x * mask).sum()); a mask known while "
        f"tracing (a numpy bool array) works")


def _index_array(i, what="index"):
    """An index as an integer Tracer or an int64 numpy array (static)."""
    if isinstance(i, Tracer):
        if i.dtype == _onp.bool_:
            raise _traced_mask_error(i)
        if i.dtype.kind not in "iu":
            raise DTypeError(f"{where_str()}: arrays used as indices must be of integer type, "
                             f"got {i.dtype}")
        return astype(i, I64) if i.dtype == _onp.uint32 else i
    arr = _onp.asarray(i)
    if arr.dtype == _onp.bool_:      # x[mask] expands masks first (split_index): not here
        raise UnsupportedOperationError(
            f"{where_str()}: a boolean array as the {what} is not supported here (x[mask] with "
            f"a numpy bool array is; take and x.at[...] want integer indices: mask.nonzero())")
    if arr.dtype.kind not in "iu":
        if arr.size == 0:
            arr = arr.astype(_onp.int64)
        else:
            raise DTypeError(f"{where_str()}: arrays used as indices must be of integer type, "
                             f"got {arr.dtype}")
    return arr.astype(_onp.int64)


def _static_normalised(arr: _onp.ndarray, n: int, axis: int) -> _onp.ndarray:
    if arr.size:
        bad = arr[(arr < -n) | (arr >= n)]
        if bad.size:
            raise IndexOutOfBounds(f"{where_str()}: index {int(bad.flat[0])} is out of bounds "
                                   f"for axis {axis} with size {n}")
    return _onp.where(arr < 0, arr + n, arr)


def _gather(table: Tracer, idx, axis: int, user_axis=None) -> Tracer:
    """``ad.gather`` of ``table`` at ``idx`` (an integer Tracer or static
    int64 array) along ``axis`` (``user_axis`` in messages)."""
    n = table.shape[axis]
    if not isinstance(idx, Tracer):
        idx = _static_normalised(idx, n, axis if user_axis is None else user_axis)
        idx = constant(idx, idx.shape, I64)
    elif n == 0 and idx.size:
        raise IndexOutOfBounds(f"{where_str()}: cannot take from axis {axis} of size 0")
    if table.dtype == _onp.bool_:   # bools are gathered as int32 (i1 tensors are bytes)
        return not_equal(_gather(astype(table, _onp.int32), idx, axis, user_axis), 0)
    tr = check_trace(table, idx)
    table, idx = asarray_traced(table), asarray_traced(idx)
    with user_location():
        op = builders.gather(table.value, idx.value, axis)
    return wrap(op.result, tr, table.dtype)


def _axis(axis, ndim):
    a = int(axis)
    if not -ndim <= a < ndim:
        raise ShapeError(f"{where_str()}: axis {a} is out of bounds for array of dimension {ndim}")
    return a % ndim


def take(a, indices, axis=None):
    """numpy ``take(a, indices, axis)``: the elements of ``a`` at integer
    ``indices`` along ``axis`` (of the flattened ``a`` for ``axis=None``).
    Result shape: ``a.shape[:axis] + indices.shape + a.shape[axis+1:]``.
    Traced out-of-range indices are clamped (see the module docstring)."""
    if not traced(a, indices):
        return _onp.take(a, indices, axis=axis)
    a = asarray_traced(a)
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    if a.ndim == 0:
        raise ShapeError(f"{where_str()}: take from a 0-d array")
    axis = _axis(axis, a.ndim)
    return _gather(a, _index_array(indices), axis)


def _clamped(idx, n: int):
    """Traced ``idx`` wrapped (negative: from the end) and clamped to [0, n)."""
    if not isinstance(idx, Tracer):
        return idx
    idx = where(less(idx, 0), add(idx, n), idx)
    return where(less(idx, 0), 0, where(greater(idx, n - 1), n - 1, idx))


def _linear_gather(table: Tracer, first: int, count: int, idxs, norm_axes):
    """Gather from ``table`` at one index per axis ``first .. first+count-1``
    (``idxs``: integer Tracers or static arrays, broadcast together): the
    axes are merged into one and read at the linear index."""
    shape = table.shape
    dims = shape[first:first + count]
    total = int(_onp.prod(dims, dtype=_onp.int64))
    merged = reshape(table, shape[:first] + (total,) + shape[first + count:])
    lin = None
    stride = 1
    for k in reversed(range(count)):
        i = idxs[k]
        if isinstance(i, Tracer):
            term = _clamped(astype(i, I64), dims[k])
        else:
            term = _static_normalised(i, dims[k], norm_axes[k])
        term = multiply(term, stride) if stride != 1 else term
        lin = term if lin is None else add(lin, term)
        stride *= dims[k]
    if not isinstance(lin, Tracer):
        lin = _onp.asarray(lin, _onp.int64)
    elif lin.dtype != I64:
        lin = astype(lin, I64)
    return _gather(merged, lin, first)


def take_along_axis(arr, indices, axis):
    """numpy ``take_along_axis``: ``out[..., j, ...] = arr[..., indices[...,
    j, ...], ...]`` with ``indices`` of ``arr``'s rank, broadcast against
    ``arr`` off ``axis`` (``axis=None``: ``arr`` flattened, 1-D indices)."""
    if not traced(arr, indices):
        return _onp.take_along_axis(arr, indices, axis=axis)
    arr = asarray_traced(arr)
    if axis is None:
        return take(arr, indices)
    idx = _index_array(indices)
    if arr.ndim != idx.ndim:
        raise ShapeError(f"{where_str()}: take_along_axis: indices and arr must have the same "
                         f"number of dimensions ({idx.ndim} and {arr.ndim})")
    axis = _axis(axis, arr.ndim)
    try:
        other = _onp.broadcast_shapes(tuple(s for d, s in enumerate(arr.shape) if d != axis),
                                      tuple(s for d, s in enumerate(idx.shape) if d != axis))
    except ValueError:
        raise ShapeError(f"{where_str()}: take_along_axis: shapes {arr.shape} and {idx.shape} "
                         f"do not broadcast off axis {axis}") from None
    full = list(other)
    a_shape = tuple(full[:axis] + [arr.shape[axis]] + full[axis:])
    i_shape = tuple(full[:axis] + [idx.shape[axis]] + full[axis:])
    arr = broadcast_to(arr, a_shape)
    if isinstance(idx, Tracer):
        idx = broadcast_to(idx, i_shape)
    else:
        idx = _onp.broadcast_to(idx, i_shape)
    # One index per axis: the loop position off `axis`, the given one on it.
    idxs = []
    for d in range(arr.ndim):
        if d == axis:
            idxs.append(idx)
        else:
            shape = [1] * arr.ndim
            shape[d] = i_shape[d]
            idxs.append(asarray_traced(_onp.arange(i_shape[d]).reshape(shape), captured=False))
    return _linear_gather(arr, 0, arr.ndim, idxs, list(range(arr.ndim)))


def _has_tracer(v) -> bool:
    return isinstance(v, Tracer) or (isinstance(v, (list, tuple)) and builtins.any(
        _has_tracer(e) for e in v))


def _static_mask(i) -> bool:
    """A boolean mask known while tracing (a numpy bool array of rank >= 1)."""
    return isinstance(i, _onp.ndarray) and i.dtype == _onp.bool_ and i.ndim > 0


def expand_masks(x: Tracer, idx: tuple) -> tuple:
    """``idx`` (ellipsis expanded) with each static boolean mask replaced by
    the integer arrays of its true positions, ``mask.nonzero()``: numpy's
    definition of a mask index, and the gather's indices are then static.
    The mask's shape must equal the axes it covers (numpy's IndexError).
    A *traced* mask is a :class:`NonConcreteBooleanIndexError`."""
    out, d = [], 0
    for i in idx:
        if isinstance(i, Tracer) and i.dtype == _onp.bool_:
            raise _traced_mask_error(i)
        if not _static_mask(i):
            out.append(i)
            d += 1
            continue
        covered = x.shape[d:d + i.ndim]
        for k, (n, m) in enumerate(zip(covered, i.shape)):
            if n != m:
                raise IndexOutOfBounds(
                    f"{where_str()}: boolean index did not match indexed array along axis "
                    f"{d + k}; size of axis is {n} but size of corresponding boolean axis is {m}")
        out.extend(i.nonzero())
        d += i.ndim
    return tuple(out)


def index_lists_as_arrays(idx: tuple) -> tuple:
    """``idx`` with each list as an array: a traced one when it holds a
    Tracer, else a static numpy array (a list of bools is a mask)."""
    return tuple((asarray_traced(i) if _has_tracer(i) else _onp.asarray(i))
                 if isinstance(i, list) else i for i in idx)


def split_index(x: Tracer, idx: tuple):
    """An index with integer arrays (Tracers, numpy arrays, lists) on some
    axes and ints/slices on the others, as ``(basic, arrays)``: ``basic``
    the slices to apply first (every axis kept), ``arrays`` the index array
    of each other axis. Integers count as 0-d arrays; a numpy boolean mask
    counts as its ``nonzero()`` arrays, one per axis it covers
    (:func:`expand_masks`). Scalar bools and traced masks are errors;
    ``idx`` has no ``None``: :func:`ferrule.newaxis.drop_newaxes` removes
    them first."""
    idx = index_lists_as_arrays(idx)
    if builtins.sum(1 for i in idx if i is Ellipsis) > 1:
        raise ShapeError(f"{where_str()}: an index can only have one ellipsis")
    n_real = builtins.sum(i.ndim if _static_mask(i) else 1 for i in idx if i is not Ellipsis)
    if n_real > x.ndim:
        raise ShapeError(f"{where_str()}: too many indices ({n_real}) for a {x.ndim}-d array")
    ell = [k for k, i in enumerate(idx) if i is Ellipsis]
    if ell:
        k = ell[0]
        idx = idx[:k] + (slice(None),) * (x.ndim - n_real) + idx[k + 1:]
    else:
        idx = idx + (slice(None),) * (x.ndim - n_real)
    for i in idx:
        if isinstance(i, (bool, _onp.bool_)) or (isinstance(i, _onp.ndarray)
                                                 and i.dtype == _onp.bool_ and i.ndim == 0):
            raise UnsupportedOperationError(
                f"{where_str()}: indexing with a scalar bool (a new axis of length 1 or 0) is "
                f"not supported; use reshape, or a boolean array as the mask")
    idx = expand_masks(x, idx)
    arrays = {}
    for d, i in enumerate(idx):
        if isinstance(i, slice):
            continue
        if isinstance(i, (int, _onp.integer)):
            arrays[d] = _onp.asarray(int(i), _onp.int64)
        else:
            arrays[d] = _index_array(i)
    basic = tuple(i if isinstance(i, slice) else slice(None) for i in idx)
    return basic, arrays


def gather_indexed(y: Tracer, arrays: dict) -> Tracer:
    """numpy indexing of ``y`` (sliced already) with the index ``arrays`` of
    :func:`split_index`: the arrays broadcast together; the result has
    their shape in place of the indexed axes when those are adjacent, else
    first (numpy's rule)."""
    adv = sorted(arrays)
    try:
        bshape = _onp.broadcast_shapes(*[arrays[d].shape for d in adv])
    except ValueError:
        raise ShapeError(f"{where_str()}: shape mismatch: indexing arrays could not be "
                         f"broadcast together with shapes "
                         f"{' '.join(str(arrays[d].shape) for d in adv)}") from None
    rest = [d for d in range(y.ndim) if d not in arrays]
    perm = adv + rest
    yt = transpose(y, perm) if perm != list(range(y.ndim)) else y
    idxs = []
    for d in adv:
        a = arrays[d]
        if isinstance(a, Tracer):
            idxs.append(broadcast_to(a, bshape) if a.shape != bshape else a)
        else:
            idxs.append(_onp.broadcast_to(a, bshape))
    if len(adv) == 1:
        i = idxs[0]
        out = _gather(yt, i if isinstance(i, Tracer) else _onp.ascontiguousarray(i), 0, adv[0])
    else:
        out = _linear_gather(yt, 0, len(adv), idxs, adv)
    # numpy: the broadcast dims replace the indexed axes in place when these
    # are adjacent, else they come first.
    if adv == list(range(adv[0], adv[-1] + 1)) and adv[0] > 0:
        k, p = len(bshape), adv[0]
        n_rest = out.ndim - k
        order = list(range(k, k + p)) + list(range(k)) + list(range(k + p, k + n_rest))
        out = transpose(out, order)
    return out
