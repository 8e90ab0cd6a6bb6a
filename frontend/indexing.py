"""Basic slicing, concatenation and splitting for traced arrays.

Slices become ``tensor.extract_slice`` (static offsets/sizes/strides) that
keeps every axis; integer indices then drop their (size-1) axes and ``None``
adds axes through ``tensor.collapse_shape``/``expand_shape``. Concatenation
is a chain of ``tensor.insert_slice`` into a ``tensor.empty``.
"""

import builtins

import numpy as _onp
from mlir import ir

from .dialect import ir_utils
from .dialect.ir_utils import empty
from .errors import ShapeError, UnsupportedOperationError
from .tracing import Tracer, mlir_element_type, user_location, where_str


def _layout():
    from . import layout
    return layout


def _np():
    from . import numpy as fnp
    return fnp


def extract_slice(x: Tracer, offsets, sizes, strides, result_shape) -> Tracer:
    t = ir.RankedTensorType.get(list(result_shape), mlir_element_type(x.dtype))
    with user_location():
        return Tracer(ir_utils.extract_slice(x.value, t, offsets, sizes, strides), x.trace)


def insert_slice(src: Tracer, dest: Tracer, offsets, sizes, strides) -> Tracer:
    with user_location():
        return Tracer(ir_utils.insert_slice(src.value, dest.value, offsets, sizes, strides),
                      dest.trace)


def getitem(x, idx):
    """Basic indexing: ints, slices with positive steps, ``...``, ``None``."""
    if not isinstance(x, Tracer):
        return x[idx]
    x = _np().asarray_traced(x)
    if not isinstance(idx, tuple):
        idx = (idx,)
    if any(isinstance(i, (Tracer, _onp.ndarray, list, bool, _onp.bool_)) for i in idx):
        raise UnsupportedOperationError(
            f"{where_str()}: advanced (array or boolean) indexing is not supported; use "
            f"basic slices and integers, or ferrule.numpy.where for masks")
    n_ellipsis = builtins.sum(1 for i in idx if i is Ellipsis)
    if n_ellipsis > 1:
        raise ShapeError(f"{where_str()}: an index can only have one ellipsis")
    n_real = builtins.sum(1 for i in idx if i is not None and i is not Ellipsis)
    if n_real > x.ndim:
        raise ShapeError(f"{where_str()}: too many indices ({n_real}) for a {x.ndim}-d array")
    if n_ellipsis:
        k = next(j for j, i in enumerate(idx) if i is Ellipsis)
        idx = idx[:k] + (slice(None),) * (x.ndim - n_real) + idx[k + 1:]
    else:
        idx = idx + (slice(None),) * (x.ndim - n_real)
    offsets, sizes, strides, out_shape = [], [], [], []
    d = 0
    for i in idx:
        if i is None:
            out_shape.append(1)
            continue
        n = x.shape[d]
        if isinstance(i, (int, _onp.integer)):
            j = int(i)
            if not -n <= j < n:
                raise ShapeError(f"{where_str()}: index {j} is out of bounds for axis "
                                 f"{d} with size {n}")
            offsets.append(j % n)
            sizes.append(1)
            strides.append(1)
        elif isinstance(i, slice):
            start, stop, step = i.indices(n)
            if step <= 0:
                raise UnsupportedOperationError(
                    f"{where_str()}: slices with negative steps are not supported")
            length = len(range(start, stop, step))
            offsets.append(start if length else 0)
            sizes.append(length)
            strides.append(step)
            out_shape.append(length)
        else:
            raise UnsupportedOperationError(f"{where_str()}: unsupported index {i!r}")
        d += 1
    # The slice keeps every axis (a rank-reducing slice is ambiguous when a
    # kept axis has size 1); integer-indexed axes are dropped and None axes
    # added by collapsing/expanding size-1 axes.
    r = x
    if not (list(offsets) == [0] * x.ndim and list(sizes) == list(x.shape)
            and list(strides) == [1] * x.ndim):
        r = extract_slice(x, offsets, sizes, strides, sizes)
    return _layout()._reshape_to(r, tuple(out_shape))


def concatenate(arrays, axis=0):
    """numpy ``concatenate`` along ``axis``."""
    arrays = list(arrays)
    if not any(isinstance(a, Tracer) for a in arrays):
        return _onp.concatenate(arrays, axis=axis)
    fnp = _np()
    dtype = fnp._result_dtype(*arrays)
    xs = [fnp.astype(fnp.asarray_traced(a), dtype) for a in arrays]
    nd = xs[0].ndim
    if nd == 0:
        raise ShapeError(f"{where_str()}: zero-dimensional arrays cannot be concatenated")
    axis = _axis(axis, nd)
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
    fnp = _np()
    xs = [fnp.asarray_traced(a) for a in arrays]
    axis = _axis(axis, xs[0].ndim + 1)
    if any(a.shape != xs[0].shape for a in xs):
        raise ShapeError(f"{where_str()}: stack needs arrays of one shape, got "
                         f"{[a.shape for a in xs]}")
    exp = [fnp.reshape(a, a.shape[:axis] + (1,) + a.shape[axis:]) for a in xs]
    return concatenate(exp, axis)


def split(x, indices_or_sections, axis=0):
    """numpy ``split`` into equal sections or at indices."""
    if not isinstance(x, Tracer):
        return _onp.split(x, indices_or_sections, axis=axis)
    x = _np().asarray_traced(x)
    if x.ndim == 0:
        raise ShapeError(f"{where_str()}: cannot split a 0-d array")
    axis = _axis(axis, x.ndim)
    n = x.shape[axis]
    if isinstance(indices_or_sections, (int, _onp.integer)):
        k = int(indices_or_sections)
        if k <= 0 or n % k:
            raise ShapeError(f"{where_str()}: array split does not result in an equal "
                             f"division ({n} into {k})")
        bounds = [i * (n // k) for i in range(k + 1)]
    else:  # as numpy: piece j is x[bounds[j]:bounds[j+1]] along axis (Python slicing)
        bounds = [0, *[int(i) for i in indices_or_sections], None]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        sl = [slice(None)] * x.ndim
        sl[axis] = slice(lo, hi)
        out.append(getitem(x, tuple(sl)))
    return out


def _axis(axis, ndim):
    """``axis`` normalised to ``0..ndim-1``; a ShapeError when out of bounds."""
    a = int(axis)
    if not -ndim <= a < ndim:
        raise ShapeError(f"{where_str()}: axis {a} is out of bounds for an array of "
                         f"dimension {ndim}")
    return a % ndim
