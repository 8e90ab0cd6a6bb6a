"""16-byte vector loads/stores in GPU kernels (runtime/cuda_compile/vectorize.py).

Hand-written buffer-level loop nests go through the GPU mapping; the mapped
program then runs on the CPU (each launch turned back into loops) with the
kernel's own alignment test, and with each branch of it forced, against
numpy. The PTX tests check that the vector path really is ``v4``/``v2``
loads and stores, and the emulated-driver test that misaligned device
arrays (views at an odd offset) take the scalar path and stay correct.
"""

import numpy as np
import pytest
from mlir import ir

from ferrule.dialect.context import make_context
from ferrule.runtime import cuda
from ferrule.runtime.cuda import driver
from ferrule.runtime.cuda_compile import compile_cuda
from ferrule.runtime.cuda_compile.mapping import map_module_to_gpu

from cuda_cases import lstm_forward_mlir, lstm_forward_numpy
from cuda_emulator import FakeCuda, run_mapped_on_cpu

_HEAD = """
func.func @f({args}) {{
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %rows = arith.constant {R} : index
  %cols = arith.constant {W} : index
"""
_LOOP = """  scf.parallel (%i, %j) = (%c0, %c0) to (%rows, %cols) step (%c1, %c{step}) {{
"""
_TAIL = """    scf.reduce
  }
  return
}
"""

# name -> (arguments, loop body, numpy reference of the output from the
# inputs[, ops before the loop])
CASES = {
    # out = exp(a + b): every access contiguous along j.
    "contiguous": (
        "%a: memref<{R}x{W}x{T}>, %b: memref<{R}x{W}x{T}>, %out: memref<{R}x{W}x{T}>",
        """    %x = memref.load %a[%i, %j] : memref<{R}x{W}x{T}>
    %y = memref.load %b[%i, %j] : memref<{R}x{W}x{T}>
    %s = arith.addf %x, %y : {T}
    %e = math.exp %s : {T}
    memref.store %e, %out[%i, %j] : memref<{R}x{W}x{T}>
""", lambda a, b: np.exp(a + b)),
    # a is read transposed (strided across lanes: stays scalar), b and out
    # are contiguous.
    "transposed": (
        "%a: memref<{W}x{R}x{T}>, %b: memref<{R}x{W}x{T}>, %out: memref<{R}x{W}x{T}>",
        """    %x = memref.load %a[%j, %i] : memref<{W}x{R}x{T}>
    %y = memref.load %b[%i, %j] : memref<{R}x{W}x{T}>
    %s = arith.mulf %x, %y : {T}
    memref.store %s, %out[%i, %j] : memref<{R}x{W}x{T}>
""", lambda a, b: a.T * b),
    # a view at column offset 1 of a row of W+1: never 16-byte aligned.
    "odd-offset-view": (
        "%a: memref<{R}x{W1}x{T}>, %b: memref<{R}x{W}x{T}>, %out: memref<{R}x{W}x{T}>",
        """    %x = memref.load %v[%i, %j] : memref<{R}x{W}x{T}, strided<[{W1}, 1], offset: 1>>
    %y = memref.load %b[%i, %j] : memref<{R}x{W}x{T}>
    %s = arith.subf %x, %y : {T}
    memref.store %s, %out[%i, %j] : memref<{R}x{W}x{T}>
""", lambda a, b: a[:, 1:] - b,
        "  %v = memref.subview %a[0, 1] [{R}, {W}] [1, 1] : memref<{R}x{W1}x{T}> to "
        "memref<{R}x{W}x{T}, strided<[{W1}, 1], offset: 1>>\n"),
    # a bool mask stored as i8 next to floats.
    "mask": (
        "%m: memref<{R}x{W}xi8>, %a: memref<{R}x{W}x{T}>, %out: memref<{R}x{W}x{T}>",
        """    %k = memref.load %m[%i, %j] : memref<{R}x{W}xi8>
    %x = memref.load %a[%i, %j] : memref<{R}x{W}x{T}>
    %t = arith.trunci %k : i8 to i1
    %n = arith.negf %x : {T}
    %s = arith.select %t, %x, %n : {T}
    memref.store %s, %out[%i, %j] : memref<{R}x{W}x{T}>
""", lambda m, a: np.where(m.astype(bool), a, -a)),
    # a's row index is computed from the innermost index: it differs between
    # lanes, so that load must stay per lane (out's store is still a vector).
    "computed-row": (
        "%a: memref<2x{W}x{T}>, %out: memref<{R}x{W}x{T}>",
        """    %q = arith.remui %j, %c2 : index
    %x = memref.load %a[%q, %j] : memref<2x{W}x{T}>
    memref.store %x, %out[%i, %j] : memref<{R}x{W}x{T}>
""", lambda a: np.broadcast_to(a[np.arange(a.shape[1]) % 2, np.arange(a.shape[1])], (6, a.shape[1]))),
    # out is read and written by the same iteration: left scalar.
    "read-write": (
        "%a: memref<{R}x{W}x{T}>, %out: memref<{R}x{W}x{T}>",
        """    %x = memref.load %a[%i, %j] : memref<{R}x{W}x{T}>
    memref.store %x, %out[%i, %j] : memref<{R}x{W}x{T}>
    %y = memref.load %out[%i, %j] : memref<{R}x{W}x{T}>
    %s = arith.addf %x, %y : {T}
    memref.store %s, %out[%i, %j] : memref<{R}x{W}x{T}>
""", lambda a: 2 * a),
}


def _source(case, T="f32", R=6, W=16, step=1):
    args, body, _, *pre = CASES[case]
    fill = dict(T=T, R=R, W=W, W1=W + 1)
    return (_HEAD.format(args=args.format(**fill), **fill) + "".join(pre).format(**fill)
            + _LOOP.format(step=step) + body.format(**fill) + _TAIL)


def _map(text):
    """(mapped module text, [LaunchInfo])"""
    with make_context(), ir.Location.unknown():
        module = ir.Module.parse(text)
        infos = map_module_to_gpu(module)
        module.operation.verify()
        return str(module), infos


def _inputs(case, T, R, W, seed=0):
    rng = np.random.default_rng(seed)
    dt = np.float32 if T == "f32" else np.float64
    shapes = {"contiguous": [(R, W), (R, W)], "transposed": [(W, R), (R, W)],
              "odd-offset-view": [(R, W + 1), (R, W)], "read-write": [(R, W)],
              "computed-row": [(2, W)]}
    if case == "mask":
        return [rng.integers(0, 2, (R, W)).astype(np.int8), rng.standard_normal((R, W)).astype(dt)]
    return [rng.standard_normal(s).astype(dt) for s in shapes[case]]


def _specs(arrays, R, W, T):
    return ([{"shape": list(a.shape), "dtype": a.dtype.name} for a in arrays],
            [{"shape": [R, W], "dtype": "float32" if T == "f32" else "float64"}])


@pytest.mark.parametrize("case,T,W,step,width,why", [
    ("contiguous", "f32", 16, 1, 4, ""),
    ("contiguous", "f64", 16, 1, 2, ""),
    ("contiguous", "f32", 30, 1, 1, "innermost extent 30 is not a multiple of 4"),
    ("contiguous", "f32", 16, 2, 1, "does not start at 0 with step 1"),
    ("transposed", "f32", 16, 1, 4, ""),
    ("odd-offset-view", "f32", 16, 1, 4, ""),
    ("mask", "f32", 16, 1, 4, ""),
    ("read-write", "f32", 16, 1, 1, "a buffer is both read and written"),
    ("computed-row", "f32", 16, 1, 4, ""),
])
def test_which_nests_are_vectorised(case, T, W, step, width, why):
    text, (info,) = _map(_source(case, T, W=W, step=step))
    assert info.vector == width
    assert why in info.scalar_reason and bool(why) == (width == 1)
    if width > 1:
        assert f"vector<{width}x{T}>" in text and "memref.assume_alignment" in text
        assert info.grid == (1, 1, 1)   # 6*16/width points < one block
    else:
        assert "vector." not in text and "scf.if" not in text


def test_only_contiguous_accesses_become_vectors():
    text, _ = _map(_source("transposed"))
    assert text.count("vector.load") == 1 and text.count("vector.store") == 1
    text, _ = _map(_source("odd-offset-view"))
    assert text.count("vector.load") == 1 and text.count("vector.store") == 1
    text, _ = _map(_source("mask"))
    assert "vector<4xi8>" in text and text.count("vector.load") == 2
    text, _ = _map(_source("computed-row"))
    assert text.count("vector.load") == 0 and text.count("vector.store") == 1


@pytest.mark.parametrize("case,T", [("contiguous", "f32"), ("contiguous", "f64"),
                                    ("transposed", "f32"), ("odd-offset-view", "f32"),
                                    ("mask", "f32"), ("mask", "f64"), ("read-write", "f32"),
                                    ("computed-row", "f32")])
@pytest.mark.parametrize("branch", [None, "vector", "scalar"])
def test_both_branches_match_numpy(case, T, branch):
    R, W = 6, 16
    text, (info,) = _map(_source(case, T, R, W))
    if branch is not None and info.vector == 1:
        pytest.skip("scalar kernel: no branch to force")
    xs = _inputs(case, T, R, W)
    (got,) = run_mapped_on_cpu(text, "f", *_specs(xs, R, W, T), xs, branch=branch)
    want = CASES[case][2](*[x.astype(np.float64) if x.dtype.kind == "f" else x for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-6 if T == "f32" else 1e-12, atol=1e-6)


def _misaligned(a):
    """A copy of ``a`` whose data starts 4 bytes past a 16-byte boundary."""
    buf = np.empty(a.nbytes + 32, np.uint8)
    start = (-buf.ctypes.data) % 16 + 4
    view = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    view[...] = a
    assert view.ctypes.data % 16 == 4
    return view


def test_misaligned_host_arrays_take_the_scalar_path():
    R, W = 6, 16
    text, _ = _map(_source("contiguous", "f32", R, W))
    xs = [_misaligned(x) for x in _inputs("contiguous", "f32", R, W)]
    (got,) = run_mapped_on_cpu(text, "f", *_specs(xs, R, W, "f32"), xs)
    np.testing.assert_allclose(got, np.exp(xs[0] + xs[1]), rtol=1e-6)


# ------------------------------------------------------------- PTX and the launcher

def test_ptx_vector_widths_follow_the_element_size():
    f32 = compile_cuda(lstm_forward_mlir(8, 64), "lstm", make_context(), make_cubin=False)
    assert f32.ptx.count("ld.global.nc.v4.b32") == 5 and f32.ptx.count("st.global.v4.b32") == 2
    f64_src = lstm_forward_mlir(8, 64).replace("f32", "f64")
    f64 = compile_cuda(f64_src, "lstm", make_context(), make_cubin=False)
    (k,) = f64.kernels.values()
    assert k["vector"] == 2
    assert f64.ptx.count("ld.global.nc.v2.b64") == 5 and f64.ptx.count("st.global.v2.b64") == 2
    odd = compile_cuda(lstm_forward_mlir(8, 30), "lstm", make_context(), make_cubin=False)
    (k,) = odd.kernels.values()
    assert k["vector"] == 1 and "not a multiple of 4" in k["scalar_reason"]
    assert ".v4." not in odd.ptx and "setp" in odd.ptx


class _CaiView:
    """A device array at a byte offset into another (as a CuPy/PyTorch view
    at an odd element offset would be)."""

    def __init__(self, base, offset, shape, dtype):
        self.__cuda_array_interface__ = {
            "shape": tuple(shape), "typestr": np.dtype(dtype).str, "strides": None,
            "data": (base.ptr + offset, False), "version": 3}
        self.base = base


@pytest.mark.parametrize("offset", [0, 4])
def test_emulated_launch_with_aligned_and_misaligned_device_arrays(monkeypatch, offset):
    B, H = 8, 64
    prog = compile_cuda(lstm_forward_mlir(B, H), "lstm", make_context())
    monkeypatch.setattr(driver, "_api", FakeCuda(prog))
    monkeypatch.setattr(driver, "_init_error", None)
    f = cuda.GpuFunction(prog.to_artifact())
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((B, H)).astype(np.float32) for _ in range(5)]
    devs = []
    for x in xs:
        raw = np.zeros(x.nbytes + 16, np.uint8)
        raw[offset:offset + x.nbytes] = x.view(np.uint8).ravel()
        base = cuda.DeviceArray.from_numpy(raw)
        assert base.ptr % 16 == 0
        devs.append(_CaiView(base, offset, x.shape, x.dtype))
    got = f(*devs)
    for g, w in zip(got, lstm_forward_numpy(*[x.astype(np.float64) for x in xs])):
        np.testing.assert_allclose(g.get(), w, rtol=1e-5, atol=1e-6)


def test_fused_cells_are_vectorised():
    """The benchmark's LSTM and GRU forward+backward kernels (H % 4 == 0)."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "bench" / "build_gpu_artifacts.py"
    spec = importlib.util.spec_from_file_location("_build_gpu_artifacts", path)
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    for cell, (B, H) in (("lstm", (64, 32)), ("gru", (48, 40))):
        prog = compile_cuda(*build.cell_source(cell, B, H), make_context(), make_cubin=False)
        (k,) = [k for k in prog.kernels.values() if k["kind"] == "parallel"]
        assert k["vector"] == 4, (cell, k)
        n_in, n_out = len(prog.inputs), len(prog.outputs)
        assert prog.ptx.count("ld.global.nc.v4.b32") >= n_in, cell
        assert prog.ptx.count("st.global.v4.b32") >= n_out, cell
