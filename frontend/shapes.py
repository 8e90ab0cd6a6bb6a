"""Shape and construction ops built from ferrule's structural ops.

Part of ``ferrule.numpy`` (re-exported there). Each op here is a
composition of ops that have derivative rules already — ``reshape``,
``transpose``, ``broadcast_to``, slices, ``concatenate``, ``where`` with a
constant mask, and the gather ``take`` (whose reverse is a scatter-add) —
so the AD passes differentiate them with no rule of their own, to any
order. With concrete (untraced) arguments each is numpy's function.

Semantics follow numpy 2, argument names included, so that
``np.flip(x)`` on a traced ``x`` dispatches here (``__array_function__``).
Shapes that would depend on data (``repeat`` with traced counts) are an
:class:`~ferrule.errors.UnsupportedOperationError`.
"""

import builtins

import numpy as _onp

from .core import asarray_traced, broadcast_to, concatenate, traced
from .elementwise import where, zeros
from .errors import ShapeError, UnsupportedOperationError
from .gather import take
from .layout import reshape, transpose
from .tracing import Tracer, where_str



def _axis(axis: int, ndim: int, what: str = "axis") -> int:
    a = int(axis)
    if not -ndim <= a < ndim:
        raise ShapeError(f"{where_str()}: {what} {a} is out of bounds for array of "
                         f"dimension {ndim}")
    return a % ndim


def _axes(axis, ndim: int):
    axes = [_axis(a, ndim) for a in (axis if isinstance(axis, (tuple, list)) else (axis,))]
    if len(set(axes)) != len(axes):
        raise ShapeError(f"{where_str()}: repeated axis in {axis!r}")
    return axes


# -- views: reshape and transpose ---------------------------------------------------

def ravel(a):
    """``a`` as a 1-d array (C order).

    Derivative: the cotangent reshaped back (linear: a reshape)."""
    if not traced(a):
        return _onp.ravel(a)
    return reshape(a, (-1,))


def squeeze(a, axis=None):
    """``a`` without its size-1 axes (``axis``: only those, each of size 1).

    Derivative: the cotangent reshaped back (linear: a reshape)."""
    if not traced(a):
        return _onp.squeeze(a, axis)
    a = asarray_traced(a)
    if axis is None:
        drop = [k for k, n in enumerate(a.shape) if n == 1]
    else:
        drop = _axes(axis, a.ndim)
        bad = [k for k in drop if a.shape[k] != 1]
        if bad:
            raise ShapeError(f"{where_str()}: cannot squeeze axis {bad[0]} of size "
                             f"{a.shape[bad[0]]} (only axes of size 1)")
    return reshape(a, tuple(n for k, n in enumerate(a.shape) if k not in drop))


def expand_dims(a, axis):
    """``a`` with new size-1 axes at ``axis`` (positions in the result).

    Derivative: the cotangent reshaped back (linear: a reshape)."""
    if not traced(a):
        return _onp.expand_dims(a, axis)
    a = asarray_traced(a)
    out_ndim = a.ndim + (len(axis) if isinstance(axis, (tuple, list)) else 1)
    new = set(_axes(axis, out_ndim))
    dims = iter(a.shape)
    return reshape(a, tuple(1 if k in new else next(dims) for k in range(out_ndim)))


def moveaxis(a, source, destination):
    """``a`` with the axes ``source`` moved to ``destination`` (the others
    keep their order).

    Derivative: the cotangent with the axes moved back (linear: a transpose)."""
    if not traced(a):
        return _onp.moveaxis(a, source, destination)
    a = asarray_traced(a)
    src, dst = _axes(source, a.ndim), _axes(destination, a.ndim)
    if len(src) != len(dst):
        raise ShapeError(f"{where_str()}: moveaxis: source and destination must have the same "
                         f"number of elements")
    order = [k for k in range(a.ndim) if k not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(a, tuple(order))


def _atleast(a, ndim: int):
    a = asarray_traced(a)
    if a.ndim >= ndim:
        return a
    if ndim == 1:
        return reshape(a, (1,))
    if ndim == 2:
        return reshape(a, (1,) * (2 - a.ndim) + a.shape)
    # numpy's atleast_3d: (n,) -> (1, n, 1), (m, n) -> (m, n, 1)
    shape = {0: (1, 1, 1), 1: (1, *a.shape, 1), 2: (*a.shape, 1)}[a.ndim]
    return reshape(a, shape)


def _atleast_nd(ndim: int, npfn):
    def f(*arys):
        if not traced(*arys):
            return npfn(*arys)
        out = [_atleast(a, ndim) for a in arys]
        return out[0] if len(out) == 1 else out
    f.__name__ = npfn.__name__
    f.__doc__ = (f"numpy's ``{npfn.__name__}``: each argument with at least {ndim} dimensions."
                 f"\n\n    Derivative: the cotangent reshaped back (linear: a reshape).")
    return f


atleast_1d = _atleast_nd(1, _onp.atleast_1d)
atleast_2d = _atleast_nd(2, _onp.atleast_2d)
atleast_3d = _atleast_nd(3, _onp.atleast_3d)


# -- stacking -------------------------------------------------------------------------

def vstack(tup):
    """Rows stacked: 1-d arrays become rows (``concatenate`` along axis 0).

    Derivative: each input gets its slice of the cotangent (linear: a concatenation)."""
    if not traced(*tup):
        return _onp.vstack(tup)
    return concatenate([_atleast(a, 2) for a in tup], axis=0)


def hstack(tup):
    """Columns stacked: along axis 1, or axis 0 for 1-d arrays.

    Derivative: each input gets its slice of the cotangent (linear: a concatenation)."""
    if not traced(*tup):
        return _onp.hstack(tup)
    arrs = [_atleast(a, 1) for a in tup]
    return concatenate(arrs, axis=0 if arrs[0].ndim == 1 else 1)


def dstack(tup):
    """Stacked along the third axis (each at least 3-d, as ``atleast_3d``).

    Derivative: each input gets its slice of the cotangent (linear: a concatenation)."""
    if not traced(*tup):
        return _onp.dstack(tup)
    return concatenate([_atleast(a, 3) for a in tup], axis=2)


def column_stack(tup):
    """1-d arrays as columns, 2-d arrays as they are, along axis 1.

    Derivative: each input gets its slice of the cotangent (linear: a concatenation)."""
    if not traced(*tup):
        return _onp.column_stack(tup)
    arrs = [asarray_traced(a) for a in tup]
    return concatenate([reshape(a, (a.shape[0], 1)) if a.ndim == 1 else _atleast(a, 2)
                        for a in arrs], axis=1)


# -- reordering and repeating -------------------------------------------------------

def _reversed_along(a, axis: int):
    n = a.shape[axis]
    if n <= 1:
        return a
    return take(a, _onp.arange(n - 1, -1, -1), axis=axis)


def flip(m, axis=None):
    """``m`` with the order of its elements along ``axis`` (all axes for
    None) reversed. A gather with a constant reversed index: its reverse is
    the same reversal of the cotangent.

    Derivative: the cotangent reversed the same way (linear: a gather, reversed by a scatter-add)."""
    if not traced(m):
        return _onp.flip(m, axis)
    m = asarray_traced(m)
    for k in (range(m.ndim) if axis is None else _axes(axis, m.ndim)):
        m = _reversed_along(m, k)
    return m


def flip_axes(x, axes):
    """``x`` reversed along each of ``axes`` (for negative-step slices)."""
    for k in axes:
        x = _reversed_along(x, k)
    return x


def roll(a, shift, axis=None):
    """Elements shifted by ``shift`` along ``axis`` (of the flattened array
    for None), those past the end coming back at the start.

    Derivative: the cotangent rolled back (linear: slices and a concatenation)."""
    if not traced(a):
        return _onp.roll(a, shift, axis)
    a = asarray_traced(a)
    if axis is None:
        return reshape(roll(reshape(a, (-1,)), shift, 0), a.shape)
    shifts = shift if isinstance(shift, (tuple, list)) else (shift,)
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    if len(shifts) == 1:
        shifts = shifts * len(axes)
    if len(axes) == 1 and len(shifts) > 1:
        axes = axes * len(shifts)
    if len(shifts) != len(axes):
        raise ShapeError(f"{where_str()}: roll: shift and axis must have the same length")
    for s, ax in zip(shifts, axes):
        if isinstance(s, Tracer):
            raise UnsupportedOperationError(f"{where_str()}: roll by a traced shift is not "
                                            f"supported (the shift must be a Python int)")
        ax = _axis(ax, a.ndim)
        n = a.shape[ax]
        s = int(s) % n if n else 0
        if s:
            head = [slice(None)] * a.ndim
            tail = [slice(None)] * a.ndim
            head[ax], tail[ax] = slice(n - s, None), slice(None, n - s)
            a = concatenate([a[tuple(head)], a[tuple(tail)]], axis=ax)
    return a


def tile(A, reps):
    """``A`` repeated ``reps`` times along each axis (numpy's rules for
    ``len(reps) != A.ndim``): one broadcast and one reshape, so its
    reverse is one sum.

    Derivative: the sum of the cotangent over the repetitions (linear: a broadcast)."""
    if not traced(A):
        return _onp.tile(A, reps)
    A = asarray_traced(A)
    reps = tuple(int(r) for r in (reps if isinstance(reps, (tuple, list)) else (reps,)))
    if builtins.any(r < 0 for r in reps):
        raise ShapeError(f"{where_str()}: tile: negative repetitions {reps}")
    d = builtins.max(len(reps), A.ndim)
    reps = (1,) * (d - len(reps)) + reps
    shape = (1,) * (d - A.ndim) + A.shape
    inter = reshape(A, tuple(v for n in shape for v in (1, n)))
    wide = broadcast_to(inter, tuple(v for r, n in zip(reps, shape) for v in (r, n)))
    return reshape(wide, tuple(r * n for r, n in zip(reps, shape)))


def repeat(a, repeats, axis=None):
    """Each element repeated ``repeats`` times along ``axis`` (of the
    flattened array for None); ``repeats`` an int, or one count per element
    (a static list or numpy array: a gather).

    Derivative: the sum of the cotangent over each element's copies (linear: a broadcast, or a gather reversed by a scatter-add)."""
    if not traced(a, repeats):
        return _onp.repeat(a, repeats, axis)
    if isinstance(repeats, Tracer):
        raise UnsupportedOperationError(
            f"{where_str()}: repeat with traced counts is not supported (the result's shape "
            f"would depend on the data); pass the counts as a Python int or numpy array")
    a = asarray_traced(a)
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    axis = _axis(axis, a.ndim)
    n = a.shape[axis]
    counts = _onp.asarray(repeats)
    if counts.ndim == 0 or counts.size == 1:
        r = int(counts.reshape(()))
        if r < 0:
            raise ShapeError(f"{where_str()}: repeat: negative count {r}")
        shape = a.shape[:axis + 1] + (1,) + a.shape[axis + 1:]
        wide = broadcast_to(reshape(a, shape), a.shape[:axis + 1] + (r,) + a.shape[axis + 1:])
        return reshape(wide, a.shape[:axis] + (n * r,) + a.shape[axis + 1:])
    if counts.shape != (n,):
        raise ShapeError(f"{where_str()}: repeat: {counts.size} counts for an axis of size {n}")
    if (counts < 0).any():
        raise ShapeError(f"{where_str()}: repeat: negative counts")
    return take(a, _onp.repeat(_onp.arange(n), counts), axis=axis)


# -- triangles and diagonals --------------------------------------------------------

def _matrix_shape(m):
    m = asarray_traced(m)
    if m.ndim < 2:
        raise ShapeError(f"{where_str()}: expected an array of at least 2 dimensions, "
                         f"got {m.ndim}")
    return m.shape[-2:]


def _masked(m, mask):
    m = asarray_traced(m)
    return where(asarray_traced(mask, captured=False), m, zeros((), m.dtype))


def tril(m, k=0):
    """``m`` with the elements above the ``k``-th diagonal zeroed (last two axes).

    Derivative: the cotangent with the same elements zeroed (linear: a select with a constant mask)."""
    if not traced(m):
        return _onp.tril(m, k)
    n, c = _matrix_shape(m)
    return _masked(m, _onp.tri(n, c, k, dtype=bool))


def triu(m, k=0):
    """``m`` with the elements below the ``k``-th diagonal zeroed (last two axes).

    Derivative: the cotangent with the same elements zeroed (linear: a select with a constant mask)."""
    if not traced(m):
        return _onp.triu(m, k)
    n, c = _matrix_shape(m)
    return _masked(m, ~_onp.tri(n, c, k - 1, dtype=bool))


def diagonal(a, offset=0, axis1=0, axis2=1):
    """The ``offset``-th diagonal of the ``axis1``/``axis2`` planes, as the
    last axis of the result (numpy's ``diagonal``; a gather).

    Derivative: the cotangent scattered back onto the diagonal, zeros elsewhere (linear: a gather)."""
    if not traced(a):
        return _onp.diagonal(a, offset, axis1, axis2)
    a = asarray_traced(a)
    if a.ndim < 2:
        raise ShapeError(f"{where_str()}: diagonal needs at least 2 dimensions, got {a.ndim}")
    a1, a2 = _axis(axis1, a.ndim, "axis1"), _axis(axis2, a.ndim, "axis2")
    if a1 == a2:
        raise ShapeError(f"{where_str()}: diagonal: axis1 and axis2 cannot be the same")
    rest = [k for k in range(a.ndim) if k not in (a1, a2)]
    a = transpose(a, (*rest, a1, a2))
    rows, cols = a.shape[-2:]
    i = _onp.arange(builtins.max(0, builtins.min(rows + builtins.min(offset, 0),
                                                 cols - builtins.max(offset, 0))))
    r, c = i - builtins.min(offset, 0), i + builtins.max(offset, 0)
    return a[(Ellipsis, r, c)]


def trace(a, offset=0, axis1=0, axis2=1):
    """The sum along a diagonal (numpy's ``trace``).

    Derivative: the cotangent on the diagonal, zeros elsewhere (linear)."""
    if not traced(a):
        return _onp.trace(a, offset, axis1, axis2)
    from .layout import sum as _sum
    return _sum(diagonal(a, offset, axis1, axis2), axis=-1)


def diag(v, k=0):
    """1-d ``v``: the square matrix with ``v`` on its ``k``-th diagonal;
    2-d ``v``: its ``k``-th diagonal (numpy's ``diag``).

    Derivative: 1-d input: the cotangent's diagonal; 2-d: the cotangent on the diagonal (linear)."""
    if not traced(v):
        return _onp.diag(v, k)
    v = asarray_traced(v)
    if v.ndim == 2:
        return diagonal(v, k)
    if v.ndim != 1:
        raise ShapeError(f"{where_str()}: diag: input must be 1-d or 2-d, got {v.ndim}-d")
    n, s = v.shape[0], builtins.abs(int(k))
    pad = zeros((s,), v.dtype)
    # w[i] is the value on row i: v shifted down by |k| rows for k < 0.
    w = concatenate([v, pad] if k >= 0 else [pad, v], axis=0)
    mask = _onp.eye(n + s, n + s, int(k), dtype=bool)
    return where(asarray_traced(mask, captured=False), reshape(w, (n + s, 1)),
                 zeros((), v.dtype))


# -- padding ------------------------------------------------------------------------

def pad(array, pad_width, mode="constant", constant_values=0):
    """numpy ``pad`` in ``"constant"`` mode (``"edge"`` too): ``pad_width``
    an int, ``(before, after)``, or one pair per axis; ``constant_values`` a
    Python number (the same before and after). Other modes are an
    :class:`UnsupportedOperationError`.

    Derivative: the cotangent's slice without the padding (linear)."""
    if not traced(array):
        return _onp.pad(array, pad_width, mode=mode, **(
            {"constant_values": constant_values} if mode == "constant" else {}))
    if mode not in ("constant", "edge"):
        raise UnsupportedOperationError(f"{where_str()}: pad mode {mode!r} is not supported "
                                        f"by ferrule (constant and edge are)")
    if not isinstance(constant_values, (int, float)) or isinstance(constant_values, bool):
        raise UnsupportedOperationError(f"{where_str()}: pad: constant_values must be one "
                                        f"Python number")
    a = asarray_traced(array)
    widths = _onp.broadcast_to(_onp.asarray(pad_width, dtype=_onp.int64), (a.ndim, 2))
    if (widths < 0).any():
        raise ShapeError(f"{where_str()}: pad: negative pad width in {pad_width!r}")
    from .elementwise import full
    for ax, (before, after) in enumerate(widths.tolist()):
        if not before and not after:
            continue
        parts = []
        for width, edge in ((before, slice(0, 1)), (after, slice(-1, None))):
            if not width:
                parts.append(None)
                continue
            shape = a.shape[:ax] + (width,) + a.shape[ax + 1:]
            if mode == "constant":
                parts.append(full(shape, constant_values, a.dtype))
            else:
                if a.shape[ax] == 0:
                    raise ShapeError(f"{where_str()}: pad: edge mode on an empty axis {ax}")
                idx = [slice(None)] * a.ndim
                idx[ax] = edge
                parts.append(broadcast_to(a[tuple(idx)], shape))
        a = concatenate([p for p in (parts[0], a, parts[1]) if p is not None], axis=ax)
    return a


# -- index tricks -------------------------------------------------------------------

class _Concatenator:
    """numpy's ``r_`` / ``c_`` for traced arrays: items are arrays, numbers
    and slices (``start:stop:step`` is ``arange``; a complex step, numpy's
    ``linspace`` form, is not supported); string directives are an
    :class:`UnsupportedOperationError`."""

    def __init__(self, name: str, columns: bool):
        self.name, self.columns = name, columns

    def __getitem__(self, key):
        items = key if isinstance(key, tuple) else (key,)
        if not traced(*items):
            return getattr(_onp, self.name)[key]
        parts = []
        for it in items:
            if isinstance(it, str):
                raise UnsupportedOperationError(
                    f"{where_str()}: {self.name}[{it!r}, ...]: string directives are not "
                    f"supported by ferrule")
            if isinstance(it, slice):
                if isinstance(it.step, complex):
                    raise UnsupportedOperationError(
                        f"{where_str()}: {self.name} with a complex step (linspace) is not "
                        f"supported by ferrule")
                it = _onp.arange(it.start or 0, it.stop, it.step or 1)
            a = asarray_traced(it)
            if self.columns:
                a = reshape(a, (a.size, 1)) if a.ndim <= 1 else a
            else:
                a = _atleast(a, 1)
            parts.append(a)
        return concatenate(parts, axis=-1 if self.columns else 0)

    def __repr__(self):
        return f"ferrule.numpy.{self.name}"


r_ = _Concatenator("r_", columns=False)
c_ = _Concatenator("c_", columns=True)
