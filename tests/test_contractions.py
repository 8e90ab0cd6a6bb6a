"""tensordot inner outer kron cross einsum (ferrule.contractions): against
numpy (float32 and float64, through ``np.<name>`` on traced arrays too),
grad against central finite differences, the jvp/vjp dot-product test, and
second order (jvp of grad), all float64."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.errors import ShapeError, UnsupportedOperationError

# name -> (function, input shapes)
CASES = {
    "tensordot-2": (lambda a, b: fnp.tensordot(a, b, 2), [(2, 3, 4), (3, 4, 2)]),
    "tensordot-axes": (lambda a, b: fnp.tensordot(a, b, ([0, 2], [2, 0])), [(2, 3, 4), (4, 5, 2)]),
    "tensordot-0": (lambda a, b: fnp.tensordot(a, b, 0), [(3,), (2,)]),
    "inner": (lambda a, b: fnp.inner(a, b), [(3, 4), (2, 3, 4)]),
    "outer": (lambda a, b: fnp.outer(a, b), [(2, 3), (4,)]),
    "kron": (lambda a, b: fnp.kron(a, b), [(2, 3), (3, 2)]),
    "kron-1d-2d": (lambda a, b: fnp.kron(a, b), [(3,), (2, 2)]),
    "cross": (lambda a, b: fnp.cross(a, b), [(5, 3), (3,)]),
    "cross-axis0": (lambda a, b: fnp.cross(a, b, axis=0), [(3, 4), (3, 4)]),
    "einsum-matmul": (lambda a, b: fnp.einsum("ij,jk->ik", a, b), [(3, 4), (4, 5)]),
    "einsum-implicit": (lambda a, b: fnp.einsum("ij,jk", a, b), [(3, 4), (4, 5)]),
    "einsum-trace": (lambda a: fnp.einsum("ii", a), [(4, 4)]),
    "einsum-diag": (lambda a: fnp.einsum("ii->i", a), [(4, 4)]),
    "einsum-dot-same-subscripts": (lambda a, b: fnp.einsum("ij,ij->", a, b), [(3, 4), (3, 4)]),
    "einsum-batched": (lambda a, b: fnp.einsum("bij,bjk->bik", a, b), [(2, 3, 4), (2, 4, 3)]),
    "einsum-ellipsis": (lambda a, b: fnp.einsum("...j,jk->...k", a, b), [(2, 3, 4), (4, 5)]),
    "einsum-ellipsis-broadcast": (lambda a, b: fnp.einsum("...ij,...jk->...ik", a, b),
                                  [(2, 3, 4), (1, 4, 2)]),
    "einsum-three": (lambda a, b, c: fnp.einsum("ij,jk,kl->il", a, b, c), [(3, 4), (4, 5), (5, 2)]),
    "einsum-outer-sum": (lambda a, b: fnp.einsum("ijk,k->j", a, b), [(2, 3, 4), (4,)]),
    "np.einsum": (lambda a, b: np.einsum("ij,kj->ik", a, b), [(3, 4), (5, 4)]),
    "np.tensordot": (lambda a, b: np.tensordot(a, b, 1), [(3, 4), (4, 2)]),
    "np.outer": (lambda a, b: np.outer(a, b), [(3,), (4,)]),
}


def _args(shapes, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_matches_numpy(name, dtype):
    f, shapes = CASES[name]
    args = _args(shapes, dtype)
    got = ferrule.jit(f)(*args)
    want = f(*[a.astype(np.float64) for a in args])
    assert got.shape == want.shape and got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=2e-5 if dtype == np.float32 else 1e-12,
                               atol=2e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("name", sorted(n for n in CASES if not n.startswith("np.")))
def test_derivatives(name):
    f, shapes = CASES[name]
    xs = _args(shapes, seed=1)
    rng = np.random.default_rng(2)
    w = rng.standard_normal(np.shape(f(*xs)))
    vs = [rng.standard_normal(x.shape) for x in xs]
    argnums = tuple(range(len(xs)))
    L = lambda *a: fnp.sum(f(*a) * w)                                  # noqa: E731
    gl = ferrule.jit(ferrule.grad(L, argnums=argnums))
    g = gl(*xs)
    eps = 1e-6
    fd = (L(*[x + eps * v for x, v in zip(xs, vs)])
          - L(*[x - eps * v for x, v in zip(xs, vs)])) / (2 * eps)
    assert sum(np.sum(a * v) for a, v in zip(g, vs)) == pytest.approx(fd, rel=1e-7, abs=1e-9)
    _, jv = ferrule.jvp(f, tuple(xs), tuple(vs))
    _, pb = ferrule.vjp(f, *xs)
    lhs, rhs = np.sum(jv * w), sum(np.sum(v * t) for v, t in zip(vs, pb(w)))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12)
    # second order: L is multilinear, so grad's jvp against differences of grad
    hv = ferrule.jit(lambda *a: ferrule.jvp(ferrule.grad(L, argnums=argnums),
                                            tuple(a[:len(xs)]), tuple(a[len(xs):]))[1])(*xs, *vs)
    gp = gl(*[x + eps * v for x, v in zip(xs, vs)])
    gm = gl(*[x - eps * v for x, v in zip(xs, vs)])
    for h, p, m in zip(hv, gp, gm):
        np.testing.assert_allclose(h, (p - m) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_errors_name_the_problem_and_the_line():
    a = np.ones((3, 4))
    with pytest.raises(ShapeError, match=r"test_contractions.py:\d+: tensordot: shape mismatch"):
        ferrule.jit(lambda x: fnp.tensordot(x, x, ([1], [0])))(a)
    with pytest.raises(UnsupportedOperationError, match="3-vectors only"):
        ferrule.jit(lambda x: fnp.cross(x, x))(np.ones((2, 2)))
    with pytest.raises(ShapeError, match="operand subscripts"):
        ferrule.jit(lambda x: fnp.einsum("ij,jk->ik", x))(a)
    with pytest.raises(ShapeError, match="subscripts 'ijk' for an operand of 2 dimensions"):
        ferrule.jit(lambda x: fnp.einsum("ijk->i", x))(a)
