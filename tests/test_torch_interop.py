"""ferrule.torch.function: ferrule's compiled primal and pullback as a torch op."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ferrule  # noqa: E402
import ferrule.numpy as fnp  # noqa: E402
import ferrule.torch as ft  # noqa: E402
from ferrule.interop import torch_function as tf  # noqa: E402
from ferrule.runtime import cpu  # noqa: E402

from models import gru, lstm  # noqa: E402


def lstm_torch(G, c):
    i, f, g, o = G.chunk(4, 1)
    c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c2), c2


def _inputs(B=5, H=3, dtype=torch.float64, seed=0, requires_grad=True):
    g = torch.Generator().manual_seed(seed)
    G = torch.randn(B, 4 * H, dtype=dtype, generator=g).requires_grad_(requires_grad)
    c = torch.randn(B, H, dtype=dtype, generator=g).requires_grad_(requires_grad)
    return G, c


CELL = ft.function(lstm)


def _op(fn, *xs):
    """The registered custom op behind ``fn`` for these tensors."""
    name, _ = fn._op_info(tuple(tf._spec(t, k, "") for k, t in enumerate(xs)))
    return getattr(torch.ops.ferrule, name)


_SUBPROCESS = """
import sys, numpy as np, ferrule, ferrule.numpy as fnp, ferrule.nn, ferrule.rules, ferrule.interop.core
bad = [m for m in ('torch', 'jax', 'jaxlib') if m in sys.modules]
assert not bad, bad
import ferrule.torch
assert 'jax' not in sys.modules
f = ferrule.torch.function(lambda x: fnp.tanh(x), name="cached")
print(f._op_info((((4, 3), np.dtype(np.float32)),))[0])
"""


def test_import_ferrule_imports_neither_torch_nor_jax_and_op_names_differ_by_process():
    """``import ferrule`` imports neither torch nor jax (``ferrule.torch``
    not jax). And the same function gets different op names in two
    processes: inductor's and AOTAutograd's on-disk caches key a compiled
    graph by its code, which names the ops it calls, and a graph compiled by
    another process (whose backward op this one has not registered) must
    never be found here. (Without that, a second run of a compiled model
    failed with "'ferrule' object has no attribute 'cached_pullback_..._1_3_1'".)"""
    names = [subprocess.run([sys.executable, "-c", _SUBPROCESS], capture_output=True,
                            text=True, check=True).stdout.strip() for _ in range(2)]
    assert all(n.startswith("cached_") and n.endswith("_0_1_1") for n in names), names
    assert names[0] != names[1]


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.float64, 1e-13)])
def test_forward_and_gradients_match_torch(dtype, tol):
    G, c = _inputs(B=7, H=5, dtype=dtype)
    h, c2 = CELL(G, c)
    hr, c2r = lstm_torch(G, c)
    torch.testing.assert_close(h, hr, rtol=tol, atol=tol)
    torch.testing.assert_close(c2, c2r, rtol=tol, atol=tol)
    w = torch.randn_like(h)
    got = torch.autograd.grad((h * w).sum() + c2.square().sum(), (G, c))
    want = torch.autograd.grad((hr * w).sum() + c2r.square().sum(), (G, c))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=10 * tol, atol=10 * tol)


def test_gradcheck_and_gradgradcheck_eager_and_op():
    G, c = _inputs()
    assert torch.autograd.gradcheck(CELL, (G, c))
    assert torch.autograd.gradgradcheck(CELL, (G, c))
    op = _op(CELL, G, c)
    assert torch.autograd.gradcheck(op, (G, c))
    assert torch.autograd.gradgradcheck(op, (G, c))


def test_opcheck():
    """torch's own checks of a custom op: schema, fake, autograd registration,
    AOT dispatch."""
    G, c = _inputs()
    res = torch.library.opcheck(_op(CELL, G, c), (G, c))
    assert set(res.values()) == {"SUCCESS"}, res


def test_only_the_inputs_are_saved_for_backward():
    G, c = _inputs()
    saved = []

    def pack(t):
        saved.append(t)
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        h, c2 = CELL(G, c)
    assert len(saved) == 2 and saved[0] is G and saved[1] is c


def test_zero_copy_on_the_cpu(monkeypatch):
    """The compiled code reads and writes the tensors' own memory, forward
    and backward: the pointers handed to the native function are the
    tensors' data pointers."""
    seen = []
    orig = cpu.CpuFunction._call_native

    def spy(self, arrays):      # the arrays whose data pointers the native code reads
        seen.extend(a.ctypes.data for a in arrays)
        return orig(self, arrays)
    monkeypatch.setattr(cpu.CpuFunction, "_call_native", spy)
    G, c = _inputs(B=6, H=4, dtype=torch.float32)
    h, c2 = CELL(G, c)
    assert seen == [G.data_ptr(), c.data_ptr(), h.data_ptr(), c2.data_ptr()]
    seen.clear()
    dh, dc = torch.randn_like(h), torch.randn_like(c2)
    dG, dc_prev = torch.autograd.grad((h, c2), (G, c), (dh, dc))
    assert seen == [G.data_ptr(), c.data_ptr(), dh.data_ptr(), dc.data_ptr(),
                    dG.data_ptr(), dc_prev.data_ptr()]


def test_non_contiguous_inputs():
    G, c = _inputs(B=6, H=4)
    Gt = G.detach().t().contiguous().t().requires_grad_()   # column-major
    cs = torch.randn(12, 4, dtype=torch.float64)[::2].requires_grad_()  # strided rows
    assert not Gt.is_contiguous() and not cs.is_contiguous()
    out = CELL(Gt, cs)
    want = lstm_torch(Gt, cs)
    for a, b in zip(out, want):
        torch.testing.assert_close(a, b)
    got = torch.autograd.grad(sum(o.sum() for o in out), (Gt, cs))
    ref = torch.autograd.grad(sum(o.sum() for o in want), (Gt, cs))
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b)
    # expanded cotangents (sum's backward) are non-contiguous too
    assert torch.autograd.gradcheck(CELL, (Gt, cs))


def test_requires_grad_on_some_inputs_only():
    fn = ft.function(lstm)
    G, c = _inputs()
    c = c.detach()
    h, c2 = fn(G, c)
    (h.sum() + c2.sum()).backward()
    assert c.grad is None and G.grad is not None
    assert list(fn._pullbacks) == [(2, (0,))]     # only dG is compiled
    Gr = G.detach().requires_grad_()
    sum(o.sum() for o in lstm_torch(Gr, c)).backward()
    torch.testing.assert_close(G.grad, Gr.grad)
    # no input needs a gradient: no graph at all
    with torch.no_grad():
        assert not fn(G, c)[0].requires_grad


def test_results_single_tuple_nested():
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, dtype=torch.float64, requires_grad=True)
    single = ft.function(lambda x, y: fnp.tanh(x) * y)
    one_tuple = ft.function(lambda x, y: (x * y,))
    nested = ft.function(lambda x, y: [x + y, (fnp.sum(x * x, axis=0), fnp.exp(y))])
    r = single(x, y)
    assert isinstance(r, torch.Tensor) and r.shape == (3, 4)
    r = one_tuple(x, y)
    assert isinstance(r, tuple) and len(r) == 1
    r = nested(x, y)
    assert isinstance(r, list) and isinstance(r[1], tuple) and r[1][0].shape == (4,)
    torch.testing.assert_close(r[1][0], (x * x).sum(0))
    for fn in (single, one_tuple, nested):
        flat = lambda *a, fn=fn: tuple(_leaves(fn(*a)))  # noqa: E731
        assert torch.autograd.gradcheck(flat, (x, y))


def _leaves(t):
    if isinstance(t, (tuple, list)):
        for u in t:
            yield from _leaves(u)
    else:
        yield t


def test_matmul_model_and_gru():
    """Beyond pointwise code: a matmul loss, and the GRU cell."""
    W = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    f = ft.function(lambda W, x: fnp.sum(fnp.tanh(x @ W) ** 2))
    assert torch.autograd.gradcheck(f, (W, x))
    xg = torch.randn(4, 9, dtype=torch.float64, requires_grad=True)
    h = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ft.function(gru), (xg, h))


def test_shapes_and_dtypes_are_separate_specialisations():
    fn = ft.function(lstm)
    for B, dtype in [(2, torch.float32), (3, torch.float32), (2, torch.float64)]:
        G, c = _inputs(B=B, dtype=dtype)
        h, _ = fn(G, c)
        assert h.dtype == dtype and h.shape == (B, 3)
    assert len(fn.program._entries) == 3


def _compile_graphs(model, *args, backend="aot_eager"):
    graphs = []

    def capture(gm, example_inputs):
        graphs.append(gm)
        return gm.forward
    torch._dynamo.reset()
    out = torch.compile(model, fullgraph=True, backend=capture, dynamic=False)(*args)
    return out, graphs


def test_torch_compile_fullgraph_keeps_one_opaque_op():
    G, c = _inputs(dtype=torch.float32)

    def model(G, c):
        h, c2 = CELL(G * 2.0, c)
        return (h * c2).sum()
    out, graphs = _compile_graphs(model, G, c)
    assert len(graphs) == 1                       # fullgraph: no graph break
    calls = [n.target for n in graphs[0].graph.nodes if n.op == "call_function"]
    ours = [t for t in calls if "ferrule" in str(t)]
    assert len(ours) == 1 and str(ours[0]).startswith("ferrule.lstm")
    explained = torch._dynamo.explain(model)(G, c)
    assert explained.graph_break_count == 0 and explained.graph_count == 1
    # forward and backward through aot_autograd match eager
    torch._dynamo.reset()
    cm = torch.compile(model, fullgraph=True, backend="aot_eager", dynamic=False)
    got = torch.autograd.grad(cm(G, c), (G, c))
    want = torch.autograd.grad(model(G, c), (G, c))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dynamic,warm", [(None, False), (True, True)])
def test_torch_compile_with_changing_shapes(dynamic, warm):
    """Default torch.compile marks a size dynamic when it changes, and
    dynamic=True makes every size symbolic: ferrule's op specialises them
    (one ferrule compilation per shape), fullgraph still holds."""
    fn = ft.function(lstm)
    if warm:       # with dynamic=True, the first call must not be a traced one
        fn(*_inputs(B=2, requires_grad=False))
    torch._dynamo.reset()
    cm = torch.compile(lambda G, c: sum(o.sum() for o in fn(G, c)), fullgraph=True,
                       backend="aot_eager", dynamic=dynamic)
    for B in (4, 6, 8):
        G, c = _inputs(B=B, dtype=torch.float32)
        got = torch.autograd.grad(cm(G, c), (G, c))
        want = torch.autograd.grad(sum(o.sum() for o in lstm_torch(G, c)), (G, c))
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b)


def test_clear_errors():
    G, c = _inputs(dtype=torch.float32)
    with pytest.raises(ferrule.DTypeError, match=r"argument 1 has dtype torch.int64.*float32"):
        CELL(G, torch.zeros(5, 3, dtype=torch.int64))
    with pytest.raises(ferrule.DTypeError, match="torch.float16"):
        CELL(G.half(), c.half())
    with pytest.raises(ft.InteropError, match="argument 1 is a float, not a torch.Tensor"):
        CELL(G, 1.0)
    with pytest.raises(ft.InteropError, match="keyword arguments"):
        CELL(G, c=c)
    with pytest.raises(ft.InteropError, match="different devices"):
        CELL(G, c.to("meta"))
    with pytest.raises(ft.InteropError, match="device 'meta' are not supported"):
        CELL(G.to("meta"), c.to("meta"))
    with pytest.raises(ferrule.ShapeError):
        CELL(G, torch.zeros(4, 3))
    assert isinstance(ft.InteropError("x"), ferrule.FerruleError)
    bad = ft.function(lambda x: x > 0)
    with pytest.raises(ferrule.DTypeError, match="result 0 has dtype bool"):
        bad(c)


# ---------------------------------------------------------------- CUDA

def test_cuda_programs_compile_without_a_gpu():
    """Forward and pullback compile to PTX on a machine without a GPU."""
    G, c = _inputs(B=64, H=32, dtype=torch.float32)
    fwd = CELL.compile_cuda(G, c, target="cuda:sm_90")
    bwd = CELL.pullback_function(2, (0, 1)).compile_cuda(G, c, c, c, target="cuda:sm_90")
    assert ".entry" in fwd.ptx and ".entry" in bwd.ptx


class _EmulatedGlue:
    """torch's side of the CUDA path, played by CPU tensors in the emulated
    driver's memory (the emulator's device pointers are host addresses)."""

    def __init__(self, fake):
        self.fake, self.keep = fake, []

    index = staticmethod(lambda dev: 0)
    capability = staticmethod(lambda idx: (9, 0))
    stream = staticmethod(lambda dev: 0)

    def empty(self, shape, dtype, dev):
        from ferrule.runtime import cuda
        d = cuda.DeviceArray(shape, np.dtype(str(dtype).replace("torch.", "")))
        self.keep.append(d)
        buf = (np.ctypeslib.ctypes.c_char * max(1, d.nbytes)).from_address(d.ptr)
        return torch.from_numpy(np.frombuffer(buf, d.dtype, int(np.prod(shape))).reshape(shape))

    def _on_device(self, t):
        p = t.data_ptr()
        return any(b <= p < b + n for b, (_, n) in self.fake.mem.items())

    def view(self, t):
        t = t.detach().contiguous()
        if not self._on_device(t):     # a torch-made tensor: "upload" it
            d = self.empty(tuple(t.shape), t.dtype, None)
            d.copy_(t)
            t = d
        return _CAI(t)


class _CAI:
    def __init__(self, t):
        self.t = t
        self.__cuda_array_interface__ = {
            "shape": tuple(t.shape), "typestr": t.numpy().dtype.str, "strides": None,
            "data": (t.data_ptr(), False), "version": 3}


def test_cuda_path_on_the_emulated_driver(monkeypatch):
    """The CUDA path (compile for the device, load, launch on the tensors'
    memory, forward and backward through autograd) on ferrule's emulated
    driver, which runs CPU builds of the kernels: checks the glue, not the
    GPU."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent / "cuda"))   # also when run alone
    import cuda_emulator
    from ferrule.runtime.cuda import driver
    fn = ft.function(lstm, cuda_target="cuda:sm_90")
    G, c = _inputs(B=16, H=8, dtype=torch.float32)
    progs = [fn.compile_cuda(G, c).program,
             fn.pullback_function(2, (0, 1)).compile_cuda(G, c, c, c).program]
    fake = cuda_emulator.FakeCuda(*progs)
    monkeypatch.setattr(driver, "_api", fake)
    monkeypatch.setattr(driver, "_init_error", None)
    glue = _EmulatedGlue(fake)
    monkeypatch.setattr(tf, "_cuda_glue", glue)
    monkeypatch.setattr(tf, "_all_on_cpu", lambda xs: False)
    monkeypatch.setattr(tf, "_device_of", lambda xs, name: torch.device("cuda", 0))
    h, c2 = fn(G, c)
    assert glue._on_device(h) and len(fake.launches) >= 1
    hr, c2r = lstm_torch(G, c)
    torch.testing.assert_close(h, hr, rtol=1e-5, atol=1e-6)
    dG, dc = torch.autograd.grad(h.sum() + (c2 * c2).sum(), (G, c))
    wG, wc = torch.autograd.grad(hr.sum() + (c2r * c2r).sum(), (G, c))
    torch.testing.assert_close(dG, wG, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dc, wc, rtol=1e-5, atol=1e-5)


def test_cuda_tensors_without_a_usable_driver_is_a_clear_error(monkeypatch):
    from ferrule.runtime.cuda import driver
    monkeypatch.setattr(driver, "_api", None)
    monkeypatch.setattr(driver, "_init_error", driver.CudaUnavailable("no CUDA driver (test)"))
    monkeypatch.setattr(tf, "_cuda_glue", _EmulatedGlue(None))
    monkeypatch.setattr(tf, "_all_on_cpu", lambda xs: False)
    monkeypatch.setattr(tf, "_device_of", lambda xs, name: torch.device("cuda", 0))
    fn = ft.function(lstm, cuda_target="cuda:sm_90")
    with pytest.raises(ft.InteropError, match="CUDA tensors given but ferrule's CUDA launcher "
                                              "cannot use the GPU: no CUDA driver"):
        fn(*_inputs(dtype=torch.float32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU (or a CPU build of torch)")
def test_cuda_tensors_on_a_gpu():   # pragma: no cover - needs a GPU
    G, c = (t.detach().cuda().requires_grad_() for t in _inputs(B=64, H=32, dtype=torch.float32))
    h, c2 = CELL(G, c)
    assert h.is_cuda
    hr, c2r = lstm_torch(G, c)
    torch.testing.assert_close(h, hr, rtol=1e-5, atol=1e-6)
    got = torch.autograd.grad(h.sum() + c2.sum(), (G, c))
    want = torch.autograd.grad(hr.sum() + c2r.sum(), (G, c))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def _doc_block(marker):
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "docs" / "interop.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if marker in b]
    assert len(blocks) == 1
    return blocks[0]


def test_the_docs_torch_example_runs():
    exec(compile(_doc_block("import ferrule.torch"), "docs/interop.md", "exec"), {})
