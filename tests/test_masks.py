"""Boolean-mask indexing (issue 14): ``x[mask]`` with a mask known while
tracing (a numpy bool array or a list of bools) is numpy's
``x[mask.nonzero()]``, a gather with static indices (reverse: a
scatter-add), on the first axes, inner axes, with ints, slices and integer
arrays; checked against numpy in float32 and float64, and its derivatives
(frontend/gather.py ``expand_masks``). A traced mask is a
``NonConcreteBooleanIndexError`` (the result's shape would depend on data)."""

import re

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.errors import NonConcreteBooleanIndexError, ShapeError, UnsupportedOperationError
from opcheck import check_derivatives

RNG = np.random.default_rng(3)
A = RNG.standard_normal((4, 3, 2))
M_ALL = A > 0                              # the whole array's shape: a 1-d result
M_01 = A[..., 0] > 0                       # the first two axes
ROW = np.array([True, False, True, True])  # 1-d on axis 0
COL = np.array([False, True, True])        # 1-d on axis 1
I = np.array([2, 0, 1], np.int32)          # a traced integer array beside a mask

# (id, function of (a, i)) — the same code runs on numpy arrays for the reference
MASKS = [
    ("a[mask_all]", lambda a, i: a[M_ALL]),
    ("a[mask_01]", lambda a, i: a[M_01]),
    ("a[row]", lambda a, i: a[ROW]),
    ("a[:, col]", lambda a, i: a[:, COL]),
    ("a[..., mask]", lambda a, i: a[..., np.array([True, False])]),
    ("a[row, 1:]", lambda a, i: a[ROW, 1:]),
    ("a[row, :, 1]", lambda a, i: a[ROW, :, 1]),
    ("a[1, col]", lambda a, i: a[1, COL]),
    ("a[row, i]", lambda a, i: a[ROW, i]),                 # mask and traced array broadcast
    ("a[list of bools]", lambda a, i: a[[True, False, False, True]]),
    ("a[all false]", lambda a, i: a[np.zeros(4, bool)]),
    ("a[row][:, col]", lambda a, i: a[ROW][:, COL]),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("f", [c[1] for c in MASKS], ids=[c[0] for c in MASKS])
def test_values_against_numpy(f, dtype):
    a = A.astype(dtype)
    got = ferrule.jit(f)(a, I)
    want = f(a, I)
    assert got.dtype == want.dtype and got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("f", [c[1] for c in MASKS], ids=[c[0] for c in MASKS])
def test_derivatives(f):
    check_derivatives(lambda a: f(a, I), (A,), RNG)


def test_gradient_is_a_scatter_of_the_cotangent():
    g = ferrule.grad(lambda a: fnp.sum(a[M_01] * 2.0))(A)
    np.testing.assert_array_equal(g, np.broadcast_to(np.where(M_01[..., None], 2.0, 0.0), A.shape))
    g32 = ferrule.grad(lambda a: fnp.sum(a[:, COL]))(A.astype(np.float32))
    assert g32.dtype == np.float32
    np.testing.assert_array_equal(g32, np.broadcast_to(COL[None, :, None], A.shape))


def test_integer_and_bool_tables():
    t = np.arange(12, dtype=np.int32).reshape(4, 3)
    got = ferrule.jit(lambda t: (t[ROW], (t > 4)[:, COL]))(t)
    for g, w in zip(got, (t[ROW], (t > 4)[:, COL])):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def _line(marker):
    return next(k for k, s in enumerate(open(__file__), 1) if s.rstrip().endswith("# " + marker))


def test_traced_mask_is_a_clear_error():
    with pytest.raises(NonConcreteBooleanIndexError) as info:
        ferrule.jit(lambda a: fnp.sum(a[a > 0]))(A)  # E:traced
    msg = str(info.value)
    assert msg.startswith(f"{__file__}:{_line('E:traced')}: x[mask] with a traced boolean mask")
    assert "ferrule.numpy.where(mask, x, 0) or x * mask" in msg
    assert isinstance(info.value, (UnsupportedOperationError, IndexError))
    # what the message suggests works
    x = A.astype(np.float32)
    got = ferrule.jit(lambda a: (fnp.sum(fnp.where(a > 0, a, 0.0)), fnp.sum(a * (a > 0))))(x)
    np.testing.assert_allclose(got, (x[x > 0].sum(),) * 2, rtol=1e-6)


def test_other_mask_errors():
    with pytest.raises(IndexError, match=re.escape(
            "boolean index did not match indexed array along axis 1; size of axis is 3 but size "
            "of corresponding boolean axis is 2")):
        ferrule.jit(lambda a: a[:, np.array([True, False])])(A)
    with pytest.raises(ShapeError, match=r"too many indices \(4\) for a 3-d array"):
        ferrule.jit(lambda a: a[M_ALL, 0])(A)
    with pytest.raises(UnsupportedOperationError, match="scalar bool"):
        ferrule.jit(lambda a: a[True])(A)
    with pytest.raises(UnsupportedOperationError, match=r"want integer indices: mask\.nonzero"):
        ferrule.jit(lambda a: fnp.take(a, ROW, axis=0))(A)
