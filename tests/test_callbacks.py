"""Host callbacks (issue 12): ``ferrule.pure_callback`` calls Python from
compiled CPU code; a callback is not differentiable by itself, but a
``@rules.primitive`` whose primal uses one and whose rules use callbacks or
traced code differentiates under grad/vjp/jvp. Real scipy functions, checked
by ``rules.testing`` (float64 finite differences, the dot-product test)."""

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import scipy.linalg
from scipy import special

import ferrule
import ferrule.numpy as fnp
from ferrule import rules
from ferrule import CallbackError

RNG = np.random.default_rng(21)
SD = ferrule.ShapeDtype


def like(x):
    return SD(x.shape, x.dtype)


def fd_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


# -- the callback itself ---------------------------------------------------------------

def test_callback_runs_inside_compiled_code():
    calls = []

    def host(x):
        calls.append(x.copy())
        return special.gammaln(x)

    f = ferrule.jit(lambda x: fnp.exp(ferrule.pure_callback(host, like(x), x * 1.0)) * 2.0)
    x = np.array([0.5, 1.5, 3.0, 7.0])
    np.testing.assert_allclose(f(x), 2 * special.gamma(x), rtol=1e-12)
    np.testing.assert_array_equal(calls[-1], x)
    low = f.lower(x)
    assert '"ad.pure_callback"' in low.as_text() and "name = \"host\"" in low.as_text()
    llvm_ir = low.as_text("llvm-ir")
    assert "@__ferrule_callback_" in llvm_ir    # a call by symbol, no address in the code
    assert "pure_callback 'host': host Python called from the compiled code" in low.explain()


def test_callback_results_as_a_pytree_and_dtype_conversion():
    def host(a, b):
        return {"sum": a + b, "prod": (a * b).astype(np.float64)}   # float64 for float32
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.ones((2, 3), np.float32) * 3

    @ferrule.jit
    def f(x, y):
        out = ferrule.pure_callback(host, {"sum": like(x), "prod": like(x)}, x, y)
        return out["sum"] - out["prod"]
    np.testing.assert_allclose(f(x, y), x + y - x * y, rtol=1e-6)
    # outside a trace it just runs, with the same checks
    out = ferrule.pure_callback(host, {"sum": like(x), "prod": like(x)}, x, y)
    assert out["prod"].dtype == np.float32


def test_callback_arguments_are_read_only_views_and_scalars_work():
    def host(x):
        assert not x.flags.writeable
        return np.float64(x.sum())
    f = ferrule.jit(lambda x: ferrule.pure_callback(host, SD((), np.float64), x) + 1.0)
    np.testing.assert_allclose(f(np.arange(5.0)), 11.0)


def test_unused_callbacks_are_dropped_and_equal_ones_merged():
    calls = []

    def host(x):
        calls.append(1)
        return x * 2.0

    @ferrule.jit
    def f(x):
        ferrule.pure_callback(host, like(x), x)          # unused: dropped
        a = ferrule.pure_callback(host, like(x), x)
        b = ferrule.pure_callback(host, like(x), x)      # equal to a: merged
        return a + b
    np.testing.assert_allclose(f(np.ones(3)), 4 * np.ones(3))
    assert len(calls) == 1


def test_an_exception_in_a_callback_is_raised_after_the_call():
    def host(x):
        raise ValueError("scipy said no")
    f = ferrule.jit(lambda x: ferrule.pure_callback(host, like(x), x) * 2.0)
    with pytest.raises(CallbackError, match=r"pure_callback 'host' \(traced at \S*"
                       r"test_callbacks\.py:\d+\) raised ValueError: scipy said no") as e:
        f(np.ones(3))
    assert isinstance(e.value.__cause__, ValueError)
    g = ferrule.jit(lambda x: ferrule.pure_callback(lambda x: x[:2], like(x), x))
    with pytest.raises(CallbackError, match=r"result 1 has shape \(2,\); it was declared \(3,\)"):
        g(np.ones(3))
    # the compiled function is still usable afterwards
    ok = ferrule.jit(lambda x: ferrule.pure_callback(np.cos, like(x), x))
    np.testing.assert_allclose(ok(np.zeros(3)), np.ones(3))


def test_callbacks_from_several_threads():
    f = ferrule.jit(lambda x: ferrule.pure_callback(special.erf, like(x), x) + x)
    xs = [RNG.standard_normal(100) for _ in range(8)]
    f(xs[0])
    results = [None] * len(xs)

    def work(k):
        for _ in range(20):
            results[k] = f(xs[k])
    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for x, r in zip(xs, results):
        np.testing.assert_allclose(r, special.erf(x) + x, rtol=1e-12)


def test_a_callback_is_not_differentiable_by_itself():
    def loss(x):
        return fnp.sum(ferrule.pure_callback(special.gammaln, like(x), x))
    x = np.array([1.5, 2.5])
    with pytest.raises(ferrule.CompileError,
                       match=r"pure_callback 'gammaln' \(at test_callbacks\.py:\d+\) is not "
                             r"differentiable.*@rules.primitive"):
        ferrule.grad(loss)(x)
    with pytest.raises(ferrule.CompileError, match="pure_callback 'gammaln'.*forward mode"):
        ferrule.jvp(loss, (x,), (x,))
    from ferrule import eager
    with pytest.raises(ferrule.TracingError, match="pure_callback 'gammaln' is not differentiable"):
        eager.grad(loss)(x)


def test_callbacks_are_refused_for_cuda_with_the_name_and_line():
    f = lambda x: ferrule.pure_callback(special.gammaln, like(x), x)
    with pytest.raises(ferrule.CompileError, match=r"pure_callback 'gammaln' \(at "
                       r"test_callbacks\.py:\d+\) cannot run on target 'cuda:sm_90'"):
        ferrule.compile(f, SD((4,), np.float32), target="cuda:sm_90")
    with pytest.raises(ferrule.CompileError, match="cannot run on target 'cuda'"):
        ferrule.jit(f, target="cuda")(np.ones(4, np.float32))


def test_a_function_with_a_callback_is_not_split_over_rows():
    from ferrule.runtime.cpu import CpuOptions
    f = ferrule.jit(lambda x: ferrule.pure_callback(np.tanh, like(x), x * 2.0) + 1.0)
    x = RNG.standard_normal((512, 256))
    low = f.lower(x)
    fn = low.compile(CpuOptions(threads=2, split_min_elements=1))
    assert "not splittable over rows" in fn.threads_note and "callback" in fn.threads_note
    np.testing.assert_allclose(fn(x)[0], np.tanh(2 * x) + 1, rtol=1e-12)


def test_the_disk_cache_never_reuses_a_stale_callback(tmp_path):
    # Each process compiles the same function; the second registers another
    # callback first, so its numbering differs; the third repeats the first
    # and loads its object code from the disk cache: the callback symbol is
    # bound anew in each process, so all three compute the right values.
    script = textwrap.dedent("""
        import sys, numpy as np, ferrule, ferrule.numpy as fnp
        if sys.argv[1] == "shifted":
            ferrule.jit(lambda x: ferrule.pure_callback(np.sin, ferrule.ShapeDtype((2,), np.float64), x))(np.ones(2))
        scale = float(sys.argv[2])
        host = lambda x: x * scale       # a new Python object in each process
        f = ferrule.jit(lambda x: ferrule.pure_callback(host, ferrule.ShapeDtype((3,), np.float64), x) + 1.0)
        out = f(np.arange(3.0))
        print(f.lower(np.arange(3.0)).compile().from_disk_cache, *out)
    """)
    env = {**__import__("os").environ, "FERRULE_CACHE_DIR": str(tmp_path)}
    outs = []
    for mode, scale in (("plain", 2.0), ("shifted", 3.0), ("plain", 5.0)):
        p = subprocess.run([sys.executable, "-c", script, mode, str(scale)], env=env,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        outs.append(p.stdout.split())
    assert outs[0][0] == "False" and outs[2][0] == "True"   # the third one is a cache hit
    for (hit, *vals), scale in zip(outs, (2.0, 3.0, 5.0)):
        np.testing.assert_allclose([float(v) for v in vals], np.arange(3.0) * scale + 1.0)


# -- primitives around callbacks: scipy.special ------------------------------------------

@rules.primitive
def polygamma1(x):
    return ferrule.pure_callback(lambda x: special.polygamma(1, x), like(x), x)


@rules.primitive
def digamma(x):
    return ferrule.pure_callback(special.digamma, like(x), x)


@rules.rrule(digamma)
def digamma_rrule(config, x):
    return digamma(x), lambda ybar: (rules.NoTangent(), ybar * polygamma1(x))


@rules.primitive
def gammaln(x):
    return ferrule.pure_callback(special.gammaln, like(x), x)


@rules.rrule(gammaln)
def gammaln_rrule(config, x):
    y = gammaln(x)
    return y, lambda ybar: (rules.NoTangent(), ybar * digamma(x))


def test_gammaln_rule_checked_by_rules_testing():
    x = np.array([0.3, 1.7, 4.2, 11.0])
    check = rules.testing.test_rrule(gammaln, x)
    assert check.max_rel_err < 1e-6
    rules.testing.test_rrule(digamma, x)


def test_gammaln_under_jit_grad_vjp_jvp():
    x = np.array([0.3, 1.7, 4.2, 11.0])

    def loss(x):
        return fnp.sum(gammaln(x) * x)
    g = ferrule.jit(ferrule.grad(loss))(x)
    np.testing.assert_allclose(g, special.gammaln(x) + x * special.digamma(x), rtol=1e-12)
    np.testing.assert_allclose(g, fd_grad(lambda x: np.sum(special.gammaln(x) * x), x),
                               rtol=1e-6, atol=1e-8)
    y, pb = ferrule.vjp(gammaln, x)
    ybar = RNG.standard_normal(4)
    np.testing.assert_allclose(pb(ybar)[0], ybar * special.digamma(x), rtol=1e-12)
    # forward mode: the transpose of the pullback (the cotangent meets the
    # callback's result, never enters a callback)
    t = RNG.standard_normal(4)
    _, yt = ferrule.jvp(gammaln, (x,), (t,))
    np.testing.assert_allclose(yt, special.digamma(x) * t, rtol=1e-12)
    np.testing.assert_allclose(np.dot(yt, ybar), np.dot(t, pb(ybar)[0]), rtol=1e-12)
    report = ferrule.jit(ferrule.grad(loss)).lower(x).explain()
    assert "@gammaln (rules: rrule gammaln_rrule): reverse mode used rrule gammaln_rrule" in report


def test_gammaln_second_order_through_the_rules():
    x = np.array([0.3, 1.7, 4.2, 11.0])
    d1 = ferrule.grad(lambda x: fnp.sum(gammaln(x)))
    h = ferrule.grad(lambda x: fnp.sum(d1(x)))(x)
    np.testing.assert_allclose(h, special.polygamma(1, x), rtol=1e-12)
    _, h2 = ferrule.jvp(d1, (x,), (np.ones(4),))
    np.testing.assert_allclose(h2, special.polygamma(1, x), rtol=1e-12)


@rules.primitive
def erfcx(x):                     # frule only: its tangent is traced code on callback values
    return ferrule.pure_callback(special.erfcx, like(x), x)


@rules.frule(erfcx)
def erfcx_frule(config, tangents, x):
    y = erfcx(x)
    return y, (2.0 * x * y - 2.0 / np.sqrt(np.pi)) * tangents[1]


def test_frule_around_a_callback_serves_grad_by_transposition():
    x = np.array([-1.0, 0.2, 3.0, 30.0])
    g = ferrule.grad(lambda x: fnp.sum(erfcx(x)))(x)
    np.testing.assert_allclose(g, fd_grad(lambda x: np.sum(special.erfcx(x)), x), rtol=1e-6)
    rules.testing.test_frule(erfcx, x)


# -- primitives around callbacks: scipy.linalg.solve, with callbacks in both rules -------

@rules.primitive
def solve(A, b):
    return ferrule.pure_callback(scipy.linalg.solve, like(b), A, b)


@rules.rrule(solve)
def solve_rrule(config, A, b):
    x = solve(A, b)

    def pb(xbar):
        bbar = ferrule.pure_callback(lambda A, g: scipy.linalg.solve(A.T, g), like(b), A, xbar)
        return rules.NoTangent(), -(bbar[:, None] * x[None, :]), bbar
    return x, pb


def test_solve_rrule_with_a_callback_in_its_pullback():
    A = RNG.standard_normal((4, 4)) + 4 * np.eye(4)
    b = RNG.standard_normal(4)
    rules.testing.test_rrule(solve, A, b)
    w = RNG.standard_normal(4)
    gA, gb = ferrule.jit(ferrule.grad(lambda A, b: fnp.sum(solve(A, b) * w), argnums=(0, 1)))(A, b)
    np_loss = lambda A, b: np.sum(np.linalg.solve(A, b) * w)
    np.testing.assert_allclose(gA, fd_grad(lambda A: np_loss(A, b), A), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(gb, fd_grad(lambda b: np_loss(A, b), b), rtol=1e-6, atol=1e-9)


def test_a_pullback_whose_cotangent_enters_a_callback_cannot_serve_forward_mode():
    A = RNG.standard_normal((3, 3)) + 3 * np.eye(3)
    b = RNG.standard_normal(3)
    with pytest.raises(ferrule.CompileError) as e:
        ferrule.jvp(solve, (A, b), (np.eye(3), b))
    msg = str(e.value)
    assert "has an rrule, solve_rrule, but no frule, so forward mode transposes" in msg
    assert "passes a tangent to the callback '<lambda>'" in msg and "cannot transpose it" in msg
    assert "test_callbacks.py:" in msg


@rules.primitive
def solve2(A, b):
    return ferrule.pure_callback(scipy.linalg.solve, like(b), A, b)


@rules.rrule(solve2)
def solve2_rrule(config, A, b):
    return solve_rrule(config, A, b)


@rules.frule(solve2)
def solve2_frule(config, tangents, A, b):
    _, dA, db = tangents
    x = solve2(A, b)
    rhs = db - fnp.sum(dA * x[None, :], axis=1)
    return x, ferrule.pure_callback(scipy.linalg.solve, like(b), A, rhs)


def test_solve_with_both_rules_every_mode():
    A = RNG.standard_normal((4, 4)) + 4 * np.eye(4)
    b = RNG.standard_normal(4)
    check = rules.testing.test_rrule(solve2, A, b)      # FD and the dot-product identity
    assert check.dot_product is not None
    rules.testing.test_frule(solve2, A, b)
    dA, db = RNG.standard_normal((4, 4)), RNG.standard_normal(4)
    x, xt = ferrule.jit(lambda A, b, dA, db: ferrule.jvp(solve2, (A, b), (dA, db)))(A, b, dA, db)
    h = 1e-6
    fd = (np.linalg.solve(A + h * dA, b + h * db) - np.linalg.solve(A - h * dA, b - h * db)) / (2 * h)
    np.testing.assert_allclose(xt, fd, rtol=1e-6, atol=1e-9)
    low = ferrule.jit(lambda A, b, dA, db: ferrule.jvp(solve2, (A, b), (dA, db))).lower(A, b, dA, db)
    assert "forward mode used frule solve2_frule as written" in low.explain()


@rules.primitive
def solve3(A, b):                 # frule only, its tangent through a callback
    return ferrule.pure_callback(scipy.linalg.solve, like(b), A, b)


@rules.frule(solve3)
def solve3_frule(config, tangents, A, b):
    return solve2_frule(config, tangents, A, b)


def test_an_frule_whose_tangent_enters_a_callback_cannot_serve_reverse_mode():
    A = RNG.standard_normal((3, 3)) + 3 * np.eye(3)
    b = RNG.standard_normal(3)
    with pytest.raises(ferrule.CompileError) as e:
        ferrule.grad(lambda A, b: fnp.sum(solve3(A, b)))(A, b)
    msg = str(e.value)
    assert "has an frule, solve3_frule, but no rrule, so reverse mode transposes" in msg
    assert "passes a tangent to the callback 'solve'" in msg
    _, xt = ferrule.jvp(solve3, (A, b), (np.zeros((3, 3)), b))   # forward mode: as written
    np.testing.assert_allclose(xt, np.linalg.solve(A, b), rtol=1e-10)


def test_the_compiled_call_releases_the_gil_and_callbacks_take_it():
    # ctypes: a call through a CFUNCTYPE prototype (not PYFUNCTYPE) releases
    # the GIL for the native code; a CFUNCTYPE callback takes it back
    # (PyGILState_Ensure) to run Python. Both prototypes are checked here; the
    # threads test above runs callbacks from several threads at once.
    import ctypes
    f = ferrule.jit(lambda x: ferrule.pure_callback(np.sin, like(x), x) * 2.0)
    x = np.ones(3)
    fn = f.lower(x).compile()
    np.testing.assert_allclose(fn(x)[0], 2 * np.sin(x))
    from ferrule.runtime.cpu import call_path
    for native in (fn._cfunc, call_path.trampoline()):   # either call path
        if native is not None:
            assert not type(native)._flags_ & ctypes._FUNCFLAG_PYTHONAPI  # GIL released
    (cb,) = fn.callbacks
    assert not type(cb.trampoline)._flags_ & ctypes._FUNCFLAG_PYTHONAPI
    assert cb.calls >= 1
