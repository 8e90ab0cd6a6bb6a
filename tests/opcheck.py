"""Shared helpers of the op tests: input samplers, numpy references in
float64, tolerance-aware comparison, and op-spec tables."""

import functools
from dataclasses import dataclass, field
from typing import Callable, Tuple

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp

F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
DTYPES = [pytest.param(F32, id="f32"), pytest.param(F64, id="f64")]
TOL = {F32: dict(rtol=1e-5, atol=1e-6), F64: dict(rtol=1e-12, atol=1e-13)}
# Sums and matmuls accumulate in the array's dtype, numpy pairwise in float64.
ACC_TOL = {F32: dict(rtol=1e-5, atol=1e-5), F64: dict(rtol=1e-12, atol=1e-12)}

# -- inputs ---------------------------------------------------------------------

def sample(kind: str, shape, dtype, rng) -> np.ndarray:
    """Random inputs from an op's valid domain."""
    if kind == "normal":
        x = rng.standard_normal(shape)
    elif kind == "pos":               # log, sqrt, fractional powers
        x = rng.uniform(0.1, 3.0, shape)
    elif kind == "gt-1":              # log1p
        x = rng.uniform(-0.9, 3.0, shape)
    elif kind == "nonzero":           # denominators
        x = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)
    elif kind == "ties":              # comparisons, max/min: equal elements happen
        x = rng.integers(-2, 3, shape).astype(np.float64)
    else:
        raise ValueError(kind)
    return np.asarray(x, dtype=dtype)


def sid(shapes):
    """A compact test id for a shape or a tuple of shapes: (3, 4), (4,) -> 3x4,4."""
    def one(s):
        return s if s == "py" else ("x".join(map(str, s)) or "0d")
    if shapes and all(isinstance(s, (tuple, str)) for s in shapes):
        return ",".join(one(s) for s in shapes)
    return one(shapes)


def to64(x):
    """A float64 copy of array leaves (Python scalars stay weakly typed)."""
    if isinstance(x, np.ndarray):
        return x.astype(np.float64)
    if isinstance(x, (tuple, list)):
        return type(x)(to64(v) for v in x)
    return x


def assert_close(got, want, tol):
    """``got`` (ferrule) against ``want`` (numpy): structure, dtype, shape, values."""
    if isinstance(want, (tuple, list)):
        assert type(got) is type(want) and len(got) == len(want), (got, want)
        for g, w in zip(got, want):
            assert_close(g, w, tol)
        return
    want = np.asarray(want)
    assert isinstance(got, np.ndarray), type(got)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_allclose(got, want, **tol(got.dtype) if callable(tol) else tol)


def cast_like(want64, like):
    """numpy's float64 answer, cast to the dtype numpy gives for the real inputs."""
    if isinstance(like, (tuple, list)):
        return type(like)(cast_like(w, l) for w, l in zip(want64, like))
    like = np.asarray(like)
    return np.asarray(want64).astype(like.dtype)


def check(fn, ref, args, tol=TOL, dtype=None):
    """jit(fn)(*args) equals ref computed in float64, cast to numpy's dtype
    (or to ``dtype`` where ferrule's float32 default differs from numpy's)."""
    got = ferrule.jit(fn)(*args)
    with np.errstate(all="ignore"):
        want = cast_like(ref(*to64(list(args))), ref(*args) if dtype is None
                         else np.zeros((), dtype))
    assert_close(got, want, lambda dt: tol[np.dtype(dt)] if np.dtype(dt) in tol else {})
    return got


def both(f):
    """(ferrule version, numpy version) of ``f(m, *xs)`` written against a module."""
    return functools.partial(f, fnp), functools.partial(f, np)


@dataclass(frozen=True)
class Op:
    name: str
    fn: Callable            # ferrule
    ref: Callable           # numpy
    domains: Tuple[str, ...] = ("normal",)
    tol: dict = field(default_factory=lambda: TOL)
    f64: bool = True        # False: an alias of another entry, float32 is enough

    @property
    def arity(self):
        return len(self.domains)


def op(name, f, *domains, tol=TOL, ref=None, f64=True):
    """Spec from ``f(m, *xs)`` (run with m=ferrule.numpy and m=numpy), or f + ref."""
    if ref is None:
        fn, ref = both(f)
    else:
        fn = f
    return Op(name, fn, ref, domains or ("normal",), tol, f64)


def alias(spec):
    return Op(spec.name, spec.fn, spec.ref, spec.domains, spec.tol, f64=False)


def op_cases(specs):
    """(spec, dtype) parameters: float32 for all, float64 unless an alias."""
    return [pytest.param(s, d, id=f"{s.name}-{d.name}")
            for s in specs for d in (F32, F64) if d == F32 or s.f64]

def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# -- derivatives of one op --------------------------------------------------------

def check_derivatives(f, xs, rng, eps=1e-6, rtol=1e-7):
    """Reverse and forward derivatives of ``f(*xs)`` (float64 arrays in, an
    array out), all with respect to every x: the gradient of a loss
    ``sum(sin(f) * w)`` against central finite differences along a random
    direction, the dot-product test ``<J t, c> == <t, J^T c>`` between
    ``jvp`` and ``vjp``, and second order: ``jvp`` of the gradient against
    finite differences of the gradient."""
    xs = tuple(np.asarray(x, np.float64) for x in xs)
    argnums = tuple(range(len(xs)))
    w = rng.standard_normal(np.shape(ferrule.jit(f)(*xs)))
    loss = lambda *a: fnp.sum(fnp.sin(f(*a)) * w)                       # noqa: E731
    g, L = ferrule.jit(ferrule.grad(loss, argnums=argnums)), ferrule.jit(loss)
    ts = tuple(rng.standard_normal(x.shape) for x in xs)
    plus = tuple(x + eps * t for x, t in zip(xs, ts))
    minus = tuple(x - eps * t for x, t in zip(xs, ts))
    fd = (L(*plus) - L(*minus)) / (2 * eps)
    got = builtin_sum(np.sum(gi * t) for gi, t in zip(g(*xs), ts))
    assert got == pytest.approx(fd, rel=rtol, abs=rtol), (got, fd)
    out, jt = ferrule.jvp(f, xs, ts)
    c = rng.standard_normal(np.shape(out))
    _, pb = ferrule.vjp(f, *xs)
    back = builtin_sum(np.sum(t * b) for t, b in zip(ts, pb(c)))
    assert np.sum(jt * c) == pytest.approx(back, rel=1e-12, abs=1e-12)
    _, hv = ferrule.jvp(ferrule.grad(loss, argnums=argnums), xs, ts)
    for h, p, m in zip(hv, g(*plus), g(*minus)):
        np.testing.assert_allclose(h, (p - m) / (2 * eps), rtol=1e-5, atol=1e-6)


builtin_sum = sum
