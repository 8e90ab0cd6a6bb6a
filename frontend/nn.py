"""``ferrule.nn``: activation functions built from the traced op set."""

import numpy as np

from . import numpy as fnp


def sigmoid(x):
    """Logistic sigmoid, as ``0.5 + 0.5 * tanh(x / 2)``.

    An exact identity that stays finite everywhere, so its derivative
    ``0.25 * (1 - tanh(x/2)**2)`` never forms ``0 * inf`` for large ``|x|``
    (``1 / (1 + exp(-x))`` does, in forward mode).
    """
    return 0.5 + 0.5 * fnp.tanh(0.5 * x)


def relu(x):
    """``maximum(x, 0)``, with ``relu'(0) = 0`` (as JAX and PyTorch) and a
    NaN derivative at NaN.

    Written as ``x * step(x) + 0.0`` with ``step`` = 1 where ``x > 0``, 0
    where ``x <= 0``, NaN elsewhere (a select between constants, so it
    carries no derivative of its own): the derivative is ``step`` itself,
    which ``maximum``'s tie-splitting rule would make 0.5 at 0. The ``+
    0.0`` turns ``-1 * 0 = -0.0`` into ``0.0``, as numpy's ``maximum`` gives.
    """
    if isinstance(x, (float, int, np.ndarray, np.generic)):  # plain numpy
        return fnp.maximum(x, 0.0)
    step = fnp.where(x > 0.0, 1.0, fnp.where(x <= 0.0, 0.0, fnp.nan))
    return x * fnp.astype(step, x.dtype) + 0.0


def softplus(x):
    """``log(1 + exp(x))`` computed stably as ``max(x, 0) + log1p(exp(-|x|))``;
    its derivative is ``sigmoid(x)`` (0.5 at 0: ``maximum`` splits a tie,
    ``abs'(0) = 0``)."""
    return fnp.maximum(x, 0.0) + fnp.log1p(fnp.exp(-fnp.abs(x)))


def logsumexp(x, axis=None, keepdims=False):
    """Stable ``log(sum(exp(x)))`` along ``axis``.

    The shift ``m = max(x)`` is replaced by 0 where it is infinite, so an
    all ``-inf`` slice gives ``-inf`` and a ``+inf`` gives ``+inf`` (not NaN).
    """
    m = fnp.max(x, axis=axis, keepdims=True)
    m = fnp.where(fnp.abs(m) < fnp.inf, m, 0.0)
    s = fnp.log(fnp.sum(fnp.exp(x - m), axis=axis, keepdims=True)) + m
    if keepdims:
        return s
    return fnp.reshape(s, tuple(d for i, d in enumerate(s.shape)
                                if i not in _axes(axis, len(s.shape))))


def _axes(axis, ndim):
    if axis is None:
        return set(range(ndim))
    return {a % ndim for a in ((axis,) if isinstance(axis, int) else axis)}
