"""ferrule.jax.function: ferrule's compiled primal and pullback inside JAX."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

import ferrule  # noqa: E402
import ferrule.jax as fj  # noqa: E402
import ferrule.numpy as fnp  # noqa: E402
from ferrule.runtime import cpu  # noqa: E402

from models import lstm  # noqa: E402


def lstm_jax(G, c):
    i, f, g, o = jnp.split(G, 4, axis=1)
    c2 = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c2), c2


CELL = fj.function(lstm)


def _inputs(B=5, H=3, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.standard_normal((B, 4 * H)).astype(dtype)),
            jnp.asarray(rng.standard_normal((B, H)).astype(dtype)))


def _loss(cell):
    def loss(G, c):
        h, c2 = cell(G, c)
        return jnp.sum(h * jnp.cos(c2)) + jnp.mean(c2 ** 2)
    return loss


def test_float32_inside_jit_grad_vjp():
    G, c = _inputs(B=8, H=4, dtype=np.float32)
    for a, b in zip(jax.jit(CELL)(G, c), lstm_jax(G, c)):
        assert a.dtype == jnp.float32
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    got = jax.jit(jax.grad(_loss(CELL), argnums=(0, 1)))(G, c)
    want = jax.grad(_loss(lstm_jax), argnums=(0, 1))(G, c)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    out, pb = jax.vjp(CELL, G, c)
    dh, dc = jnp.ones_like(out[0]), 2 * jnp.ones_like(out[1])
    outr, pbr = jax.vjp(lstm_jax, G, c)
    for a, b in zip(pb((dh, dc)), pbr((dh, dc))):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_float64_check_grads_first_and_second_order():
    with jax.enable_x64(True):
        G, c = _inputs()
        for a, b in zip(CELL(G, c), lstm_jax(G, c)):
            assert a.dtype == jnp.float64
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
        check_grads(CELL, (G, c), order=2, modes=["rev"])
        check_grads(jax.jit(_loss(CELL)), (G, c), order=1, modes=["rev"])
        got = jax.jit(jax.value_and_grad(_loss(CELL), argnums=(0, 1)))(G, c)
        want = jax.value_and_grad(_loss(lstm_jax), argnums=(0, 1))(G, c)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-13)
        for a, b in zip(got[1], want[1]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
        # second derivative through jit: hessian-vector product
        v = jnp.cos(G)
        hvp = jax.jit(lambda G, c, v: jax.grad(lambda G: jnp.vdot(
            jax.grad(_loss(CELL))(G, c), v))(G))
        hvp_ref = jax.grad(lambda G: jnp.vdot(jax.grad(_loss(lstm_jax))(G, c), v))(G)
        np.testing.assert_allclose(hvp(G, c, v), hvp_ref, rtol=1e-10, atol=1e-12)


def test_finite_differences_float64():
    with jax.enable_x64(True):
        G, c = _inputs(B=3, H=2, seed=3)
        loss = _loss(CELL)
        g = jax.grad(loss)(G, c)
        eps = 1e-6
        E = np.zeros(G.shape)
        for idx in [(0, 0), (1, 5), (2, 7)]:
            E[:] = 0
            E[idx] = eps
            fd = (loss(G + E, c) - loss(G - E, c)) / (2 * eps)
            np.testing.assert_allclose(g[idx], fd, rtol=1e-6, atol=1e-9)


def test_results_single_tuple_nested():
    x = jnp.arange(12.0, dtype=jnp.float32).reshape(3, 4) / 10
    y = jnp.linspace(-1, 1, 4, dtype=jnp.float32)
    single = fj.function(lambda x, y: fnp.tanh(x) * y)
    nested = fj.function(lambda x, y: [x + y, (fnp.sum(x * x, axis=0), fnp.exp(y))])
    assert single(x, y).shape == (3, 4)
    r = nested(x, y)
    assert isinstance(r, list) and isinstance(r[1], tuple)
    np.testing.assert_allclose(r[1][0], jnp.sum(x * x, axis=0), rtol=1e-6)
    g = jax.grad(lambda x, y: jnp.sum(nested(x, y)[1][0]) + jnp.sum(nested(x, y)[1][1]),
                 argnums=(0, 1))(x, y)
    np.testing.assert_allclose(g[0], 2 * x, rtol=1e-6)
    np.testing.assert_allclose(g[1], jnp.exp(y), rtol=1e-6)


def test_vmap_sequential_and_expand_dims():
    G, c = _inputs(B=4, H=3, dtype=np.float32)
    Gb, cb = jnp.stack([G, 2 * G, -G]), jnp.stack([c, c, 0.5 * c])
    out = jax.jit(jax.vmap(CELL))(Gb, cb)           # default: "sequential"
    for k in range(3):
        for a, b in zip(out, lstm_jax(Gb[k], cb[k])):
            np.testing.assert_allclose(a[k], b, rtol=1e-6, atol=1e-6)
    # a function that broadcasts over a leading axis may take the whole batch
    calls = []
    pointwise = fj.function(lambda x, y: fnp.tanh(x) * y + x, vmap_method="expand_dims")
    host = pointwise._host
    pointwise._host = lambda *a: (calls.append(a[0].shape), host(*a))[1]
    xb = jnp.stack([G, 2 * G])
    got = jax.vmap(pointwise, in_axes=(0, None))(xb, G)
    np.testing.assert_allclose(got, jnp.tanh(xb) * G + xb, rtol=1e-6)
    assert calls == [(2, 4, 12)]                    # one call on the whole batch
    gb = jax.vmap(jax.grad(lambda x: jnp.sum(CELL(x, c)[0])))(Gb)
    for k in range(3):
        np.testing.assert_allclose(gb[k], jax.grad(lambda x: jnp.sum(lstm_jax(x, c)[0]))(Gb[k]),
                                   rtol=1e-5, atol=1e-6)


def test_ferrule_adds_no_copy_to_the_callbacks_arrays(monkeypatch):
    """The compiled code reads the very arrays JAX hands the callback. (JAX's
    pure_callback itself copies operands to and results from the host
    callback: see docs/interop.md.)"""
    seen, given = [], []
    orig = cpu.CpuFunction._call_native

    def spy(self, arrays):      # the arrays whose data pointers the native code reads
        seen.extend(a.ctypes.data for a in arrays)
        return orig(self, arrays)
    monkeypatch.setattr(cpu.CpuFunction, "_call_native", spy)
    fn = fj.function(lstm)
    host = fn._host

    def record(*arrays):
        given.extend(np.asarray(a).ctypes.data for a in arrays)
        return host(*arrays)
    fn._host = record
    G, c = _inputs(B=6, H=4, dtype=np.float32)
    jax.jit(fn)(G, c)
    assert len(given) == 2 and seen[:2] == given


def test_clear_errors():
    G, c = _inputs(dtype=np.float32)
    with pytest.raises(ferrule.DTypeError, match=r"argument 1 has dtype int32"):
        CELL(G, jnp.zeros((5, 3), jnp.int32))
    with pytest.raises(fj.InteropError, match="argument 1 is a str, not an array"):
        CELL(G, "c")
    with pytest.raises(fj.InteropError, match="keyword arguments"):
        CELL(G, c=c)
    with pytest.raises(ValueError, match="vmap_method must be one of"):
        fj.function(lstm, vmap_method="loop")
    # forward mode is JAX's to refuse: a custom_vjp has no JVP
    with pytest.raises(TypeError, match="can't apply forward-mode autodiff"):
        jax.jvp(CELL, (G, c), (G, c))


def test_the_docs_jax_example_runs():
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "interop.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "import ferrule.jax" in b]
    assert len(blocks) == 1
    exec(compile(blocks[0], "docs/interop.md", "exec"), {})
