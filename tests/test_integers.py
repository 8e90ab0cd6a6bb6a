"""Integer arrays: int32/int64/uint32 (and bool) as arguments, results and
traced values, with numpy's semantics (frontend/integers.py); integers
never differentiated (float0 cotangents); Python float arguments traced."""

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp

I32, I64, U32 = np.int32, np.int64, np.uint32
RNG = np.random.default_rng(0)


def ints(dtype, shape=(3, 4), lo=-20, hi=20):
    if np.dtype(dtype) == np.uint32:
        lo = 0
    return RNG.integers(lo, hi, shape).astype(dtype)


@pytest.mark.parametrize("dtype", [I32, I64, U32, np.bool_])
def test_arguments_and_results_round_trip(dtype):
    x = ints(dtype) if dtype != np.bool_ else RNG.random((3, 4)) > 0.5
    f = ferrule.jit(lambda x: (x, x.T, x[1:, ::2]))
    a, b, c = f(x)
    for got, want in ((a, x), (b, x.T), (c, x[1:, ::2])):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, want)


def test_uint32_wraps_and_shifts_logically():
    x = np.array([0, 1, 0x80000000, 0xFFFFFFFF], U32)
    f = ferrule.jit(lambda x: (x + 1, x * 3, x >> 31, x << 4, x - 2, ~x, x // 7, x % 7,
                               x > 5, x.astype(np.float64), x.astype(I64)))
    with np.errstate(over="ignore"):
        want = (x + 1, x * 3, x >> 31, x << 4, x - 2, ~x, x // 7, x % 7, x > 5,
                x.astype(np.float64), x.astype(I64))
    for g, w in zip(f(x), want):
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("dtype", [I32, I64])
def test_floor_division_and_remainder_have_numpys_signs(dtype):
    a = np.array([7, -7, 7, -7, 0, 5, np.iinfo(dtype).min, 9], dtype)
    b = np.array([2, 2, -2, -2, 3, 0, -1, 0], dtype)
    with np.errstate(all="ignore"):
        want = (a // b, a % b, a // 3, -7 // b, a % -4)
    got = ferrule.jit(lambda a, b: (a // b, a % b, a // 3, -7 // b, a % -4))(a, b)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)   # x // 0 == x % 0 == 0, INT_MIN // -1 wraps


@pytest.mark.parametrize("dtype", [I32, I64, U32])
def test_bitwise_ops_shifts_and_comparisons(dtype):
    a, b = ints(dtype, lo=0, hi=1000), ints(dtype, lo=0, hi=1000)
    s = np.array([[0, 1, 5, 31], [2, 40, 64, 3], [7, 8, 33, 0]], dtype)   # >= width: 0
    f = ferrule.jit(lambda a, b, s: (a & b, a | b, a ^ b, ~a, a << s, a >> s, a < b, a == b,
                                     a >= 7, fnp.maximum(a, b), fnp.minimum(a, 3), -a, abs(a)))
    got = f(a, b, s)
    width = 64 if dtype == I64 else 32
    big = s >= width
    with np.errstate(over="ignore"):
        want = (a & b, a | b, a ^ b, ~a, np.where(big, 0, a << np.where(big, 0, s)),
                np.where(big, 0, a >> np.where(big, 0, s)), a < b, a == b, a >= 7,
                np.maximum(a, b), np.minimum(a, 3), -a, abs(a))
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
    neg = ferrule.jit(lambda x: x >> 40)(np.array([-5, 5], I64 if dtype == I64 else I32))
    np.testing.assert_array_equal(neg, [-1, 0])        # a negative number shifted out: -1


PROMOTION = [  # (id, f, args, numpy's dtype or ferrule's where they differ)
    ("i32+i32", lambda a, b: a + b, (np.int32(1), np.int32(2)), I32),
    ("i32+i64", lambda a, b: a + b, (ints(I32), ints(I64)), I64),
    ("i32+u32", lambda a, b: a + b, (ints(I32), ints(U32)), I64),
    ("u32+py", lambda a: a + 3, (ints(U32),), U32),
    ("i32*py_float", lambda a: a * 0.5, (ints(I32),), np.float32),     # numpy: float64
    ("i64/i64", lambda a, b: a / b, (ints(I64), ints(I64, lo=1)), np.float32),  # numpy: float64
    ("i32+f32", lambda a, b: a + b, (ints(I32), np.ones(4, np.float32)), np.float32),  # numpy: f64
    ("i32+f64", lambda a, b: a + b, (ints(I32), np.ones(4)), np.float64),
    ("exp(i32)", lambda a: fnp.exp(a), (ints(I32, lo=-3, hi=3),), np.float32),  # numpy: f64
    ("bool&bool", lambda a: (a > 0) & (a < 5), (ints(I32),), np.bool_),
    ("where_int", lambda a: fnp.where(a > 0, a, 0), (ints(I32),), I32),
    ("sum_i32", lambda a: fnp.sum(a, axis=0), (ints(I32),), I64),
    ("sum_bool", lambda a: fnp.sum(a > 0), (ints(I32),), I64),
    ("max_u32", lambda a: fnp.max(a, axis=1), (ints(U32),), U32),
    ("min_i64", lambda a: a.min(), (ints(I64),), I64),
    ("mean_i32", lambda a: fnp.mean(a), (ints(I32),), np.float32),    # numpy: float64
    ("i32**2", lambda a: a ** 2, (ints(I32),), I32),
]


@pytest.mark.parametrize("f,args,want", [p[1:] for p in PROMOTION], ids=[p[0] for p in PROMOTION])
def test_promotion_and_values(f, args, want):
    got = ferrule.jit(f)(*args)
    assert got.dtype == want
    with np.errstate(all="ignore"):
        ref = f(*[np.asarray(a) for a in args])
    np.testing.assert_allclose(got, np.asarray(ref).astype(want), rtol=1e-6)


def test_astype_between_ints_floats_and_bools():
    x = np.array([-2.7, -0.5, 0.0, 0.5, 3.9, 1e9], np.float32)
    i = np.array([-3, 0, 7, -1], I32)
    f = ferrule.jit(lambda x, i: (x.astype(I32), x.astype(I64), x.astype(np.bool_),
                                  i.astype(U32), i.astype(I64), i.astype(np.float32),
                                  i.astype(np.bool_), (i > 0).astype(I32),
                                  i.astype(U32).astype(np.float64), (x > 0).astype(np.float64)))
    want = (x.astype(I32), x.astype(I64), x.astype(np.bool_), i.astype(U32), i.astype(I64),
            i.astype(np.float32), i.astype(np.bool_), (i > 0).astype(I32),
            i.astype(U32).astype(np.float64), (x > 0).astype(np.float64))
    for g, w in zip(f(x, i), want):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)
    big = ferrule.jit(lambda i: i.astype(I32))(np.array([2**40 + 5, -1], I64))
    np.testing.assert_array_equal(big, np.array([2**40 + 5, -1]).astype(I32))   # wraps


def test_arange_and_constants():
    f = ferrule.jit(lambda x: (fnp.arange(5), fnp.arange(2, 11, 3, dtype=I32),
                               fnp.arange(5000)[4990:], fnp.arange(3.0),
                               x + np.array([1, 2, 3], I64), fnp.asarray([4, 5]) * x[:2]))
    a, b, c, d, e, g = f(np.array([1, 1, 1], I32))
    assert a.dtype == I64 and a.tolist() == list(range(5))
    assert b.dtype == I32 and b.tolist() == [2, 5, 8]
    assert c.tolist() == list(range(4990, 5000))          # computed, not stored
    assert d.dtype == np.float32 and d.tolist() == [0.0, 1.0, 2.0]
    assert e.dtype == I64 and e.tolist() == [2, 3, 4]
    assert g.dtype == I64 and g.tolist() == [4, 5]
    assert fnp.arange(3).dtype == I64 and fnp.arange(3.0).dtype == np.float32   # numpy outside


def test_argmax_argmin_ties_nan_axes():
    x = np.array([[1.0, 3.0, 3.0, -1.0], [np.nan, 2.0, np.nan, 0.0], [-np.inf] * 4], np.float32)
    f = ferrule.jit(lambda x: (fnp.argmax(x, axis=1), fnp.argmin(x, axis=1), fnp.argmax(x),
                               x.argmax(axis=0), fnp.argmin(x, axis=0, keepdims=True),
                               fnp.argmax(x, keepdims=True)))
    want = (np.argmax(x, axis=1), np.argmin(x, axis=1), np.argmax(x), x.argmax(axis=0),
            np.argmin(x, axis=0, keepdims=True), np.argmax(x, keepdims=True))
    for g, w in zip(f(x), want):
        assert g.dtype == np.int64 and g.shape == w.shape
        np.testing.assert_array_equal(g, w)
    i = np.array([[5, 2, 5], [-1, -7, -7]], I32)
    u = np.array([[4000000000, 1, 4000000000]], U32)
    got = ferrule.jit(lambda i, u: (fnp.argmax(i, 1), fnp.argmin(i, 1), fnp.argmax(u, 1),
                                    fnp.argmin(u, 1), fnp.argmax(i > 0, 1)))(i, u)
    for g, w in zip(got, (np.argmax(i, 1), np.argmin(i, 1), np.argmax(u, 1), np.argmin(u, 1),
                          np.argmax(i > 0, 1))):
        np.testing.assert_array_equal(g, w)


def test_argmax_has_no_derivative_and_does_not_stop_one():
    """An integer result of float inputs asks for no rule: grad and jvp
    through a function that uses argmax."""
    x = RNG.standard_normal((3, 5))

    def f(x):
        k = fnp.argmax(x, axis=1)
        return fnp.sum(x * x * k[:, None].astype(x.dtype))

    g = ferrule.grad(f)(x)
    np.testing.assert_allclose(g, 2 * x * np.argmax(x, 1)[:, None], rtol=1e-12)
    t = RNG.standard_normal(x.shape)
    _, tout = ferrule.jvp(f, (x,), (t,))
    np.testing.assert_allclose(tout, np.sum(2 * x * t * np.argmax(x, 1)[:, None]), rtol=1e-12)


def test_clip_values_and_derivatives():
    x = np.array([-2.0, 0.0, 0.3, 1.0, 5.0, np.nan])
    f = ferrule.jit(lambda x: (fnp.clip(x, 0.0, 1.0), x.clip(None, 0.5), fnp.clip(x, 0.2, None),
                               fnp.clip(x, 2.0, 1.0)))
    for g, w in zip(f(x), (np.clip(x, 0, 1), np.clip(x, None, 0.5), np.clip(x, 0.2, None),
                           np.clip(x, 2.0, 1.0))):
        np.testing.assert_array_equal(g, w)
    dx = ferrule.grad(lambda x: fnp.sum(fnp.clip(x, 0.0, 1.0)))(x)
    np.testing.assert_array_equal(dx, [0.0, 1.0, 1.0, 1.0, 0.0, np.nan])   # 1 at the bounds
    lo = np.array([0.5, 0.5, 0.5])
    d = ferrule.grad(lambda x, lo: fnp.sum(fnp.clip(x, lo, 1.0)), argnums=(0, 1))(
        np.array([0.0, 0.7, 2.0]), lo)
    np.testing.assert_array_equal(d[0], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(d[1], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(ferrule.jit(lambda i: fnp.clip(i, 0, 3))(np.array([-1, 2, 9], I32)),
                                  [0, 2, 3])


def test_min_reduction_and_its_derivative():
    x = np.array([[1.0, 0.5, 0.5], [2.0, 3.0, -1.0], [np.nan, 0.0, 1.0]])
    np.testing.assert_array_equal(ferrule.jit(lambda x: fnp.min(x, axis=1))(x), np.min(x, axis=1))
    assert ferrule.jit(fnp.amin)(x[:2]) == -1.0
    g = ferrule.grad(lambda x: fnp.sum(fnp.min(x, axis=1)))(x)
    np.testing.assert_array_equal(g[:2], [[0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])   # ties split
    assert np.all(np.isnan(g[2]))                                              # NaN in, NaN out
    t = np.ones_like(x[:2])
    _, tout = ferrule.jvp(lambda x: fnp.min(x, axis=1), (x[:2],), (t * [[0, 2, 4], [1, 1, 1]],))
    np.testing.assert_array_equal(tout, [3.0, 1.0])                            # the mean tangent
    with pytest.raises(ferrule.ShapeError, match="zero-size array to reduction operation minimum"):
        ferrule.jit(lambda x: fnp.min(x, axis=0))(np.ones((0, 2)))


def test_grad_vjp_jvp_with_integer_arguments():
    """Integer arguments ride along: grad refuses them in argnums; vjp's
    pullback gives float0 zeros for them; jvp takes float0 tangents."""
    x, i = RNG.standard_normal(4), np.array([3, 0, 1], I32)
    f = lambda x, i: fnp.sum(x[i] ** 2) + fnp.sum(i)          # noqa: E731
    g = ferrule.grad(f)(x, i)
    np.testing.assert_allclose(g, np.bincount(i, 2 * x[i], 4))
    with pytest.raises(ferrule.DTypeError, match="grad needs float arguments"):
        ferrule.grad(f, argnums=1)(x, i)
    out, pb = ferrule.vjp(f, x, i)
    dx, di = pb(1.0)
    np.testing.assert_allclose(dx, g)
    assert di.dtype == ferrule.float0 and di.shape == (3,)
    outs, tans = ferrule.jvp(lambda x, i: (x[i], i + 1), (x, i), (np.ones(4), np.zeros(3, ferrule.float0)))
    np.testing.assert_array_equal(tans[0], np.ones(3))
    assert tans[1].dtype == ferrule.float0 and outs[1].tolist() == [4, 1, 2]
    # inside jit, float0 results come back as float0 arrays
    h = ferrule.jit(lambda x, i: ferrule.vjp(f, x, i)[1](1.0))
    hx, hi = h(x, i)
    np.testing.assert_allclose(hx, g)
    assert hi.dtype == ferrule.float0
    # a pullback given a float0 cotangent for an integer output
    (v, k), pb2 = ferrule.vjp(lambda x: (fnp.sum(x), fnp.argmax(x)), x)
    np.testing.assert_array_equal(pb2((2.0, np.zeros((), ferrule.float0)))[0], np.full(4, 2.0))


def test_traced_float_arguments_do_not_recompile():
    calls = []

    @ferrule.jit
    def sgd(w, g, lr):
        calls.append(1)
        return w - lr * g

    w, g = np.ones(3, np.float32), np.full(3, 2.0, np.float32)
    for step in range(5):
        lr = 0.1 / (1 + step)                          # a schedule
        got = sgd(w, g, lr)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, w - np.float32(lr) * g, rtol=1e-7)
    assert len(calls) == 1
    grad_lr = ferrule.grad(lambda lr, w: fnp.sum(w * lr * lr))(0.5, w)   # a float argument's gradient
    assert grad_lr.dtype == np.float32 and grad_lr == pytest.approx(3.0)
    assert ferrule.jit(lambda a: a * 2.0)(0.25).dtype == np.float32   # returned: float32


def test_integer_data_through_scan_and_grad():
    """Token ids as the xs of a scan whose step gathers embeddings: grad
    matches the unrolled loop."""
    E = RNG.standard_normal((6, 3))
    toks = np.array([[1, 5], [5, 5], [0, 2]], I32)

    def run(E, toks, unroll):
        def step(h, t):
            h = fnp.tanh(h + E[t])
            return h, fnp.sum(h)
        h0 = fnp.zeros((2, 3), dtype=E.dtype)
        if not unroll:
            return fnp.sum(ferrule.scan(step, h0, toks)[1])
        h, tot = h0, 0.0
        for k in range(3):
            h, y = step(h, toks[k])
            tot = tot + y
        return tot

    a = ferrule.grad(lambda E, t: run(E, t, False))(E, toks)
    b = ferrule.grad(lambda E, t: run(E, t, True))(E, toks)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
