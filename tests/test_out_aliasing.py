"""``out=`` arrays that overlap the inputs: numpy's semantics (the results
as if computed into fresh arrays, then copied), on one thread and split
over row chunks; two overlapping ``out=`` arrays are a ValueError."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule.runtime import cpu

RNG = np.random.default_rng(0)


def _split():
    return cpu.CpuOptions(threads=2, split_min_elements=1, split_min_rows_with_sums=1)


PROGRAMS = {     # each reads other elements of x than the one it writes
    "transpose": (lambda x: x.T * 2.0, (6, 6)),
    "reversal": (lambda x: fnp.concatenate([x[3:], x[:3]], axis=0) + 1.0, (6, 6)),
    "matmul": (lambda x: x @ x, (6, 6)),
    "row-sum broadcast": (lambda x: x - fnp.sum(x, axis=0, keepdims=True), (6, 6)),
    "pointwise": (lambda x: fnp.tanh(x) * 3.0, (6, 6)),
}


@pytest.mark.parametrize("split", [False, True], ids=["one thread", "split"])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_out_that_is_an_input(name, split):
    fn, shape = PROGRAMS[name]
    x = RNG.standard_normal(shape)
    want = fn(x)
    previous = cpu.set_defaults(_split()) if split else None
    try:
        f = ferrule.jit(fn)
        y = x.copy()
        (got,) = f.lower(y).compile()(y, out=(y,))
        assert got is y
        np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
        y = x.copy()
        got = f(y, out=(y,))
        np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    finally:
        if previous is not None:
            cpu.set_defaults(previous)


def test_out_that_overlaps_part_of_an_input():
    buf = RNG.standard_normal(12)
    x, out = buf[:9].reshape(3, 3), buf[3:].reshape(3, 3)     # 6 elements shared
    want = x.T + 1.0
    ferrule.jit(lambda a: a.T + 1.0)(x, out=(out,))
    np.testing.assert_allclose(out, want)


def test_two_outs_that_overlap_are_a_value_error():
    a = np.zeros((2, 3))
    f = ferrule.jit(lambda x: (x + 1.0, x * 2.0))
    with pytest.raises(ValueError, match=r"out\[0\] and out\[1\] overlap"):
        f(np.ones((2, 3)), out=(a, a))
