"""The whole GPU path on the CPU: compile -> artifact -> launcher -> kernels.

``tests/cuda/cuda_emulator.FakeCuda`` replaces libcuda; its ``cuLaunchKernel``
runs a CPU build of each outlined kernel with the grid and block the
launcher asked for, reading parameters the way the GPU does. So these tests
check the launcher's marshalling, the call plan, the kernels' index
mapping and the bench script — everything but the PTX and the hardware.
"""

import ctypes
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from ferrule.dialect.context import make_context
from ferrule.runtime import cuda
from ferrule.runtime.cuda import driver
from ferrule.runtime.cuda_compile import compile_cuda

from cuda_cases import CELLS, MIX_MLIR, MIX_SHAPES, lstm_forward_mlir, lstm_forward_numpy, mix_numpy
from cuda_emulator import FakeCuda

ROOT = Path(__file__).resolve().parents[2]


def _install(monkeypatch, *progs, drv=driver, **kw):
    fake = FakeCuda(*progs, **kw)
    monkeypatch.setattr(drv, "_api", fake)
    monkeypatch.setattr(drv, "_init_error", None)
    return fake


def _rand(shapes, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


@pytest.fixture(scope="module")
def mix_prog():
    return compile_cuda(MIX_MLIR, "mix", make_context())


@pytest.fixture(scope="module")
def lstm_prog():
    return compile_cuda(lstm_forward_mlir(37, 29), "lstm", make_context())


def test_mix_through_the_launcher(monkeypatch, mix_prog, tmp_path):
    fake = _install(monkeypatch, mix_prog)
    mix_prog.save(tmp_path / "mix.json")
    f = cuda.load(tmp_path / "mix.json")
    xs = _rand(MIX_SHAPES)
    for g, w in zip(f(*xs), mix_numpy(*[x.astype(np.float64) for x in xs])):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    assert f.loaded_from == "cubin" and fake.loaded == ["cubin"]
    launched = [name for name, _, _ in fake.launches]
    assert launched == [s["kernel"] for s in mix_prog.plan["steps"] if s["op"] == "launch"]


@pytest.mark.parametrize("cell,B,H", [("lstm", 64, 32), ("gru", 48, 40)])
def test_cell_forward_backward_matches_float64(monkeypatch, cell, B, H):
    """Frontend (jit + vjp) -> GPU artifact -> emulated launch vs the numpy
    float64 references the GPU benchmark checks against."""
    build = _bench_module("build_gpu_artifacts")
    mlir, name = build.cell_source(cell, B, H)
    prog = compile_cuda(mlir, name, make_context())
    assert [k["kind"] for k in prog.kernels.values()].count("parallel") == 1
    _install(monkeypatch, prog)
    f = cuda.GpuFunction(prog.to_artifact())
    shapes, ref = CELLS[cell]
    xs = _rand(shapes(B, H), seed=1)
    for g, w in zip(f(*xs), ref(*[x.astype(np.float64) for x in xs])):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)


def test_device_arrays_and_out(monkeypatch, lstm_prog):
    _install(monkeypatch, lstm_prog)
    f = cuda.GpuFunction(lstm_prog.to_artifact())
    xs = _rand([(37, 29)] * 5, seed=2)
    want = lstm_forward_numpy(*[x.astype(np.float64) for x in xs])
    dev = [cuda.DeviceArray.from_numpy(x) for x in xs]
    got = f(*dev)
    assert all(isinstance(g, cuda.DeviceArray) for g in got)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.get(), w, rtol=1e-5, atol=1e-6)
    outs = [cuda.DeviceArray((37, 29), np.float32) for _ in range(2)]
    assert f(*dev, out=outs) == tuple(outs)
    with pytest.raises(ValueError, match="overlaps"):
        f(*dev, out=[dev[0], outs[1]])
    with pytest.raises(TypeError, match=r"argument 1 must be float32\[37, 29\]"):
        f(dev[0], cuda.DeviceArray((29, 37), np.float32), *dev[2:])
    host_out = [np.empty((37, 29), np.float32) for _ in range(2)]
    res = f(*xs, out=host_out)
    assert res[0] is host_out[0]
    np.testing.assert_allclose(host_out[1], want[1], rtol=1e-5, atol=1e-6)


def test_unloadable_cubin_falls_back_to_ptx(monkeypatch, lstm_prog):
    fake = _install(monkeypatch, lstm_prog, cubin_loads=False)
    f = cuda.GpuFunction(lstm_prog.to_artifact())
    assert f.loaded_from == "ptx" and "CUDA_ERROR_NO_BINARY_FOR_GPU" in f.load_note
    assert fake.loaded == ["ptx"]


def test_driver_errors_name_the_kernel(monkeypatch, lstm_prog):
    _install(monkeypatch, lstm_prog)
    art = lstm_prog.to_artifact()
    art["plan"]["steps"][0]["block"] = [2048, 1, 1]
    f = cuda.GpuFunction(art)
    with pytest.raises(cuda.CudaError, match=r"launching kernel lstm_k0 of lstm .*"
                                             r"CUDA_ERROR_INVALID_VALUE") as e:
        f(*_rand([(37, 29)] * 5))
    assert e.value.name == "CUDA_ERROR_INVALID_VALUE"


def test_artifact_for_a_newer_gpu_is_refused(monkeypatch, lstm_prog):
    _install(monkeypatch, lstm_prog, cc=(8, 0))
    with pytest.raises(cuda.CudaError, match="compiled for sm_90.*is sm_80.*recompile"):
        cuda.GpuFunction(lstm_prog.to_artifact())


def _bench_module(name):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_bench_runs_on_the_emulator(monkeypatch, tmp_path):
    """bench/gpu_bench.py end to end (ferrule only: no peers here), with the
    standalone launcher package it loads itself."""
    build = _bench_module("build_gpu_artifacts")
    mlir, name = build.cell_source("gru", 64, 16)
    prog = compile_cuda(mlir, name, make_context())
    prog.save(tmp_path / "gru_fb_64x16.json")
    mlir, name = build.cell_source("mlp", 48, 32)
    mlp = compile_cuda(mlir, name, make_context())
    mlp.save(tmp_path / "mlp_step_48x32.json")
    (tmp_path / "manifest.json").write_text(json.dumps({"target": "sm_90", "benchmarks": [
        {"file": "gru_fb_64x16.json", "cell": "gru", "B": 64, "H": 16, "kernels": ["parallel"]},
        {"file": "mlp_step_48x32.json", "cell": "mlp", "B": 48, "H": 32,
         "flops": 2 * 48 * 32 * 32 * 2.75}]}))
    bench = _bench_module("gpu_bench")
    monkeypatch.setattr(bench, "torch", None)
    _install(monkeypatch, prog, mlp, drv=bench.fc.driver)
    out = tmp_path / "report.json"
    rc = bench.main(["--artifacts", str(tmp_path), "--peers", "", "--repeat", "2",
                     "--check-rows", "8", "--copy-bytes", str(1 << 16), "--json", str(out),
                     "--markdown", str(tmp_path / "table.md")])
    report = json.loads(out.read_text())
    (res,) = report["cases"][0]["results"]
    assert rc == 0 and res["ok"] and res["impl"] == "ferrule (cubin)", res
    assert report["cases"][0]["bytes"] == (64 * 48 + 64 * 16 * 2 + 64 * 16 + 64 * 48 + 64 * 16) * 4
    (res,) = report["cases"][1]["results"]          # every output checked, GFLOP/s reported
    assert res["ok"] and res["max_rel_err"] < 1e-5 and res["GFLOPs"] > 0, res
    assert "| mlp | 48×32 | ferrule (cubin) |" in (tmp_path / "table.md").read_text()


def test_the_gpu_launcher_suite_passes_on_the_emulator(monkeypatch, tmp_path):
    """tests/cuda/test_cuda_launcher.py — the suite bench/gpu_check.sh runs on the
    GPU — against the emulator, with artifacts built as the build script
    builds them (the torch/CuPy tests skip where those are absent)."""
    build = _bench_module("build_gpu_artifacts")
    progs = {}
    for tname, make in build.TEST_ARTIFACTS.items():
        mlir, fname, fast = make()
        progs[tname] = compile_cuda(mlir, fname, make_context(), fast_math=fast)
        progs[tname].save(tmp_path / f"{tname}.json")
    suite = _tests_module("test_cuda_launcher")
    monkeypatch.setattr(suite, "ARTIFACTS", tmp_path)
    fake = FakeCuda(*progs.values())
    monkeypatch.setattr(suite.fc.driver, "_api", fake)
    monkeypatch.setattr(suite.fc.driver, "_init_error", None)
    ran = []
    for name in sorted(dir(suite)):
        if name.startswith("test_"):
            try:
                getattr(suite, name)()
                ran.append(name)
            except pytest.skip.Exception as e:
                assert "not installed" in str(e) or "no CUDA" in str(e), str(e)
    assert len(ran) >= 8, ran
    assert "test_vector_kernel_on_aligned_and_misaligned_device_arrays" in ran
    assert "ptx" in fake.loaded and "cubin" in fake.loaded


def _tests_module(name):
    spec = importlib.util.spec_from_file_location(f"_suite_{name}", ROOT / "tests" / "cuda" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------- DLPack inputs

_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_NAME = b"dltensor"


class _DLPackOnly:
    """A DLPack producer for device memory with no ``__cuda_array_interface__``
    (as JAX arrays are seen by consumers that only speak DLPack)."""

    def __init__(self, base, shape, dtype, byte_offset=0, device_type=2):
        from ferrule.runtime.cuda import dlpack
        dtype = np.dtype(dtype)
        self.base, self.device_type, self.streams = base, device_type, []
        self._shape = (ctypes.c_int64 * len(shape))(*shape)
        self.mt = dlpack._DLManagedTensor()
        t = self.mt.dl_tensor
        t.data, t.byte_offset = base.ptr, byte_offset
        t.device.device_type, t.device.device_id = device_type, 0
        t.ndim, t.shape = len(shape), self._shape
        t.dtype.code, t.dtype.bits, t.dtype.lanes = {"f": 2, "i": 0}[dtype.kind], dtype.itemsize * 8, 1

    def __dlpack_device__(self):
        return (self.device_type, 0)

    def __dlpack__(self, stream=None):
        self.streams.append(stream)
        return _capsule_new(ctypes.addressof(self.mt), _NAME, None)


def _dlpack_inputs(xs, offset=0):
    out = []
    for x in xs:
        raw = np.zeros(x.nbytes + 16, np.uint8)
        raw[offset:offset + x.nbytes] = x.view(np.uint8).ravel()
        out.append(_DLPackOnly(cuda.DeviceArray.from_numpy(raw), x.shape, x.dtype, offset))
    return out


@pytest.mark.parametrize("offset", [0, 4])
def test_dlpack_cuda_inputs_are_used_in_place(monkeypatch, offset):
    prog = compile_cuda(lstm_forward_mlir(8, 64), "lstm", make_context())
    _install(monkeypatch, prog)
    f = cuda.GpuFunction(prog.to_artifact())
    xs = _rand([(8, 64)] * 5, seed=4)
    dl = _dlpack_inputs(xs, offset)
    got = f(*dl)
    assert all(isinstance(g, cuda.DeviceArray) for g in got)
    for g, w in zip(got, lstm_forward_numpy(*[x.astype(np.float64) for x in xs])):
        np.testing.assert_allclose(g.get(), w, rtol=1e-5, atol=1e-6)
    # Asked for on the legacy default stream, which the launch uses.
    assert [d.streams for d in dl] == [[1]] * 5


def test_dlpack_views_are_kept_until_the_kernels_finish(monkeypatch):
    """sync=False would return while kernels still read the producer's
    memory, whose hold is released with the view: such a call synchronises;
    and the capsule is asked for on the launch's stream."""
    prog = compile_cuda(lstm_forward_mlir(8, 64), "lstm", make_context())
    fake = _install(monkeypatch, prog)
    f = cuda.GpuFunction(prog.to_artifact())
    xs = _rand([(8, 64)] * 5, seed=6)
    dev = [cuda.DeviceArray.from_numpy(x) for x in xs]
    before = fake.syncs
    f(*dev, sync=False)
    assert fake.syncs == before            # CUDA-interface arrays: no wait
    dl = _dlpack_inputs(xs)
    f(*dl, sync=False, stream=7)
    assert fake.syncs == before + 1 and [d.streams for d in dl] == [[7]] * 5


def test_dlpack_errors_name_the_argument(monkeypatch):
    prog = compile_cuda(lstm_forward_mlir(8, 64), "lstm", make_context())
    _install(monkeypatch, prog)
    f = cuda.GpuFunction(prog.to_artifact())
    xs = _rand([(8, 64)] * 5, seed=5)
    rocm = _dlpack_inputs(xs)
    rocm[2].device_type = 10
    with pytest.raises(TypeError, match=r"argument 2 is a DLPack array on a ROCm device"):
        f(*rocm)
    wrong = _dlpack_inputs(xs[:4]) + [_DLPackOnly(cuda.DeviceArray((8, 32), np.float32),
                                                  (8, 32), np.float32)]
    with pytest.raises(TypeError, match=r"argument 4 must be float32\[8, 64\], got float32\[8, 32\]"):
        f(*wrong)
    with pytest.raises(TypeError, match=r"out\[0\] must be a device array"):
        f(*_dlpack_inputs(xs), out=_dlpack_inputs(xs[:2]))
