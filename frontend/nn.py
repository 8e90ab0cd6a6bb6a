"""``ferrule.nn``: activation functions (sigmoid, relu, softplus, gelu, silu,
leaky_relu, elu) and language-model ops (softmax,
cross-entropy, one-hot) built from the traced op set."""

import numpy as np

from . import numpy as fnp
from .mathops import erf
from .stop_gradient_op import stop_gradient
from .tracing import Tracer


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
    # The shift by the max cancels in the derivative: stop_gradient spares
    # the backward the max's tie handling (the result is the same).
    m = stop_gradient(fnp.max(x, axis=axis, keepdims=True))
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


# -- language-model ops (docs/language-model-ops.md) ----------------------------------

def one_hot(idx, num_classes, dtype=fnp.float32):
    """``out[..., k] = (idx[...] == k)`` as ``dtype`` (JAX's ``one_hot``): a
    new last axis of ``num_classes``; an index outside ``[0, num_classes)``
    (negative ones too) gives a row of zeros."""
    num_classes = int(num_classes)
    if isinstance(idx, (int, np.integer, np.ndarray, list)) and not _is_traced(idx):
        idx = np.asarray(idx)
        return (idx[..., None] == np.arange(num_classes)).astype(dtype)
    idx = fnp.asarray(idx)
    hit = fnp.equal(fnp.reshape(idx, idx.shape + (1,)),
                    fnp.arange(num_classes, dtype=idx.dtype if idx.dtype.kind in "iu"
                               else np.int64))
    return fnp.astype(hit, dtype)


def _is_traced(x):
    return isinstance(x, Tracer)


def log_softmax(x, axis=-1):
    """``x - logsumexp(x, axis)``, stable: the shift by the max along
    ``axis`` is a ``stop_gradient`` constant (it cancels in the derivative,
    whose cost it would only add to)."""
    return x - logsumexp(x, axis=axis, keepdims=True)


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x), axis)``, computed as ``exp(x - max)`` over its
    sum (the max a ``stop_gradient`` shift, as in ``logsumexp``)."""
    m = stop_gradient(fnp.max(x, axis=axis, keepdims=True))
    m = fnp.where(fnp.abs(m) < fnp.inf, m, 0.0)
    e = fnp.exp(x - m)
    return e / fnp.sum(e, axis=axis, keepdims=True)


def cross_entropy(logits, labels, axis=-1):
    """Per-example softmax cross-entropy for integer class labels:
    ``-log_softmax(logits, axis)[..., labels[...], ...]``, one loss per
    label (``labels.shape`` = ``logits.shape`` without ``axis``); average
    them for a mean loss. A label outside ``[0, num_classes)`` picks nothing
    and its loss is 0 (as ``one_hot``). Written as a sum against
    ``one_hot(labels)``, so it fuses and its gradient is
    ``softmax(logits) - one_hot(labels)``, with no scatter."""
    logp = log_softmax(logits, axis=axis)
    nd = len(logp.shape)
    ax = axis % nd
    oh = one_hot(labels, logp.shape[ax], dtype=logp.dtype)
    if ax != nd - 1:
        oh = fnp.transpose(oh, tuple(range(ax)) + (nd - 1,) + tuple(range(ax, nd - 1)))
    return -fnp.sum(oh * logp, axis=ax)


# -- more activations ------------------------------------------------------------------

_SQRT_HALF = 0.7071067811865476
_SQRT_2_OVER_PI = 0.7978845608028654


def gelu(x, approximate=False):
    """GELU, ``x·Φ(x)``: exactly ``0.5·x·(1 + erf(x/√2))`` (``math.erf``:
    expand-math's kernel in float32, libm's ``erf`` in float64), or with
    ``approximate=True`` / ``'tanh'`` the tanh form ``0.5·x·(1 + tanh(√(2/π)
    ·(x + 0.044715·x³)))`` (PyTorch's ``approximate='tanh'``, JAX's default).

    Derivative: ``Φ(x) + x·φ(x)`` (exact form), through the composition;
    smooth everywhere, NaN at a NaN."""
    if approximate not in (False, True, "none", "tanh"):
        raise ValueError(f"gelu: approximate must be False, True, 'none' or 'tanh', "
                         f"got {approximate!r}")
    if approximate in (True, "tanh"):
        inner = _SQRT_2_OVER_PI * (x + 0.044715 * (x * x * x))
        return 0.5 * x * (1.0 + fnp.tanh(inner))
    return 0.5 * x * (1.0 + erf(x * _SQRT_HALF))


def silu(x):
    """SiLU (swish), ``x·sigmoid(x)``. Derivative: ``s·(1 + x·(1 - s))``
    with ``s = sigmoid(x)``; NaN at a NaN."""
    return x * sigmoid(x)


def leaky_relu(x, negative_slope=0.01):
    """``x`` where ``x > 0``, ``negative_slope·x`` elsewhere.

    Derivative: 1 for ``x > 0``, ``negative_slope`` for ``x <= 0`` — at 0
    too, as PyTorch and as ``relu`` (its ``negative_slope = 0`` case; JAX
    gives 1 at 0) — and NaN at a NaN: written as ``x·step(x)`` with ``step``
    a select between constants, like ``relu``."""
    if isinstance(x, (float, int, np.ndarray, np.generic)):  # plain numpy
        return np.where(x > 0, x, negative_slope * x)
    slope = np.asarray(negative_slope, x.dtype)    # not weak: the slope in x's precision
    step = fnp.where(x > 0.0, np.asarray(1.0, x.dtype), fnp.where(x <= 0.0, slope, fnp.nan))
    return x * step + 0.0


def elu(x, alpha=1.0):
    """ELU: ``x`` where ``x > 0``, ``alpha·(exp(x) - 1)`` elsewhere
    (``expm1``: accurate near 0; its argument is 0 where ``x > 0``, so the
    branch not taken never overflows).

    Derivative: 1 for ``x > 0``, ``alpha·exp(x)`` for ``x <= 0`` (``alpha``
    at 0, as JAX and PyTorch); NaN at a NaN."""
    if isinstance(x, (float, int, np.ndarray, np.generic)):  # plain numpy
        return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))
    pos = x > 0.0
    neg = alpha * fnp.expm1(fnp.where(pos, 0.0, x))
    return fnp.where(pos, x, neg)
