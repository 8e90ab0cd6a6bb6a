"""Shape and construction ops (ferrule.shapes, and negative-step slices):
each against numpy in float32 and float64, through ``np.<name>`` on traced
arrays as well as ``ferrule.numpy.<name>``; derivatives against central
finite differences (float64), the jvp/vjp dot-product test, and second
order (``jvp`` of ``grad``)."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.errors import ShapeError, UnsupportedOperationError

# name -> (function of one array, input shape)
CASES = {
    "ravel": (lambda a: fnp.ravel(a), (3, 4)),
    "flatten-method": (lambda a: a.flatten(), (3, 4)),
    "squeeze": (lambda a: fnp.squeeze(a), (3, 1, 4, 1)),
    "squeeze-axis": (lambda a: a.squeeze(axis=1), (3, 1, 4, 1)),
    "expand_dims": (lambda a: fnp.expand_dims(a, (0, 3)), (3, 4)),
    "moveaxis": (lambda a: fnp.moveaxis(a, 0, -1), (2, 3, 4)),
    "moveaxis-2": (lambda a: fnp.moveaxis(a, (0, 1), (2, 0)), (2, 3, 4)),
    "atleast_3d": (lambda a: fnp.atleast_3d(a), (3, 4)),
    "vstack": (lambda a: fnp.vstack([a[0], a, a[1:]]), (3, 4)),
    "hstack": (lambda a: fnp.hstack([a, a[:, :1] * 2.0]), (3, 4)),
    "dstack": (lambda a: fnp.dstack([a, a * a]), (3, 4)),
    "column_stack": (lambda a: fnp.column_stack([a[:, 0], a]), (3, 4)),
    "flip": (lambda a: fnp.flip(a, 1), (3, 4)),
    "flip-all": (lambda a: fnp.flip(a), (3, 4)),
    "neg-step": (lambda a: a[::-1, 3:0:-2], (3, 5)),
    "neg-step-int": (lambda a: a[-1, ::-1], (3, 5)),
    "roll": (lambda a: fnp.roll(a, 2, axis=1), (3, 5)),
    "roll-flat": (lambda a: fnp.roll(a, -4), (3, 5)),
    "roll-2": (lambda a: fnp.roll(a, (1, -2), axis=(0, 1)), (3, 5)),
    "tile": (lambda a: fnp.tile(a, (2, 1, 3)), (3, 4)),
    "repeat": (lambda a: fnp.repeat(a, 3, axis=0), (3, 4)),
    "repeat-counts": (lambda a: a.repeat(np.array([1, 0, 2, 3]), axis=1), (3, 4)),
    "repeat-flat": (lambda a: fnp.repeat(a, 2), (3, 4)),
    "tril": (lambda a: fnp.tril(a, -1), (4, 5)),
    "triu": (lambda a: fnp.triu(a, 1), (2, 4, 5)),
    "diagonal": (lambda a: fnp.diagonal(a, 1), (4, 5)),
    "diagonal-axes": (lambda a: a.diagonal(-1, 2, 0), (4, 3, 5)),
    "trace": (lambda a: fnp.trace(a), (4, 5)),
    "diag-1d": (lambda a: fnp.diag(a, -2), (4,)),
    "diag-2d": (lambda a: fnp.diag(a, 1), (4, 5)),
    "pad": (lambda a: fnp.pad(a, ((1, 2), (0, 3)), constant_values=0.5), (3, 4)),
    "pad-edge": (lambda a: fnp.pad(a, 2, mode="edge"), (3, 4)),
    "r_": (lambda a: fnp.r_[a[0], a[1], a[2, :2]], (3, 4)),
    "c_": (lambda a: fnp.c_[a[:, 0], a[:, 1], a[:, :2]], (3, 4)),
}

# np.<name>(...) on a traced array is the same op (__array_function__)
NP_CASES = {
    "np.flip": (lambda a: np.flip(a, 0), (3, 4)),
    "np.squeeze": (lambda a: np.squeeze(a), (3, 1, 4)),
    "np.expand_dims": (lambda a: np.expand_dims(a, 1), (3, 4)),
    "np.moveaxis": (lambda a: np.moveaxis(a, 0, 1), (3, 4)),
    "np.hstack": (lambda a: np.hstack([a, a]), (3, 4)),
    "np.tril": (lambda a: np.tril(a), (3, 4)),
    "np.roll": (lambda a: np.roll(a, 1, 0), (3, 4)),
    "np.tile": (lambda a: np.tile(a, 2), (3, 4)),
    "np.ravel": (lambda a: np.ravel(a), (3, 4)),
    "np.trace": (lambda a: np.trace(a), (3, 4)),
    "np.pad": (lambda a: np.pad(a, (1, 2)), (3, 4)),
}

ALL = {**CASES, **NP_CASES}


def _ref(name):
    """numpy's result: the same lambda on plain numpy arrays (ferrule.numpy
    outside a trace is numpy)."""
    return ALL[name][0]


@pytest.mark.parametrize("name", sorted(ALL))
def test_forward_matches_numpy(name, dtype=np.float32):
    """float32 here; float64 in test_derivatives (jvp's primal)."""
    f, shape = ALL[name]
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    got = ferrule.jit(f)(x)
    want = f(x.astype(np.float64))
    assert got.shape == want.shape and got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def _loss(f, w):
    return lambda a: fnp.sum(fnp.tanh(f(a)) * w)


@pytest.mark.parametrize("name", sorted(CASES))
def test_derivatives(name):
    """grad vs central differences, the dot-product test, and jvp(grad)
    vs central differences of grad (all float64)."""
    f, shape = CASES[name]
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    y = f(x)
    w, v = rng.standard_normal(np.shape(y)), rng.standard_normal(shape)
    L = _loss(f, w)
    gl = ferrule.jit(ferrule.grad(L))
    g = gl(x)
    eps = 1e-6
    fd = (L(x + eps * v) - L(x - eps * v)) / (2 * eps)
    assert np.sum(g * v) == pytest.approx(fd, rel=1e-6, abs=1e-9)
    # <J v, w> = <v, J^T w>
    y64, jv = ferrule.jvp(f, (x,), (v,))
    np.testing.assert_allclose(y64, y, rtol=1e-14, atol=1e-14)
    _, pb = ferrule.vjp(f, x)
    (jtw,) = pb(w)
    assert np.sum(jv * w) == pytest.approx(np.sum(v * jtw), rel=1e-12, abs=1e-12)
    # second order
    _, hv = ferrule.jit(lambda a, t: ferrule.jvp(ferrule.grad(L), (a,), (t,)))(x, v)
    fd2 = (gl(x + eps * v) - gl(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(hv, fd2, rtol=1e-5, atol=1e-7)


def test_shapes_of_atleast_and_stacks_follow_numpy():
    for shape in [(), (3,), (2, 3), (2, 3, 4)]:
        x = np.ones(shape)
        for fn in ("atleast_1d", "atleast_2d", "atleast_3d"):
            got = ferrule.jit(getattr(fnp, fn))(x)
            assert got.shape == getattr(np, fn)(x).shape, (fn, shape)
    a, b = np.arange(3.0), np.arange(3.0, 6.0)
    for fn in ("vstack", "hstack", "dstack", "column_stack"):
        got = ferrule.jit(lambda p, q: getattr(fnp, fn)([p, q]))(a, b)
        np.testing.assert_array_equal(got, getattr(np, fn)([a, b]))
    np.testing.assert_array_equal(ferrule.jit(lambda p: fnp.r_[p, 1:7:2, 2.0])(a),
                                  np.r_[a, 1:7:2, 2.0])
    two = ferrule.jit(lambda p, q: fnp.atleast_2d(p, q))(a, b)
    assert [t.shape for t in two] == [(1, 3), (1, 3)]


def test_negative_step_slices_of_every_kind():
    x = np.arange(60.0).reshape(3, 4, 5)
    for idx in [np.s_[::-1], np.s_[:, ::-1, 1], np.s_[..., ::-3], np.s_[2:0:-1, :, 4:1:-2],
                np.s_[::-2, None, -1:-5:-1], np.s_[1:1:-1], np.s_[:, 3:4:-1]]:
        got = ferrule.jit(lambda a: a[idx])(x)
        np.testing.assert_array_equal(got, x[idx], err_msg=str(idx))


def test_errors_name_the_problem_and_the_line():
    x = np.ones((3, 4))
    with pytest.raises(ShapeError, match=r"test_shapes.py:\d+: cannot squeeze axis 1 of size 4"):
        ferrule.jit(lambda a: fnp.squeeze(a, 1))(x)
    with pytest.raises(UnsupportedOperationError, match="repeat with traced counts"):
        ferrule.jit(lambda a, r: fnp.repeat(a, r))(x, np.array([1, 2, 3]))
    with pytest.raises(ShapeError, match="axis 2 is out of bounds"):
        ferrule.jit(lambda a: fnp.flip(a, 2))(x)
    with pytest.raises(ShapeError, match="at least 2 dimensions"):
        ferrule.jit(lambda a: fnp.tril(a))(np.ones(3))
