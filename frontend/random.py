"""``ferrule.random``: a counter-based PRNG (Threefry-2x32, 20 rounds).

A *key* is a ``uint32[2]`` array; random values are a pure function of the
key and the position of each element, so the same bits come out on every
machine, inside or outside ``jit`` (outside a trace every function runs in
numpy on uint32 arrays; inside, the same code is traced into integer ops).
Keys are split, never reused: ``k1, k2 = split(key)``.

The bits are JAX's (``jax.random`` with its default threefry,
``jax_threefry_partitionable=True``, JAX >= 0.5): ``key``, ``split``,
``fold_in``, ``bits`` and ``uniform`` (float32) give bit-identical results,
checked against JAX in ``tests/test_random.py`` when JAX is installed.
``normal`` follows JAX's transform — ``sqrt(2) * erfinv(u)`` with ``u``
uniform in ``(-1, 1)`` — with ``erfinv`` from Giles' single-precision
polynomial (the one XLA uses for float32), refined for float64 by two
Newton steps on ``erf``; the values agree with JAX to a few float32 ulps,
not bit for bit. ``categorical`` adds Gumbel noise ``-log(-log(u))`` and
takes the ``argmax`` (int64 here; JAX gives int32), ``bernoulli`` is
``uniform < p``.
"""

import numpy as _onp

from . import numpy as fnp
from .core import constant, elementwise
from .errors import DTypeError, ShapeError
from .integers import bitcast
from .narrow import is_float
from .tracing import Tracer, current_trace, where_str

U32 = _onp.dtype(_onp.uint32)
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _traced(*xs) -> bool:
    return any(isinstance(x, Tracer) for x in xs)


def _shape(shape):
    if isinstance(shape, (int, _onp.integer)):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def _check_key(key):
    if isinstance(key, Tracer):
        if key.dtype != U32 or key.shape != (2,):
            raise DTypeError(f"{where_str()}: a ferrule.random key is a uint32[2] array "
                             f"(from ferrule.random.key(seed)); got {key.dtype}{list(key.shape)}")
        return key
    k = _onp.asarray(key)
    if k.dtype != U32 or k.shape != (2,):
        raise DTypeError(f"{where_str()}: a ferrule.random key is a uint32[2] array (from "
                         f"ferrule.random.key(seed)); got {k.dtype}{list(k.shape)}")
    return k


def _rotl(x, r: int):
    return (x << r) | (x >> (32 - r))


def threefry2x32(k1, k2, x0, x1):
    """The Threefry-2x32 block cipher (20 rounds) of counter words ``x0,
    x1`` under key words ``k1, k2``: uint32 arrays (numpy or traced),
    broadcast together; returns the two output words."""
    ks = (k1, k2, k1 ^ k2 ^ 0x1BD11BDA)
    x0 = x0 + ks[0]
    x1 = x1 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = _rotl(x1, r)
            x1 = x0 ^ x1
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + (i + 1)
    return x0, x1


def _counters(shape, like):
    """The low word of each position's row-major index, uint32 (the high
    word is 0: fewer than 2**32 elements)."""
    n = int(_onp.prod(shape, dtype=_onp.int64))
    if n >= 1 << 32:
        raise ShapeError(f"{where_str()}: ferrule.random draws fewer than 2**32 values at once")
    if not _traced(like):
        return _onp.arange(n, dtype=_onp.uint32).reshape(shape)
    return fnp.reshape(fnp.arange(n, dtype=U32), shape)


def _zero_u32(like):
    return constant(0, (), U32) if _traced(like) else _onp.uint32(0)


def _blocks(key, shape):
    """Both words of Threefry at every position of ``shape`` (JAX's
    partitionable ``random_bits``)."""
    key = _check_key(key)
    lo = _counters(shape, key)
    return threefry2x32(key[0], key[1], _zero_u32(key), lo)


def _eager(fn):
    """Run ``fn`` with numpy's wrap-around warnings off (uint32 arithmetic
    wraps on purpose); traced calls are unaffected."""
    import functools

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with _onp.errstate(over="ignore"):
            return fn(*args, **kwargs)
    return run


@_eager
def key(seed):
    """A key from an integer seed: ``[seed >> 32, seed & 0xFFFFFFFF]`` as
    uint32 (JAX's ``PRNGKey``; a negative seed below 2**31 in magnitude
    gives ``[0, seed mod 2**32]`` as JAX's default 32-bit mode does). The
    seed may be a Python int or a traced integer (0-d) array."""
    if isinstance(seed, Tracer):
        if seed.dtype.kind not in "iu" or seed.shape != ():
            raise DTypeError(f"{where_str()}: key(seed) needs an integer scalar seed, got "
                             f"{seed.dtype}{list(seed.shape)}")
        lo = fnp.astype(seed, U32)
        if seed.dtype == _onp.int64:
            hi = fnp.astype(fnp.bitwise_and(fnp.right_shift(seed, 32), 0xFFFFFFFF), U32)
        else:
            hi = constant(0, (), U32)
        return fnp.stack([hi, lo])
    s = int(seed)
    hi = 0 if -(1 << 31) <= s < (1 << 31) else (s >> 32) & 0xFFFFFFFF
    k = _onp.array([hi, s & 0xFFFFFFFF], _onp.uint32)
    if current_trace() is not None:
        return constant(k, (2,), U32)
    return k


PRNGKey = key


@_eager
def split(key, num: int = 2):
    """``num`` new keys, shape ``(num, 2)`` (JAX's ``split``)."""
    num = int(num)
    b0, b1 = _blocks(key, (num,))
    return fnp.stack([b0, b1], axis=1)


@_eager
def fold_in(key, data):
    """A new key from ``key`` and an integer (a step number): JAX's
    ``fold_in`` (``data`` may be traced)."""
    key = _check_key(key)
    if isinstance(data, Tracer):
        d = fnp.astype(data, U32)
    else:
        d = _onp.uint32(int(data) & 0xFFFFFFFF)
    b0, b1 = threefry2x32(key[0], key[1], _zero_u32(key), d)
    return fnp.stack([b0, b1])


@_eager
def bits(key, shape=()):
    """Random uint32 of ``shape``: both Threefry words XORed (JAX's
    ``random.bits`` for 32 bits)."""
    b0, b1 = _blocks(key, _shape(shape))
    return b0 ^ b1


def _as(v, dtype):
    return fnp.astype(v, dtype) if isinstance(v, Tracer) else _onp.asarray(v, dtype)


@_eager
def uniform(key, shape=(), dtype=fnp.float32, minval=0.0, maxval=1.0):
    """Uniform floats in ``[minval, maxval)`` of ``shape`` (JAX's
    ``uniform``: 23 (or 52) random mantissa bits of a float in [1, 2),
    minus 1, scaled). ``minval``/``maxval`` may be arrays broadcasting to
    ``shape``."""
    shape, dtype = _shape(shape), _onp.dtype(dtype)
    if dtype not in (_onp.float32, _onp.float64):
        raise DTypeError(f"{where_str()}: uniform draws float32 or float64, not {dtype}")
    b0, b1 = _blocks(key, shape)
    if dtype == _onp.float32:
        mant = ((b0 ^ b1) >> 9) | 0x3F800000
        floats = bitcast(mant, dtype) - _as(1.0, dtype)
    else:   # 64 bits: word 0 high, word 1 low, in int64 (no uint64 in ferrule)
        i64 = _onp.int64
        hi, lo = _as(b0, i64), _as(b1, i64)
        word = (hi << 32) | lo
        mant = ((word >> 12) & ((1 << 52) - 1)) | 0x3FF0000000000000
        floats = bitcast(mant, dtype) - _as(1.0, dtype)
    lo_v, hi_v = _as(minval, dtype), _as(maxval, dtype)
    if dtype == _onp.float32:
        # floats * span + lo with one rounding, as XLA's fused multiply-add:
        # the float32 product is exact in float64, the sum rounded once
        # (bit-identical to JAX but for rare double roundings).
        wide = _as(floats, _onp.float64) * _as(hi_v - lo_v, _onp.float64) + _as(lo_v, _onp.float64)
        out = _as(wide, dtype)
    else:
        out = floats * (hi_v - lo_v) + lo_v
    out = fnp.reshape(out, shape) if _traced(out) else _onp.reshape(out, shape)
    return fnp.maximum(lo_v, out)


# Giles (2010), "Approximating the erfinv function", single precision: the
# polynomial XLA uses for float32 erf_inv.
_ERFINV_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
                   0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_ERFINV_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
                0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)


def _horner(coeffs, w):
    p = coeffs[0]
    for c in coeffs[1:]:
        p = c + p * w
    return p


def erfinv(x):
    """The inverse error function on ``(-1, 1)``: Giles' polynomial; for
    float64 refined by two Newton steps on ``erf`` (relative error ~1e-15).
    Not differentiable here (used for sampling)."""
    eager = not _traced(x)
    xp = _onp if eager else fnp
    dtype = _onp.asarray(x).dtype if eager else x.dtype
    w = -xp.log1p(-(x * x))
    central = w < 5.0
    wc = w - 2.5
    wt = xp.sqrt(w) - 3.0
    p = xp.where(central, _horner(_ERFINV_CENTRAL, wc), _horner(_ERFINV_TAIL, wt))
    y = p * x
    if dtype == _onp.float64:
        k = 2.0 / _onp.sqrt(_onp.pi)
        for _ in range(2):
            y = y - (_erf(y) - x) / (k * xp.exp(-(y * y)))
    return y


def _erf(x):
    if not _traced(x):
        import math
        return _onp.vectorize(math.erf, otypes=[_onp.float64])(x)
    return elementwise("math.erf", x, dtype=x.dtype)


@_eager
def normal(key, shape=(), dtype=fnp.float32):
    """Standard normal floats of ``shape``: ``sqrt(2) * erfinv(u)`` with
    ``u`` uniform in ``(-1, 1)`` (JAX's transform; one uniform per value)."""
    dtype = _onp.dtype(dtype)
    lo = _onp.nextafter(_onp.array(-1.0, dtype), _onp.array(0.0, dtype), dtype=dtype)
    u = uniform(key, shape, dtype, lo, 1.0)
    return _as(_onp.sqrt(2.0), dtype) * erfinv(u)


@_eager
def gumbel(key, shape=(), dtype=fnp.float32):
    """Standard Gumbel noise ``-log(-log(u))``, ``u`` uniform in
    ``[tiny, 1)`` (JAX's default "low" mode)."""
    dtype = _onp.dtype(dtype)
    u = uniform(key, shape, dtype, _onp.finfo(dtype).tiny, 1.0)
    xp = fnp if _traced(u) else _onp
    return -xp.log(-xp.log(u))


@_eager
def categorical(key, logits, axis=-1, shape=None):
    """Samples (int64 class indices) from the categorical distributions
    ``softmax(logits, axis)``: the ``argmax`` of ``logits`` plus Gumbel
    noise (JAX's ``categorical``). ``shape`` defaults to ``logits.shape``
    without ``axis``; a longer ``shape`` draws that many batches."""
    traced = _traced(key, logits)
    logits = fnp.asarray(logits) if traced else _onp.asarray(logits, _onp.float32)
    if not is_float(logits.dtype):
        logits = fnp.astype(logits, _onp.float32) if traced else logits.astype(_onp.float32)
    nd = logits.ndim
    ax = int(axis)
    if not -nd <= ax < nd:
        raise ShapeError(f"{where_str()}: categorical: axis {ax} is out of bounds for logits "
                         f"of shape {logits.shape}")
    ax %= nd
    batch = logits.shape[:ax] + logits.shape[ax + 1:]
    shape = batch if shape is None else _shape(shape)
    if len(shape) < len(batch) or tuple(_onp.broadcast_shapes(shape[len(shape) - len(batch):],
                                                             batch)) != shape[len(shape) - len(batch):]:
        raise ShapeError(f"{where_str()}: categorical: shape {shape} does not end with a shape "
                         f"that logits' batch shape {batch} broadcasts to")
    prefix = shape[:len(shape) - len(batch)]
    noise_shape = list(shape[len(shape) - len(batch):])
    noise_shape.insert(ax, logits.shape[ax])
    g = gumbel(key, (*prefix, *noise_shape), logits.dtype)
    full = fnp.reshape(logits, (1,) * len(prefix) + logits.shape) if traced else \
        logits.reshape((1,) * len(prefix) + logits.shape)
    return fnp.argmax(g + full, axis=len(prefix) + ax)


@_eager
def bernoulli(key, p=0.5, shape=None):
    """Random bools, True with probability ``p`` (``uniform < p``; JAX's
    ``bernoulli``); for dropout masks. ``shape`` defaults to ``p``'s."""
    if shape is None:
        shape = tuple(getattr(p, "shape", ()))
    dtype = p.dtype if isinstance(p, (Tracer, _onp.ndarray)) and \
        _onp.dtype(p.dtype).kind == "f" else _onp.float32
    return uniform(key, shape, dtype) < p


__all__ = ["key", "PRNGKey", "split", "fold_in", "bits", "uniform", "normal", "gumbel",
           "categorical", "bernoulli", "threefry2x32", "erfinv"]
