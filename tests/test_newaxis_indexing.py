"""``None`` (np.newaxis) and ``...`` mixed with integer arrays and boolean
masks (issue 14): numpy's placement of the broadcast index dims (in place
when the advanced indices are adjacent, first when a slice, None or
ellipsis separates them) and of the size-1 axes, checked against numpy in
float32 and float64 over named cases and a generated sweep of index
combinations, with their derivatives (frontend/newaxis.py); ``x.at[...]``
with None as numpy's ``x[None, i] = v``."""

import itertools

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule import eager
from ferrule.errors import ShapeError
from opcheck import check_derivatives

RNG = np.random.default_rng(14)
A = RNG.standard_normal((5, 4, 3))
I = np.array([2, 0, -1], np.int32)                 # traced, 1-d, a negative entry
J = np.array([[1, 3], [0, 1]], np.int64)           # traced, 2-d
ROW = np.array([True, False, True, True, False])   # a static mask on axis 0
M12 = A[0] > 0                                     # a static mask on axes 1-2

# (id, function of (a, i, j)) — the same code runs on numpy arrays for the reference
CASES = [
    ("a[None, i]", lambda a, i, j: a[None, i]),
    ("a[i, None]", lambda a, i, j: a[i, None]),
    ("a[:, None, j]", lambda a, i, j: a[:, None, j]),
    ("a[i, None, j % 3]", lambda a, i, j: a[i[:2], None, j % 3]),   # separated: bdims first
    ("a[None, i, j[0]]", lambda a, i, j: a[None, i[:2], j[0]]),     # adjacent after None
    ("a[1:, i % 4, None]", lambda a, i, j: a[1:, i % 4, None]),
    ("a[2, None, i % 4]", lambda a, i, j: a[2, None, i % 4]),       # an int is advanced too
    ("a[None, :, None, j % 3]", lambda a, i, j: a[None, :, None, j % 3]),
    ("a[..., None, i % 3]", lambda a, i, j: a[..., None, i % 3]),
    ("a[:, i % 4, ..., 1]", lambda a, i, j: a[:, i % 4, ..., 1]),   # ... of no axis separates
    ("a[row, None]", lambda a, i, j: a[ROW, None]),
    ("a[None, row, ::-1, i % 3]", lambda a, i, j: a[None, ROW, ::-1, i % 3]),
    ("a[1, None, m12]", lambda a, i, j: a[1, None, M12]),
    ("a[None, [0, 4], None, j % 3]", lambda a, i, j: a[None, [0, 4], None, j % 3]),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("f", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_values_against_numpy(f, dtype):
    a = A.astype(dtype)
    got = ferrule.jit(f)(a, I, J)
    want = f(a, I, J)
    assert got.dtype == want.dtype and got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("f", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_derivatives(f):
    check_derivatives(lambda a: f(a, I, J), (A,), RNG)


def _sweep(n):
    """``n`` index tuples for a (5, 4, 3) array that numpy accepts, each with
    an integer array or mask and a None or ellipsis: 1-3 real entries from
    ints, slices, arrays (static, or 'i'/'j' for the traced ones) and
    masks, with Nones and at most one ellipsis inserted anywhere."""
    rng = np.random.default_rng(7)
    real = [1, -1, slice(None), slice(1, None), slice(None, None, -2),
            np.array([0, 2]), np.array([[1], [0]]), "i", "j", "mask"]
    out, seen = [], set()
    while len(out) < n:
        picks = [real[k] for k in rng.integers(0, len(real), rng.integers(1, 4))]
        if not any(isinstance(p, (np.ndarray, str)) for p in picks):
            continue
        entries = list(picks)
        for _ in range(rng.integers(0, 3)):
            entries.insert(rng.integers(0, len(entries) + 1), None)
        if rng.random() < 0.4:
            entries.insert(rng.integers(0, len(entries) + 1), Ellipsis)
        if not any(e is None or e is Ellipsis for e in entries):
            continue
        key = repr(entries)
        if key in seen:
            continue
        try:                                         # numpy's verdict (and masks' sizes)
            A[_concrete(entries, A, I, J)]
        except IndexError:
            continue
        seen.add(key)
        out.append(entries)
    return out


def _concrete(entries, a, i, j):
    """The index tuple for ``a`` (the traced ``i``, ``j`` wrapped into range;
    a mask covers the axis it lands on)."""
    out, axis = [], 0
    n_real = sum(e is not None and e is not Ellipsis for e in entries)
    for e in entries:
        if e is Ellipsis:
            axis += a.ndim - n_real
        elif isinstance(e, str):
            n = a.shape[min(axis, a.ndim - 1)]
            out.append(({"i": i, "j": j}[e] % n) if e != "mask"
                       else np.arange(n) % 2 == 0)
            axis += 1
            continue
        elif e is not None:
            axis += 1
        out.append(e)
    return tuple(out)


SWEEP = _sweep(60)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sweep_against_numpy(dtype):
    """Sixty generated index combinations, all in one compiled function."""
    a = A.astype(dtype)
    f = lambda a, i, j: tuple(a[_concrete(e, a, i, j)] for e in SWEEP)  # noqa: E731
    got = ferrule.jit(f)(a, I, J)
    for e, g, w in zip(SWEEP, got, f(a, I, J)):
        assert g.dtype == w.dtype and g.shape == w.shape, (e, g.shape, w.shape)
        np.testing.assert_array_equal(g, w, err_msg=repr(e))


def test_sweep_derivatives():
    """The gradient of a loss over the whole sweep, and the dot-product test."""
    f = lambda a: fnp.concatenate(                                        # noqa: E731
        [fnp.ravel(a[_concrete(e, a, I, J)]) for e in SWEEP[:30]])
    check_derivatives(f, (A,), RNG)


def test_gradient_is_the_scatter_of_the_cotangent():
    g = ferrule.grad(lambda a: fnp.sum(a[None, I, None] * 3.0))(A)
    want = np.zeros_like(A)
    np.add.at(want, I, 3.0)
    np.testing.assert_array_equal(g, want)


AT_CASES = [
    ("[None, i]", lambda i: (None, i)),
    ("[:, None, i % 4]", lambda i: (slice(None), None, i % 4)),
    ("[i, None, 1:, i % 3]", lambda i: (i, None, slice(1, None), i % 3)),
    ("[None]", lambda i: None),
    ("[None, row]", lambda i: (None, ROW)),
]


@pytest.mark.parametrize("mk", [c[1] for c in AT_CASES], ids=[c[0] for c in AT_CASES])
def test_at_with_none(mk):
    """``x.at[idx]`` with None: ``add`` is ``np.add.at``, ``set`` writes the
    values (numpy's ``x[idx] = v``: no repeated positions here), ``get``
    reads ``x[idx]``; derivatives in ``x`` and the values."""
    i = np.array([3, 0], np.int32)
    shape = A[mk(i)].shape
    v = RNG.standard_normal(shape)
    got = ferrule.jit(lambda a, v, i: (a.at[mk(i)].add(v), a.at[mk(i)].set(v),
                                       a.at[mk(i)].get()))(A, v, i)
    want_add, want_set = A.copy(), A.copy()
    np.add.at(want_add, mk(i), v)
    want_set[mk(i)] = v
    for g, w in zip(got, (want_add, want_set, A[mk(i)])):
        np.testing.assert_allclose(g, w, rtol=1e-15)
    check_derivatives(lambda a, v: a.at[mk(i)].add(v * v), (A, v), RNG)


def _line(marker):
    return next(k for k, s in enumerate(open(__file__), 1) if s.rstrip().endswith("# " + marker))


def test_errors_name_the_line():
    with pytest.raises(ShapeError) as info:
        ferrule.jit(lambda a, i: a[None, i, 0, None, 1, 2])(A, I)  # E:many
    assert str(info.value).startswith(f"{__file__}:{_line('E:many')}: too many indices (4)")
    with pytest.raises(ShapeError, match="only have one ellipsis"):
        ferrule.jit(lambda a, i: a[..., None, i, ...])(A, I)
    with pytest.raises(ShapeError, match="could not be broadcast"):
        ferrule.jit(lambda a, i, j: a[None, i, :, j])(A, I, J)


def test_sweep_covers_the_layouts():
    """The sweep has both placements of the broadcast dims and Nones on
    either side of the arrays (a guard on the generator)."""
    kinds = {tuple("A" if isinstance(e, (np.ndarray, str, int)) else repr(e)[:1] for e in s)
             for s in SWEEP}
    flat = list(itertools.chain.from_iterable(kinds))
    assert flat.count("N") > 20 and flat.count("E") > 5 and len(kinds) > 20


@pytest.mark.parametrize("f", [c[1] for c in CASES[:6]], ids=[c[0] for c in CASES[:6]])
def test_eager_agrees(f):
    """ferrule.eager (numpy's own indexing on the tape) gives jit's gradient."""
    w = RNG.standard_normal(f(A, I, J).shape)
    got = eager.grad(lambda a: np.sum(np.sin(f(a, I, J)) * w))(A)
    want = ferrule.grad(lambda a: fnp.sum(fnp.sin(f(a, I, J)) * w))(A)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
