"""ferrule.vmap (frontend/vmap.py): JAX's semantics (in_axes/out_axes,
pytrees, unmapped arguments), composition with jit, grad, jvp and itself,
derivatives against finite differences, and IR that does not grow with the
batch size (it is a scan)."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.errors import ShapeError

RNG = np.random.default_rng(0)
X, W = RNG.standard_normal((5, 3)), RNG.standard_normal((3, 4))


def cell(x, w):
    return fnp.tanh(x @ w)


def test_matches_the_batched_computation():
    np.testing.assert_allclose(ferrule.vmap(cell, in_axes=(0, None))(X, W), np.tanh(X @ W))
    got = ferrule.jit(ferrule.vmap(cell, in_axes=(1, None), out_axes=1))(X.T, W)
    np.testing.assert_allclose(got, np.tanh(X @ W).T)
    ws = RNG.standard_normal((5, 3, 4))                    # both mapped
    got = ferrule.vmap(cell)(X, ws)
    np.testing.assert_allclose(got, np.tanh(np.einsum("bi,bij->bj", X, ws)))


def test_pytrees_and_several_outputs():
    def f(d):
        return d["a"] * 2.0, fnp.sum(d["b"])
    a, s = ferrule.vmap(f)({"a": X, "b": X * X})
    np.testing.assert_allclose(a, 2 * X)
    np.testing.assert_allclose(s, np.sum(X * X, axis=1))
    a, s = ferrule.vmap(f, out_axes=(1, 0))({"a": X, "b": X})
    assert a.shape == (3, 5) and s.shape == (5,)


def test_composes_with_grad_jvp_and_itself():
    # per-example gradients: vmap of grad
    per = ferrule.jit(ferrule.vmap(ferrule.grad(lambda x, w: fnp.sum(cell(x, w))),
                                   in_axes=(0, None)))(X, W)
    np.testing.assert_allclose(per, (1 - np.tanh(X @ W) ** 2) @ W.T, rtol=1e-12)
    # grad through vmap, against central differences
    L = lambda w: fnp.sum(ferrule.vmap(cell, (0, None))(X, w) ** 2)      # noqa: E731
    g = ferrule.grad(L)(W)
    v = RNG.standard_normal(W.shape)
    eps = 1e-6
    assert np.sum(g * v) == pytest.approx((L(W + eps * v) - L(W - eps * v)) / (2 * eps),
                                          rel=1e-7)
    # jvp through vmap
    _, t = ferrule.jvp(ferrule.vmap(cell, (0, None)), (X, W), (np.zeros_like(X), v))
    np.testing.assert_allclose(t, (1 - np.tanh(X @ W) ** 2) * (X @ v), rtol=1e-12)
    # nested: an outer product table
    outer = ferrule.vmap(ferrule.vmap(lambda a, b: a * b, (None, 0)), (0, None))
    a, b = RNG.standard_normal(4), RNG.standard_normal(6)
    np.testing.assert_allclose(outer(a, b), np.outer(a, b))


def test_the_ir_does_not_grow_with_the_batch():
    f = ferrule.jit(ferrule.vmap(cell, (0, None)))
    small = f.lower(X[:3], W).as_text("traced").count("\n")
    large = f.lower(RNG.standard_normal((300, 3)), W).as_text("traced").count("\n")
    assert small == large


def test_errors():
    with pytest.raises(ShapeError, match=r"test_vmap.py:\d+: vmap got mapped axes of sizes 5 and 3"):
        ferrule.vmap(cell)(X, RNG.standard_normal((3, 3, 4)))
    with pytest.raises(ShapeError, match="in_axes has 1 entries for 2 positional arguments"):
        ferrule.vmap(cell, in_axes=(0,))(X, W)
    with pytest.raises(ShapeError, match="at least one mapped argument"):
        ferrule.vmap(cell, in_axes=None)(X, W)
