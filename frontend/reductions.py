"""Statistics, logical reductions, products and running sums of
``ferrule.numpy``: ``var``, ``std`` (``axis``, ``keepdims``, ``ddof``),
``all``, ``any`` from :mod:`ferrule.layout`'s ``sum``/``mean``; ``prod``,
``cumsum``, ``cumprod`` as loops along the axis (:func:`ferrule.scan`,
which differentiates them, to any order). Outside a trace, numpy's.
"""

import numpy as _onp

from .scan_trace import traced_scan as scan
from .core import asarray_traced, astype, traced
from .dtypes import BOOL, F32, I64
from .elementwise import add, equal, full, greater, multiply, not_equal, ones, sqrt, subtract
from .layout import _norm_axes, mean, reshape, sum, transpose
from .narrow import is_float


def var(x, axis=None, ddof=0, keepdims=False):
    """numpy ``var``: ``sum((x - mean(x))²)/(N - ddof)`` over ``axis``, two
    passes (no cancellation of ``E[x²] - E[x]²``); integers as float32.
    ``N - ddof <= 0`` gives inf or NaN, as numpy (after its warning).

    Derivative: ``2·(x - mean(x))/(N - ddof)`` (the mean's own derivative
    cancels: the deviations sum to 0)."""
    if not traced(x):
        return _onp.var(x, axis=axis, ddof=ddof, keepdims=keepdims)
    x = asarray_traced(x)
    if not is_float(x.dtype):
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


# -- products and running sums: a loop along the axis (ferrule.scan) ----------------

def _along_front(x, axes):
    """``x`` with ``axes`` moved to the front and merged into one."""
    kept = [d for d in range(x.ndim) if d not in axes]
    xt = transpose(x, tuple(axes) + tuple(kept))
    n = int(_onp.prod([x.shape[d] for d in axes], dtype=_onp.int64))
    return reshape(xt, (n,) + tuple(x.shape[d] for d in kept)), kept


def _accumulating(x):
    x = asarray_traced(x)
    # integer products and sums accumulate in int64, as numpy's (and sum's)
    return astype(x, I64) if x.dtype.kind in "biu" else x


def prod(x, axis=None, keepdims=False):
    """numpy ``prod``: a loop along the reduced axes (``ferrule.scan``)
    multiplying a running product, so no division is needed anywhere: exact
    where elements are 0. Integers accumulate in int64.

    Derivative: the product of the other elements (reverse mode through the
    loop), zeros included."""
    if not traced(x):
        return _onp.prod(x, axis=axis, keepdims=keepdims)
    x = _accumulating(x)
    axes = sorted(_norm_axes(axis, x.ndim))
    xs, kept = _along_front(x, axes)
    one = ones(xs.shape[1:], x.dtype)
    if xs.shape[0] == 0:
        r = one
    else:
        r, _ = scan(lambda c, v: (multiply(c, v), None), one, xs)
    if keepdims:
        r = reshape(r, tuple(1 if d in axes else x.shape[d] for d in range(x.ndim)))
    return r


def _cumulative(name, op, unit):
    npfn = getattr(_onp, name)

    def f(x, axis=None):
        if not traced(x):
            return npfn(x, axis=axis)
        x = _accumulating(x)
        if axis is None:
            x, axis = reshape(x, (-1,)), 0
        axis = axis % x.ndim
        if x.shape[axis] == 0:
            return x
        xs, _ = _along_front(x, [axis])
        _, ys = scan(lambda c, v: (op(c, v), op(c, v)), full(xs.shape[1:], unit, x.dtype), xs)
        perm = list(range(1, x.ndim))
        perm.insert(axis, 0)
        return transpose(ys, tuple(perm))
    f.__name__ = name
    return f


cumsum = _cumulative("cumsum", add, 0)
cumsum.__doc__ = """numpy ``cumsum`` (``axis=None``: of the flattened array): a loop
along the axis (``ferrule.scan``). Integers accumulate in int64.

Derivative: linear; the cotangent is the reversed running sum."""
cumprod = _cumulative("cumprod", multiply, 1)
cumprod.__doc__ = """numpy ``cumprod``: a loop along the axis (``ferrule.scan``) with no
division, so exact where elements are 0. Integers accumulate in int64.

Derivative: through the loop (products of the other elements; zeros
included)."""
