"""Slicing, integer-array indexing and splitting for traced arrays.

Part of ``ferrule.numpy`` (re-exported there). Slices become
``tensor.extract_slice`` (static offsets/sizes/strides) that keeps every
axis; integer indices then drop their (size-1) axes and ``None`` adds axes
through ``tensor.collapse_shape``/``expand_shape``. Integer arrays and
numpy boolean masks as indices are a gather (:mod:`ferrule.gather`), after
the slices; ``None`` among them is a reshape of the gather's result
(:mod:`ferrule.newaxis`). (Concatenation and
stacking live in :mod:`ferrule.core`: ``asarray`` of nested lists needs them.)
"""

import builtins

import numpy as _onp

from .core import asarray_traced, extract_slice, normalize_axis, reshape_to
from .gather import gather_indexed, index_lists_as_arrays, split_index
from .newaxis import drop_newaxes
from .shapes import flip_axes
from .errors import ShapeError, UnsupportedOperationError
from .tracing import Tracer, where_str


def getitem(x, idx):
    """Basic indexing — ints, slices (a negative step is the positive-step
    slice of the same elements, then reversed: :func:`ferrule.shapes.flip_axes`),
    ``...``, ``None`` —
    and integer arrays (Tracers, numpy arrays, lists) on some axes
    (:func:`ferrule.gather.gather_indexed`; with ``None`` or ``...`` among
    them, numpy's placement of the broadcast dims and the size-1 axes:
    :func:`ferrule.newaxis.drop_newaxes`); a numpy boolean mask is its
    ``nonzero()`` arrays (a traced mask is an error: the result's shape
    would depend on the data; :func:`ferrule.gather.expand_masks`)."""
    if not isinstance(x, Tracer):
        return x[idx]
    x = asarray_traced(x)
    if not isinstance(idx, tuple):
        idx = (idx,)
    if any(isinstance(i, (Tracer, _onp.ndarray, list, bool, _onp.bool_)) for i in idx):
        # integer arrays: a gather, of the index without None; then numpy's layout
        idx, relayout = drop_newaxes(x.ndim, index_lists_as_arrays(idx))
        basic, arrays = split_index(x, idx)
        return relayout(gather_indexed(getitem(x, basic), arrays))
    n_ellipsis = sum(1 for i in idx if i is Ellipsis)
    if n_ellipsis > 1:
        raise ShapeError(f"{where_str()}: an index can only have one ellipsis")
    n_real = sum(1 for i in idx if i is not None and i is not Ellipsis)
    if n_real > x.ndim:
        raise ShapeError(f"{where_str()}: too many indices ({n_real}) for a {x.ndim}-d array")
    if n_ellipsis:
        k = next(j for j, i in enumerate(idx) if i is Ellipsis)
        idx = idx[:k] + (slice(None),) * (x.ndim - n_real) + idx[k + 1:]
    else:
        idx = idx + (slice(None),) * (x.ndim - n_real)
    offsets, sizes, strides, out_shape = [], [], [], []
    reversed_axes = []      # axes of the slice taken with a negative step
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
            picked = range(*i.indices(n))
            length = len(picked)
            if picked.step < 0 and length > 1:
                reversed_axes.append(d)
            offsets.append(builtins.min(picked[0], picked[-1]) if length else 0)
            sizes.append(length)
            strides.append(builtins.abs(picked.step))
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
    return reshape_to(flip_axes(r, reversed_axes), tuple(out_shape))


def split(x, indices_or_sections, axis=0):
    """numpy ``split`` into equal sections or at indices."""
    if not isinstance(x, Tracer):
        return _onp.split(x, indices_or_sections, axis=axis)
    x = asarray_traced(x)
    if x.ndim == 0:
        raise ShapeError(f"{where_str()}: cannot split a 0-d array")
    axis = normalize_axis(axis, x.ndim)
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
