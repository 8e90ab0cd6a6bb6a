"""``None`` (``numpy.newaxis``) and ``...`` in an index with integer arrays
or boolean masks: numpy's layout of the result, on top of the gather path.

numpy's rule for an index with advanced entries (integer arrays, numpy
boolean masks, and — once there is an array — integers): the advanced
entries broadcast together to ``bshape``; when they are *adjacent* in the
index tuple, ``bshape``'s dims replace them in place, and when a slice,
``None`` or ``...`` separates them (even an ``...`` that stands for no
axis), ``bshape``'s dims come first. Each slice keeps its axis; each
``None`` adds a size-1 axis where it stands.

:func:`drop_newaxes` returns the index without its ``None`` entries and
with ``...`` spelled out as slices, which the gather path
(:func:`ferrule.gather.split_index`, :func:`ferrule.gather.gather_indexed`)
supports, and a :class:`Relayout` that turns that index's result (or any
array of its shape, such as :mod:`ferrule.flat_index`'s positions) into
the original index's: a transpose when removing the separators made the
advanced entries adjacent (``bshape`` moves first), then a reshape that
inserts the size-1 axes. The reverse derivative is the gather's
scatter-add, through the transpose and reshape.
"""

import numpy as _onp

from .errors import ShapeError
from .gather import _static_mask
from .layout import reshape, transpose
from .tracing import Tracer, where_str


def _kind(i) -> str:
    """``'N'`` None, ``'E'`` ellipsis, ``'S'`` slice, ``'A'`` advanced
    (arrays, masks, and integers, which count as 0-d arrays)."""
    if i is None:
        return "N"
    if i is Ellipsis:
        return "E"
    if isinstance(i, slice):
        return "S"
    return "A"


def _adjacent(kinds) -> bool:
    """Whether the ``'A'`` entries of ``kinds`` are next to each other."""
    pos = [k for k, c in enumerate(kinds) if c == "A"]
    return not pos or pos[-1] - pos[0] + 1 == len(pos)


def _labels(kinds, nb: int):
    """The result's dims, named: ``('S', k)`` the k-th slice's, ``('N', k)``
    the k-th None's, ``('B', k)`` the k-th broadcast dim (``nb`` of them)."""
    out, counts, placed = [], {"S": 0, "N": 0}, False
    bdims = [("B", k) for k in range(nb)]
    if not _adjacent(kinds):
        out, placed = list(bdims), True
    for c in kinds:
        if c in "SN":
            out.append((c, counts[c]))
            counts[c] += 1
        elif c == "A" and not placed:
            out.extend(bdims)
            placed = True
    return out


class Relayout:
    """From the layout of ``x[idx without None]`` to that of ``x[idx]``."""

    def __init__(self, kinds_without, kinds_with):
        self.without, self.with_ = kinds_without, kinds_with

    def shape_and_perm(self, shape):
        """``(shape of x[idx], permutation of the given result's axes)``
        for a result of ``x[idx without None]`` of ``shape``."""
        nb = len(shape) - self.without.count("S")
        have = _labels(self.without, nb)
        want = _labels(self.with_, nb)
        perm = [have.index(l) for l in want if l[0] != "N"]
        out = [1 if l[0] == "N" else shape[have.index(l)] for l in want]
        return tuple(out), perm

    def __call__(self, r):
        """``r`` (a Tracer or numpy array shaped as ``x[idx without None]``)
        in ``x[idx]``'s layout."""
        out, perm = self.shape_and_perm(tuple(r.shape))
        if perm != list(range(len(perm))):
            r = transpose(r, perm) if isinstance(r, Tracer) else _onp.transpose(r, perm)
        if tuple(r.shape) != out:
            r = reshape(r, out) if isinstance(r, Tracer) else _onp.reshape(r, out)
        return r


def drop_newaxes(ndim: int, idx: tuple):
    """``(index, relayout)``: ``idx`` (lists already arrays) for an array of
    rank ``ndim`` without its ``None`` entries and with its ``...``
    replaced by slices (trailing axes left implicit), and the
    :class:`Relayout` from that index's result to ``idx``'s. Raises
    :class:`~ferrule.errors.ShapeError` for two ellipses or too many
    indices, as numpy."""
    if sum(1 for i in idx if i is Ellipsis) > 1:
        raise ShapeError(f"{where_str()}: an index can only have one ellipsis")
    kinds = [_kind(i) for i in idx]
    n_real = sum(i.ndim if _static_mask(i) else 1 for i, c in zip(idx, kinds) if c in "SA")
    if n_real > ndim:
        raise ShapeError(f"{where_str()}: too many indices ({n_real}) for a {ndim}-d array")
    fill = ndim - n_real
    out, with_ = [], []
    for i, c in zip(idx, kinds):
        if c == "E":
            out.extend([slice(None)] * fill)
            with_.append("E")              # a separator, whatever it stands for
            with_.extend("S" * fill)
        elif c != "N":
            out.append(i)
            with_.append(c)
        else:
            with_.append("N")
    if "E" not in kinds:
        with_.extend("S" * fill)
    without = ["S" if isinstance(i, slice) else "A" for i in out]
    if "E" not in kinds:                   # the implicit trailing slices
        without.extend("S" * fill)
    return tuple(out), Relayout(without, with_)
