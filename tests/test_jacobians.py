"""jacfwd, jacrev, hessian, linearize and checkpoint (issue 14).

Every derivative is checked in float64 against central finite differences
of the compiled function (step 1e-6), against the other mode, and where a
transform has a transpose (jvp/vjp), by the dot-product test; shapes follow
JAX (out.shape + in.shape). Both jit and eager calls are covered.
"""

import re

import numpy as np
import pytest

import ferrule
import ferrule.numpy as fnp
from ferrule import DTypeError, TracingError

RNG = np.random.default_rng(0)
EPS = 1e-6


def _line(marker: str) -> int:
    with open(__file__) as fh:
        for k, line in enumerate(fh, 1):
            if line.rstrip().endswith("# " + marker):
                return k
    raise KeyError(marker)


def fd_jacobian(f, args, argnum=0):
    """Central differences of ``f`` (numpy in, numpy out) in
    ``args[argnum]``: shape out.shape + in.shape."""
    x = np.asarray(args[argnum], np.float64)
    cols = []
    for k in range(x.size):
        e = np.zeros(x.size)
        e[k] = EPS
        hi, lo = list(args), list(args)
        hi[argnum] = x + e.reshape(x.shape)
        lo[argnum] = x - e.reshape(x.shape)
        cols.append((np.asarray(f(*hi)) - np.asarray(f(*lo))) / (2 * EPS))
    out_shape = np.shape(cols[0])
    return np.stack(cols, axis=-1).reshape(out_shape + x.shape)


def close(a, b, tol=1e-6):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# f: in -> out shapes covering scalar, vector and matrix inputs and outputs.
CASES = {
    "scalar->scalar": (lambda x: fnp.sin(x) * x ** 2, ()),
    "vector->vector": (lambda x: fnp.tanh(x) * fnp.sum(x * x), (4,)),
    "matrix->vector": (lambda x: fnp.sum(fnp.exp(x) * x, axis=1), (3, 2)),
    "vector->matrix": (lambda x: fnp.reshape(fnp.sin(x), (2, 3)) * x[0], (6,)),
    "matrix->scalar": (lambda x: fnp.sum(fnp.tanh(x @ x.T)), (2, 3)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_shapes_against_finite_differences(name):
    f, shape = CASES[name]
    x = RNG.standard_normal(shape)
    want = fd_jacobian(ferrule.jit(f), (x,))
    jf = ferrule.jit(ferrule.jacfwd(f))(x)
    jr = ferrule.jit(ferrule.jacrev(f))(x)
    out_shape = np.shape(ferrule.jit(f)(x))
    assert jf.shape == jr.shape == out_shape + shape
    close(jf, want)
    close(jr, want)
    close(jf, jr, 1e-12)


def test_eager_equals_jit_and_compiles_once():
    f, shape = CASES["matrix->vector"]
    x = RNG.standard_normal(shape)
    close(ferrule.jacfwd(f)(x), ferrule.jit(ferrule.jacfwd(f))(x), 1e-14)
    close(ferrule.jacrev(f)(x), ferrule.jit(ferrule.jacrev(f))(x), 1e-14)
    from ferrule.transforms import _COMPILED
    before = len(_COMPILED[f])
    ferrule.jacfwd(f)(x)
    assert len(_COMPILED[f]) == before   # a new jacfwd(f) reuses the compilation


def layer(x, W, b):
    return fnp.tanh(x @ W + b), fnp.sum(W * W)


def test_tuple_argnums_and_tuple_outputs():
    x, W, b = RNG.standard_normal((2, 3)), RNG.standard_normal((3, 4)), RNG.standard_normal(4)
    jl = ferrule.jit(layer)
    want = [[fd_jacobian(lambda *a: jl(*a)[out], (x, W, b), k) for k in (0, 1)]
            for out in (0, 1)]
    (hx, hW), (rx, rW) = ferrule.jit(ferrule.jacfwd(layer, argnums=(0, 1)))(x, W, b)
    assert hx.shape == (2, 4, 2, 3) and hW.shape == (2, 4, 3, 4)
    assert rx.shape == (2, 3) and rW.shape == (3, 4)
    for got, w in zip((hx, hW, rx, rW), (*want[0], *want[1])):
        close(got, w)
    (hx2, hW2), (rx2, rW2) = ferrule.jacrev(layer, argnums=(0, 1))(x, W, b)   # eager
    for got, w in zip((hx2, hW2, rx2, rW2), (hx, hW, rx, rW)):
        close(got, w, 1e-12)


def test_pytree_argument():
    def f(p):
        return fnp.sin(p["a"]) * p["b"]
    p = {"a": RNG.standard_normal(3), "b": RNG.standard_normal(3)}
    jf, jr = ferrule.jacfwd(f)(p), ferrule.jacrev(f)(p)
    assert set(jf) == {"a", "b"} and jf["a"].shape == (3, 3)
    for k in "ab":
        close(jf[k], jr[k], 1e-12)
    close(jf["a"], np.diag(np.cos(p["a"]) * p["b"]), 1e-12)
    close(jf["b"], np.diag(np.sin(p["a"])), 1e-12)


def test_dot_product_test():
    """v · (J u) == (Jᵀ v) · u, and J u / vᵀ J are jvp / vjp."""
    f = CASES["matrix->vector"][0]
    x = RNG.standard_normal((3, 2))
    u, v = RNG.standard_normal((3, 2)), RNG.standard_normal(3)
    J = ferrule.jacfwd(f)(x)
    Ju = ferrule.jvp(f, (x,), (u,))[1]
    vJ = ferrule.vjp(f, x)[1](v)[0]
    close(np.tensordot(J, u, 2), Ju, 1e-12)
    close(np.tensordot(v, ferrule.jacrev(f)(x), 1), vJ, 1e-12)
    assert abs(v @ Ju - np.sum(vJ * u)) < 1e-12


def test_ir_does_not_grow_with_the_input_size():
    f = CASES["vector->vector"][0]

    def ops(n, jac):
        text = ferrule.jit(jac(f)).lower(np.ones(n)).as_text("traced")
        return re.sub(r"\d+", "N", text)
    for jac in (ferrule.jacfwd, ferrule.jacrev):
        assert ops(3, jac) == ops(300, jac)
        assert "ad.scan" in ops(3, jac)


def test_jacrev_runs_the_forward_sweep_once():
    """hoist-scan-invariants moves the primal's matmul out of jacrev's step:
    the loop runs only backward sweeps."""
    def f(x, W):
        return fnp.tanh(x @ W)
    text = ferrule.jit(ferrule.jacrev(f)).lower(np.ones(3), np.ones((3, 5))).as_text("ad")
    outer, step = text.split("func.func private")[:2]
    assert "@row_hoisted" in outer
    assert outer.count("linalg.matmul") == 1      # the forward sweep's x @ W, once
    assert step.count("linalg.matmul") == 1       # each step: dx = dh @ W.T only


def mlp_loss(params, x, y):
    W1, b1, W2 = params
    h = fnp.tanh(x @ W1 + b1)
    return fnp.mean((h @ W2 - y) ** 2)


def test_hessian_of_mlp_loss():
    params = (RNG.standard_normal((3, 4)) * .5, RNG.standard_normal(4) * .1,
              RNG.standard_normal((4, 1)) * .5)
    x, y = RNG.standard_normal((5, 3)), RNG.standard_normal((5, 1))
    H = ferrule.hessian(mlp_loss)(params, x, y)   # blocks (i, j): p_i.shape + p_j.shape
    assert H[0][0].shape == (3, 4, 3, 4) and H[1][2].shape == (4, 4, 1)
    assert H[2][0].shape == (4, 1, 3, 4)
    g = ferrule.jit(ferrule.grad(mlp_loss))
    for i in range(3):
        def g_i(p_i):
            ps = list(params)
            ps[i] = p_i
            return g(tuple(ps), x, y)
        for j in range(3):
            close(H[j][i], fd_jacobian(lambda *a: g_i(*a)[j], (params[i],)), 1e-6)
    close(H[1][2], np.transpose(H[2][1], (2, 0, 1)), 1e-12)   # symmetric
    H2 = ferrule.jit(ferrule.jacrev(ferrule.jacrev(mlp_loss)))(params, x, y)
    for i in range(3):
        for j in range(3):
            close(H2[i][j], H[i][j], 1e-12)


def test_has_aux():
    def f(x):
        return fnp.sin(x), fnp.sum(x)
    x = RNG.standard_normal(3)
    for jac in (ferrule.jacfwd, ferrule.jacrev):
        J, aux = ferrule.jit(jac(f, has_aux=True))(x)
        close(J, np.diag(np.cos(x)), 1e-12)
        close(aux, x.sum(), 1e-12)
    H, aux = ferrule.hessian(lambda x: (fnp.sum(x ** 3), x * 2), has_aux=True)(x)
    close(H, np.diag(6 * x), 1e-12)
    close(aux, 2 * x, 1e-12)


def test_integer_output_has_float0_block():
    def f(x):
        return fnp.sin(x), fnp.argmax(x)
    x = RNG.standard_normal(3)
    for jac in (ferrule.jacfwd, ferrule.jacrev):
        J, Ji = jac(f)(x)
        close(J, np.diag(np.cos(x)), 1e-12)
        assert Ji.dtype == ferrule.float0 and Ji.shape == (3,)


def test_integer_argnums_is_an_error_naming_the_line():
    x, i = RNG.standard_normal(3), np.arange(3, dtype=np.int32)

    def g(x, i):
        return ferrule.jacfwd(lambda a, b: a * b, argnums=1)(x, i)  # E:jac_int
    with pytest.raises(DTypeError, match=re.escape(f"{__file__}:{_line('E:jac_int')}")
                       + r".*jacfwd of lambda with respect to argument 1, which holds an "
                         r"int32 array: jacfwd needs float arguments"):
        ferrule.jit(g)(x, i)
    with pytest.raises(TracingError, match="argnums 2 out of range for 1 arguments"):
        ferrule.jacrev(fnp.sin, argnums=2)(x)


def test_linearize():
    f = CASES["matrix->vector"][0]
    x, t = RNG.standard_normal((3, 2)), RNG.standard_normal((3, 2))
    out, f_jvp = ferrule.linearize(f, x)
    close(out, ferrule.jit(f)(x), 1e-14)
    close(f_jvp(t), np.tensordot(fd_jacobian(ferrule.jit(f), (x,)), t, 2))
    close(f_jvp(2 * t), 2 * f_jvp(t), 1e-12)    # linear in the tangent
    x += 1.0                                      # f_jvp keeps the primal it was given
    close(f_jvp(t), ferrule.jvp(f, (x - 1.0,), (t,))[1], 1e-12)

    @ferrule.jit
    def inside(x, t):
        y, lin = ferrule.linearize(f, x)
        return y, lin(t), lin(3 * t)
    y, a, b = inside(x, t)
    close(a, ferrule.jvp(f, (x,), (t,))[1], 1e-12)
    close(b, 3 * a, 1e-12)


def block(W, x):
    h = fnp.tanh(x @ W)
    return fnp.tanh(h) * fnp.sum(fnp.sin(h))


def _residual_bytes(report: str):
    return [int(b) for b in re.findall(r"residuals per step (\d+) B", report)]


def test_checkpoint_same_gradient_fewer_residual_bytes():
    W, x = RNG.standard_normal((8, 8)) * .3, RNG.standard_normal((16, 8))
    ck = ferrule.checkpoint(block)

    def plain(W, x):
        return fnp.sum(block(W, x) ** 2)

    def checkpointed(W, x):
        return fnp.sum(ck(W, x) ** 2)

    def stored(W, x):   # the same one-step loop without the remat mark
        def one(c, _):
            return c, block(*c)
        return fnp.sum(ferrule.scan(one, (W, x), length=1)[1][0] ** 2)
    g = ferrule.jit(ferrule.grad(plain, argnums=(0, 1)))(W, x)
    g_ck = ferrule.jit(ferrule.grad(checkpointed, argnums=(0, 1)))(W, x)
    for a, b in zip(g, g_ck):
        close(a, b, 1e-12)
    rep = ferrule.jit(ferrule.grad(checkpointed)).lower(W, x).explain()
    base = ferrule.jit(ferrule.grad(stored)).lower(W, x).explain()
    assert "recomputed in the backward sweep" in rep
    kept, full = _residual_bytes(rep), _residual_bytes(base)
    assert kept == [(8 * 8 + 16 * 8) * 8]     # only the arguments W, x
    assert len(full) == 1 and kept[0] < full[0]
    # forward mode, eager, and remat as an alias
    t = RNG.standard_normal(x.shape)
    close(ferrule.jvp(lambda x: ck(W, x), (x,), (t,))[1],
          ferrule.jvp(lambda x: block(W, x), (x,), (t,))[1], 1e-12)
    close(ck(W, x), np.tanh(np.tanh(x @ W)) * np.sin(np.tanh(x @ W)).sum(), 1e-12)
    assert ferrule.remat is ferrule.checkpoint


def test_checkpoint_against_finite_differences_with_static_argument():
    def f(x, scale, mode):
        return fnp.sum(fnp.sin(x) * scale) if mode == "sin" else fnp.sum(x)
    ck = ferrule.checkpoint(f)
    x = RNG.standard_normal(4)
    g = ferrule.grad(lambda x: ck(x, 3.0, "sin"))(x)
    close(g, fd_jacobian(ferrule.jit(lambda x: f(x, 3.0, "sin")), (x,)))


def test_compositions_agree():
    """jacfwd(jacfwd), and second order through checkpoint, equal hessian."""
    def s(x):
        return fnp.sum(fnp.sin(x) * fnp.sum(x ** 2))
    x = np.linspace(0.1, 1.0, 4)
    H = ferrule.hessian(s)(x)
    close(ferrule.jacfwd(ferrule.jacfwd(s))(x), H, 1e-12)
    close(ferrule.jacrev(ferrule.jacrev(ferrule.checkpoint(s)))(x), H, 1e-12)
