"""``sort`` and ``argsort`` along an axis, by counting (rank of each element).

Part of ``ferrule.numpy`` (re-exported there). An element's place in the
sorted order is the number of elements that sort before it: smaller ones,
equal ones at lower positions (so the order is **stable**, numpy's
``kind="stable"``), and NaNs last (as numpy). ``argsort`` inverts that
permutation and ``sort`` gathers with it, so ``sort``'s derivative is the
permutation's: the cotangent scattered back to where each element came
from (the gather's rule), to any order; the ranks carry no derivative.

Cost: the counting compares every pair along the axis, O(n²) work and an
(…, n, n) temporary — fine for the short axes of model code (a few
thousand elements), not for sorting large arrays (use ``pure_callback``
with ``np.sort`` there, or sort outside the jitted function).
"""

import numpy as _onp

from .core import asarray_traced, astype
from .dtypes import I64
from .elementwise import equal, less, not_equal, where
from .errors import ShapeError, UnsupportedOperationError
from .gather import take_along_axis
from .integers import bitwise_and, bitwise_or, invert
from .layout import reshape, sum as _sum
from .narrow import is_float
from .shapes import moveaxis
from .tracing import Tracer, where_str


def _prepare(a, axis, kind, what):
    if kind not in (None, "stable", "mergesort", "quicksort", "heapsort"):
        raise UnsupportedOperationError(f"{where_str()}: {what}: unknown kind {kind!r}")
    a = asarray_traced(a)
    if a.dtype == _onp.bool_:
        a = astype(a, _onp.int32)
    if axis is None:
        a, axis = reshape(a, (-1,)), 0
    if a.ndim == 0:
        raise ShapeError(f"{where_str()}: {what} of a 0-d array needs axis=None")
    ax = int(axis)
    if not -a.ndim <= ax < a.ndim:
        raise ShapeError(f"{where_str()}: axis {ax} is out of bounds for array of dimension "
                         f"{a.ndim}")
    return a, ax % a.ndim


def _order(x):
    """argsort of ``x`` along its last axis (stable, NaNs last)."""
    n = x.shape[-1]
    xi = reshape(x, x.shape + (1,))               # (..., i, 1)
    xj = reshape(x, x.shape[:-1] + (1, n))        # (..., 1, j)
    const = lambda v: asarray_traced(v, captured=False)  # noqa: E731  (ferrule's own)
    earlier = const(_onp.tri(n, n, -1, dtype=bool))      # [i, j]: j < i
    positions = _onp.arange(n, dtype=_onp.int64)
    before = bitwise_or(less(xj, xi), bitwise_and(equal(xj, xi), earlier))
    if is_float(x.dtype):                         # NaN sorts after every number
        nan_i, nan_j = not_equal(xi, xi), not_equal(xj, xj)
        before = bitwise_or(bitwise_and(nan_i, invert(nan_j)),
                            bitwise_or(bitwise_and(bitwise_and(nan_i, nan_j), earlier),
                                       before))
    rank = _sum(astype(before, I64), axis=-1)                     # (..., i)
    hit = equal(reshape(rank, rank.shape + (1,)), const(positions))  # (..., i, k)
    return _sum(where(hit, const(positions.reshape(n, 1)), 0), axis=-2)


def argsort(a, axis=-1, kind=None, order=None):
    """numpy ``argsort`` (stable; NaNs last): the indices that sort ``a``
    along ``axis``. O(n²) along the axis (see the module docstring).

    Derivative: none (integer result)."""
    if not isinstance(a, Tracer):
        return _onp.argsort(a, axis=axis, kind=kind, order=order)
    if order is not None:
        raise UnsupportedOperationError(f"{where_str()}: argsort with order= is not supported")
    a, ax = _prepare(a, axis, kind, "argsort")
    return moveaxis(_order(moveaxis(a, ax, -1)), -1, ax)


def sort(a, axis=-1, kind=None, order=None):
    """numpy ``sort`` (stable; NaNs last) along ``axis``. O(n²) along the
    axis (see the module docstring).

    Derivative: the permutation's: the cotangent goes back to where each
    element came from (a gather's rule)."""
    if not isinstance(a, Tracer):
        return _onp.sort(a, axis=axis, kind=kind, order=order)
    if order is not None:
        raise UnsupportedOperationError(f"{where_str()}: sort with order= is not supported")
    was_bool = asarray_traced(a).dtype == _onp.bool_
    a, ax = _prepare(a, axis, kind, "sort")
    last = moveaxis(a, ax, -1)
    out = moveaxis(take_along_axis(last, _order(last), axis=-1), -1, ax)
    return not_equal(out, 0) if was_bool else out
