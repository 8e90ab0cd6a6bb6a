"""Statistics and logical reductions of ``ferrule.numpy``, written from
:mod:`ferrule.layout`'s ``sum``/``mean``: ``var``, ``std`` (``axis``,
``keepdims``, ``ddof``), ``all``, ``any``. Outside a trace, numpy's.
"""

import numpy as _onp

from .core import asarray_traced, astype, traced
from .dtypes import BOOL, F32
from .elementwise import equal, greater, multiply, not_equal, sqrt, subtract
from .layout import _norm_axes, mean, sum


def var(x, axis=None, ddof=0, keepdims=False):
    """numpy ``var``: ``sum((x - mean(x))²)/(N - ddof)`` over ``axis``, two
    passes (no cancellation of ``E[x²] - E[x]²``); integers as float32.
    ``N - ddof <= 0`` gives inf or NaN, as numpy (after its warning).

    Derivative: ``2·(x - mean(x))/(N - ddof)`` (the mean's own derivative
    cancels: the deviations sum to 0)."""
    if not traced(x):
        return _onp.var(x, axis=axis, ddof=ddof, keepdims=keepdims)
    x = asarray_traced(x)
    if x.dtype.kind != "f":
        x = astype(x, F32)
    n = int(_onp.prod([x.shape[a] for a in _norm_axes(axis, x.ndim)], dtype=_onp.int64))
    d = subtract(x, mean(x, axis, keepdims=True))
    ss = sum(multiply(d, d), axis, keepdims)
    dof = n - ddof
    return multiply(ss, 1.0 / dof) if dof > 0 else multiply(ss, _onp.inf if n else _onp.nan)


def std(x, axis=None, ddof=0, keepdims=False):
    """numpy ``std``: ``sqrt(var(x, axis, ddof))``.

    Derivative: ``(x - mean(x))/((N - ddof)·std)``; inf or NaN where the
    standard deviation is 0 (a constant slice: ``sqrt``'s kink)."""
    if not traced(x):
        return _onp.std(x, axis=axis, ddof=ddof, keepdims=keepdims)
    return sqrt(var(x, axis, ddof, keepdims))


def _truth(x):
    x = asarray_traced(x)
    return x if x.dtype == BOOL else not_equal(x, 0)   # NaN counts as true, as numpy


def any(x, axis=None, keepdims=False):
    """numpy ``any``: a bool array, true where some element along ``axis``
    is nonzero (NaN is). Derivative: none (bool results)."""
    if not traced(x):
        return _onp.any(x, axis=axis, keepdims=keepdims)
    return greater(sum(_truth(x), axis, keepdims), 0)


def all(x, axis=None, keepdims=False):
    """numpy ``all``: a bool array, true where every element along ``axis``
    is nonzero (NaN is). Derivative: none (bool results)."""
    if not traced(x):
        return _onp.all(x, axis=axis, keepdims=keepdims)
    t = _truth(x)
    n = int(_onp.prod([t.shape[a] for a in _norm_axes(axis, t.ndim)], dtype=_onp.int64))
    return equal(sum(t, axis, keepdims), n)
