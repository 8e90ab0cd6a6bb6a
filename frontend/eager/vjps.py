"""The eager tape's VJP tables, in the style of autograd's ``numpy_vjps``.

* ``UFUNC_VJPS[ufunc]``: one ``vjp(g, ans, *args) -> cotangent`` per
  positional argument.
* ``FUNCTION_VJPS[func]``: ``{parameter name: vjp}`` for a numpy function
  reached through NEP 18; ``vjp(g, ans, **arguments)`` gets the call's
  arguments bound to numpy's own parameter names (``np.sum(x, 1)`` and
  ``np.sum(x, axis=1)`` look alike). A parameter holding a sequence of arrays
  (concatenate's ``arrays``) gets a list of cotangents; a multi-output
  function (split) gets ``g`` as a list. ``None`` marks a parameter that may
  hold a Var but has no derivative (``where``'s condition).
* ``NONDIFF_*``: ops whose result is piecewise constant or not a float array;
  they run on plain values and leave no tape node.

``g`` is the output cotangent and ``ans`` the op's output, all plain numpy
values. The tape unbroadcasts and casts each cotangent to its argument's
shape and dtype afterwards, so entries may return broadcastable values.
"""

import numpy as np

from .errors import UnsupportedOpError


def unbroadcast(g, shape):
    """Sum ``g`` over the axes that broadcasting added to an array of ``shape``."""
    g, shape = np.asarray(g), tuple(shape)
    if g.ndim > len(shape):
        g = g.sum(axis=tuple(range(g.ndim - len(shape))))
    axes = tuple(i for i, (n, m) in enumerate(zip(shape, g.shape)) if n == 1 and m != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g if g.shape == shape else np.broadcast_to(g, shape)


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    return tuple(sorted(a % ndim for a in ((axis,) if np.ndim(axis) == 0 else axis)))


def _keep(v, a, axis, keepdims):
    """A reduction's output ``v`` in keepdims form, broadcastable against ``a``."""
    return v if keepdims else np.expand_dims(v, _axes(axis, np.ndim(a)))


def _sum_vjp(g, a, axis, keepdims):
    return np.broadcast_to(_keep(g, a, axis, keepdims), np.shape(a))


def _extreme_vjp(g, ans, a, axis=None, keepdims=False, **_):
    hit = a == _keep(ans, a, axis, keepdims)  # ties share the cotangent equally
    return _keep(g, a, axis, keepdims) * hit / hit.sum(axis=_axes(axis, a.ndim), keepdims=True)


def _var_vjp(g, ans, a, axis=None, ddof=0, keepdims=False, **_):
    n = np.size(a) / max(np.size(ans), 1)
    centred = a - np.mean(a, axis=_axes(axis, a.ndim), keepdims=True)
    return 2.0 * _keep(g, a, axis, keepdims) * centred / (n - ddof)


def _mat(a, b):
    """1-D operands of matmul as the matrices numpy uses: (1, n) and (n, 1)."""
    return (a[None, :] if a.ndim == 1 else a), (b[:, None] if b.ndim == 1 else b)


def _mat_g(g, a, b):
    """The output cotangent with the axes that 1-D operands dropped put back."""
    g = np.asarray(g)
    g = g[..., None] if b.ndim == 1 else g
    return g[..., None, :] if a.ndim == 1 else g


def _matmul_vjp(which, g, a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 0 or b.ndim == 0:  # np.dot of a scalar is a product
        return g * (b if which == 0 else a)
    a2, b2 = _mat(a, b)
    g2 = _mat_g(g, a, b)
    if which == 0:
        return np.reshape(unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape), a.shape)
    return np.reshape(unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape), b.shape)


def _dot_vjp(which):
    def vjp(g, ans, a, b):
        if np.ndim(a) > 2 or np.ndim(b) > 2:
            raise UnsupportedOpError("ferrule.eager: numpy.dot of arrays with more than 2 "
                                     "dimensions has no VJP; use numpy.matmul (@)")
        return _matmul_vjp(which, g, a, b)
    return vjp


def _concatenate_vjp(g, ans, arrays, axis=0, **_):
    shapes = [np.shape(x) for x in arrays]
    if axis is None:  # numpy concatenates the flattened arrays
        g, axis, sizes = np.ravel(g), 0, [int(np.prod(s)) for s in shapes]
    else:
        sizes = [s[axis] for s in shapes]
    pieces = np.split(g, np.cumsum(sizes)[:-1], axis=axis)
    return [np.reshape(p, s) for p, s in zip(pieces, shapes)]


def _split_vjp(gs, ans, ary, indices_or_sections, axis=0):
    """Add each piece's cotangent into a zero array shaped like ``ary``."""
    axis = axis % np.ndim(ary)
    if np.ndim(indices_or_sections) == 0:  # sections: contiguous pieces
        pts = np.cumsum([0] + [np.shape(p)[axis] for p in ans])
    else:  # at indices, with numpy's (Python slicing) semantics
        pts = [0, *indices_or_sections, np.shape(ary)[axis]]
    out = np.zeros(np.shape(ary), np.result_type(*gs))
    for lo, hi, g in zip(pts[:-1], pts[1:], gs):
        idx = [slice(None)] * np.ndim(ary)
        idx[axis] = slice(lo, hi)
        out[tuple(idx)] += g
    return out


def _cumsum_vjp(g, ans, a, axis=None, **_):
    if axis is None:
        return np.reshape(np.flip(np.cumsum(np.flip(g))), np.shape(a))
    return np.flip(np.cumsum(np.flip(g, axis), axis), axis)


def _clip_vjp(g, ans, a, a_min=None, a_max=None, min=None, max=None, **_):
    lo, hi = (a_min if a_min is not None else min), (a_max if a_max is not None else max)
    inside = np.ones(np.shape(a), bool)
    inside &= (a >= lo) if lo is not None else True
    inside &= (a <= hi) if hi is not None else True
    return g * inside


def _chosen(x, y, picks_x):
    """The share of maximum/minimum's derivative that goes to ``x``: 1 where
    it is the result, 0 where ``y`` is, 0.5 at a tie, NaN where either is NaN
    (the compiler's convention, passes/support/scalar_rules.py)."""
    picks_y = np.less if picks_x is np.greater else np.greater
    return np.where(x == y, 0.5, np.where(picks_x(x, y), 1.0,
                                          np.where(picks_y(x, y), 0.0, np.nan)))


def _nonzero(x, fill=1.0):
    return np.where(x == 0, fill, x)


# One VJP per positional argument: vjp(g, ans, *args) -> cotangent.
UFUNC_VJPS = {
    np.add: (lambda g, ans, x, y: g, lambda g, ans, x, y: g),
    np.subtract: (lambda g, ans, x, y: g, lambda g, ans, x, y: -g),
    np.multiply: (lambda g, ans, x, y: g * y, lambda g, ans, x, y: g * x),
    np.divide: (lambda g, ans, x, y: g / y, lambda g, ans, x, y: -g * ans / y),
    np.power: (lambda g, ans, x, y: g * y * np.power(x, np.where(y, y - 1, 1.0)),
               lambda g, ans, x, y: g * ans * np.log(_nonzero(x))),
    np.maximum: (lambda g, ans, x, y: g * _chosen(x, y, np.greater),
                 lambda g, ans, x, y: g * (1.0 - _chosen(x, y, np.greater))),
    np.minimum: (lambda g, ans, x, y: g * _chosen(x, y, np.less),
                 lambda g, ans, x, y: g * (1.0 - _chosen(x, y, np.less))),
    np.fmax: (lambda g, ans, x, y: g * (x >= y), lambda g, ans, x, y: g * (x < y)),
    np.fmin: (lambda g, ans, x, y: g * (x <= y), lambda g, ans, x, y: g * (x > y)),
    np.logaddexp: (lambda g, ans, x, y: g * np.exp(x - ans), lambda g, ans, x, y: g * np.exp(y - ans)),
    np.hypot: (lambda g, ans, x, y: g * x / ans, lambda g, ans, x, y: g * y / ans),
    np.arctan2: (lambda g, ans, y, x: g * x / (x * x + y * y), lambda g, ans, y, x: -g * y / (x * x + y * y)),
    np.matmul: (lambda g, ans, a, b: _matmul_vjp(0, g, a, b), lambda g, ans, a, b: _matmul_vjp(1, g, a, b)),
    np.negative: (lambda g, ans, x: -g,),
    np.positive: (lambda g, ans, x: g,),
    np.exp: (lambda g, ans, x: g * ans,),
    np.exp2: (lambda g, ans, x: g * ans * np.log(2.0),),
    np.expm1: (lambda g, ans, x: g * (ans + 1.0),),
    np.log: (lambda g, ans, x: g / x,),
    np.log2: (lambda g, ans, x: g / (x * np.log(2.0)),),
    np.log10: (lambda g, ans, x: g / (x * np.log(10.0)),),
    np.log1p: (lambda g, ans, x: g / (x + 1.0),),
    np.sqrt: (lambda g, ans, x: g * 0.5 / ans,),
    np.cbrt: (lambda g, ans, x: g / (3.0 * ans * ans),),
    np.square: (lambda g, ans, x: g * 2.0 * x,),
    np.reciprocal: (lambda g, ans, x: -g * ans * ans,),
    np.absolute: (lambda g, ans, x: g * np.sign(x),),
    np.fabs: (lambda g, ans, x: g * np.sign(x),),
    np.tanh: (lambda g, ans, x: g * (1.0 - ans * ans),),
    np.sinh: (lambda g, ans, x: g * np.cosh(x),),
    np.cosh: (lambda g, ans, x: g * np.sinh(x),),
    np.sin: (lambda g, ans, x: g * np.cos(x),),
    np.cos: (lambda g, ans, x: -g * np.sin(x),),
    np.tan: (lambda g, ans, x: g * (1.0 + ans * ans),),
    np.arctan: (lambda g, ans, x: g / (1.0 + x * x),),
    np.arcsin: (lambda g, ans, x: g / np.sqrt(1.0 - x * x),),
    np.arccos: (lambda g, ans, x: -g / np.sqrt(1.0 - x * x),),
    np.arcsinh: (lambda g, ans, x: g / np.sqrt(x * x + 1.0),),
    np.arctanh: (lambda g, ans, x: g / (1.0 - x * x),),
}
# Piecewise-constant or non-float results: computed on values, no tape node.
NONDIFF_UFUNCS = {np.less, np.less_equal, np.greater, np.greater_equal, np.equal,
                  np.not_equal, np.logical_and, np.logical_or, np.logical_not,
                  np.logical_xor, np.isnan, np.isinf, np.isfinite, np.signbit, np.sign,
                  np.floor, np.ceil, np.trunc, np.rint, np.floor_divide}

_reshape_back = lambda g, ans, a, **_: np.reshape(g, np.shape(a))  # noqa: E731
# {parameter name: vjp(g, ans, **bound arguments)}; None marks a parameter
# that may hold a Var but has no derivative (where's condition).
FUNCTION_VJPS = {
    np.sum: {"a": lambda g, ans, a, axis=None, keepdims=False, **_: _sum_vjp(g, a, axis, keepdims)},
    np.mean: {"a": lambda g, ans, a, axis=None, keepdims=False, **_:
              _sum_vjp(g, a, axis, keepdims) * (np.size(ans) / np.size(a))},
    np.max: {"a": _extreme_vjp}, np.amax: {"a": _extreme_vjp},
    np.min: {"a": _extreme_vjp}, np.amin: {"a": _extreme_vjp},
    np.var: {"a": _var_vjp},
    np.std: {"a": lambda g, ans, a, **kw: _var_vjp(g / (2.0 * _nonzero(ans, np.inf)), ans ** 2, a, **kw)},
    np.cumsum: {"a": _cumsum_vjp},
    np.reshape: {"a": _reshape_back}, np.ravel: {"a": _reshape_back},
    np.squeeze: {"a": _reshape_back}, np.expand_dims: {"a": _reshape_back},
    np.copy: {"a": _reshape_back}, np.astype: {"x": lambda g, ans, x, **_: g},
    np.transpose: {"a": lambda g, ans, a, axes=None:
                   np.transpose(g, None if axes is None else np.argsort(_axes_perm(axes, a)))},
    np.swapaxes: {"a": lambda g, ans, a, axis1, axis2: np.swapaxes(g, axis1, axis2)},
    np.moveaxis: {"a": lambda g, ans, a, source, destination: np.moveaxis(g, destination, source)},
    np.flip: {"m": lambda g, ans, m, axis=None: np.flip(g, axis)},
    np.broadcast_to: {"array": lambda g, ans, array, shape, **_: g},
    np.clip: {"a": _clip_vjp},
    np.where: {"condition": None,
               "x": lambda g, ans, condition, x, y: np.where(condition, g, 0.0),
               "y": lambda g, ans, condition, x, y: np.where(condition, 0.0, g)},
    np.dot: {"a": _dot_vjp(0), "b": _dot_vjp(1)},
    np.outer: {"a": lambda g, ans, a, b, **_: np.reshape(g @ np.ravel(b), np.shape(a)),
               "b": lambda g, ans, a, b, **_: np.reshape(np.ravel(a) @ g, np.shape(b))},
    np.concatenate: {"arrays": _concatenate_vjp},
    np.stack: {"arrays": lambda g, ans, arrays, axis=0, **_: [np.take(g, k, axis=axis) for k in range(len(arrays))]},
    np.split: {"ary": _split_vjp}, np.array_split: {"ary": _split_vjp},
}
NONDIFF_FUNCTIONS = {np.shape, np.ndim, np.size, np.result_type, np.zeros_like, np.ones_like,
                     np.empty_like, np.full_like, np.argmax, np.argmin, np.argsort, np.nonzero,
                     np.count_nonzero, np.isclose, np.allclose, np.array_equal, np.any, np.all,
                     np.round, np.around, np.argwhere}


def _axes_perm(axes, a):
    return [int(ax) % np.ndim(a) for ax in axes]


def supported_ops():
    """Names of the numpy ops the tape can differentiate (plus Var methods)."""
    return sorted({f.__name__ for f in [*UFUNC_VJPS, *FUNCTION_VJPS]} | {"getitem", "astype"})
