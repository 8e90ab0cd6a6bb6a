"""The CUDA launcher on a real GPU, with prebuilt artifacts.

Needs only numpy and the NVIDIA driver (the launcher is loaded from
runtime/cuda on its own: no MLIR, no LLVM, no ferrule install), so it runs
on a GPU machine where the artifacts were carried from a compile machine::

    .venv/bin/python bench/build_gpu_artifacts.py      # where MLIR is
    python -m pytest tests/cuda/test_cuda_launcher.py       # on the GPU machine
    python tests/cuda/test_cuda_launcher.py                 # same, without pytest

Artifacts are read from $FERRULE_CUDA_ARTIFACTS or bench/artifacts/tests.
Every test is skipped, with the reason, where there is no GPU or no artifact.
"""

import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import cuda_cases  # noqa: E402

try:
    import pytest
except ImportError:  # the GPU machine may lack pytest: see _main below
    pytest = None


class Skip(Exception):
    pass


def _skip(reason):
    if pytest is not None:
        pytest.skip(reason)
    raise Skip(reason)


fc = cuda_cases.load_launcher()
ARTIFACTS = Path(os.environ.get("FERRULE_CUDA_ARTIFACTS", ROOT / "bench" / "artifacts" / "tests"))


def _need(name):
    why = fc.available()
    if why:
        _skip(f"no CUDA driver/GPU: {why}")
    path = ARTIFACTS / f"{name}.json"
    if not path.exists():
        _skip(f"no prebuilt artifact {path}: run bench/build_gpu_artifacts.py where MLIR "
              f"is installed and carry bench/artifacts here")
    return path


def _rand(shapes, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _close(got, want, rtol=2e-5, atol=2e-6):
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g, np.float64), w, rtol=rtol, atol=atol)


# ------------------------------------------------------------------ tests

def test_lstm_forward_numpy_in_numpy_out():
    f = fc.load(_need("lstm_forward_37x29"))
    xs = _rand([(37, 29)] * 5)
    got = f(*xs)
    assert all(isinstance(g, np.ndarray) and g.dtype == np.float32 for g in got)
    _close(got, cuda_cases.lstm_forward_numpy(*[x.astype(np.float64) for x in xs]))
    got2 = f(*xs)          # cached device buffers are reused correctly
    _close(got2, [np.asarray(g, np.float64) for g in got], rtol=0, atol=0)


def test_cubin_and_ptx_give_the_same_results():
    path = _need("lstm_forward_37x29")
    xs = _rand([(37, 29)] * 5, seed=1)
    a = fc.load(path)
    b = fc.GpuFunction(fc.load_artifact(path), prefer_cubin=False)
    assert b.loaded_from == "ptx"
    _close(a(*xs), [np.asarray(g, np.float64) for g in b(*xs)], rtol=0, atol=0)


def test_fast_math_artifact_is_close():
    f = fc.load(_need("lstm_forward_37x29_fast"))
    xs = _rand([(37, 29)] * 5, seed=2)
    _close(f(*xs), cuda_cases.lstm_forward_numpy(*[x.astype(np.float64) for x in xs]),
           rtol=2e-3, atol=2e-3)


def test_mix_views_constants_copies_and_serial_kernel():
    f = fc.load(_need("mix"))
    xs = _rand(cuda_cases.MIX_SHAPES, seed=3)
    _close(f(*xs), cuda_cases.mix_numpy(*[x.astype(np.float64) for x in xs]),
           rtol=1e-5, atol=1e-5)


def test_lstm_and_gru_forward_backward_against_float64():
    for name, cell, (B, H), dtype, tol in [
            ("lstm_fb_64x32", "lstm", (64, 32), np.float32, 2e-5),
            ("gru_fb_48x40", "gru", (48, 40), np.float32, 2e-5),
            ("gru_fb_48x40_f64", "gru", (48, 40), np.float64, 1e-12)]:
        f = fc.load(_need(name))
        shapes, ref = cuda_cases.CELLS[cell]
        xs = _rand(shapes(B, H), dtype, seed=4)
        _close(f(*xs), ref(*[x.astype(np.float64) for x in xs]), rtol=tol, atol=tol)


def test_device_arrays_stay_on_the_device():
    f = fc.load(_need("lstm_forward_37x29"))
    xs = _rand([(37, 29)] * 5, seed=5)
    dev = [fc.DeviceArray.from_numpy(x) for x in xs]
    got = f(*dev)
    assert all(isinstance(g, fc.DeviceArray) for g in got)
    want = cuda_cases.lstm_forward_numpy(*[x.astype(np.float64) for x in xs])
    _close([g.get() for g in got], want)
    outs = [fc.DeviceArray((37, 29), np.float32) for _ in range(2)]
    res = f(*dev, out=outs)
    assert res[0] is outs[0] and res[1] is outs[1]
    _close([o.get() for o in outs], want)


class _OffsetView:
    """A device array ``offset`` bytes into a launcher buffer (as a CuPy or
    PyTorch view at an odd element offset would be)."""

    def __init__(self, x, offset):
        raw = np.zeros(x.nbytes + 16, np.uint8)
        raw[offset:offset + x.nbytes] = x.view(np.uint8).ravel()
        self.base = fc.DeviceArray.from_numpy(raw)
        self.__cuda_array_interface__ = {
            "shape": x.shape, "typestr": x.dtype.str, "strides": None,
            "data": (self.base.ptr + offset, False), "version": 3}


def test_vector_kernel_on_aligned_and_misaligned_device_arrays():
    """lstm_forward_64x32 uses 16-byte vector loads/stores; views 4 bytes
    off alignment take its scalar fallback. Both must match float64."""
    f = fc.load(_need("lstm_forward_64x32"))
    assert f.kernels["lstm_k0"]["vector"] == 4
    xs = _rand([(64, 32)] * 5, seed=8)
    want = cuda_cases.lstm_forward_numpy(*[x.astype(np.float64) for x in xs])
    for offset in (0, 4):
        got = f(*[_OffsetView(x, offset) for x in xs])
        _close([g.get() for g in got], want)


def test_jax_arrays_zero_copy():
    _need("lstm_forward_64x32")
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        _skip("jax not installed")
    if not any(d.platform == "gpu" for d in jax.devices()):
        _skip("jax has no CUDA device")
    f = fc.load(_need("lstm_forward_64x32"))
    xs = _rand([(64, 32)] * 5, seed=9)
    js = [jnp.asarray(x) for x in xs]
    got = f(*js)
    _close([g.get() for g in got],
           cuda_cases.lstm_forward_numpy(*[x.astype(np.float64) for x in xs]))


def test_torch_cuda_tensors_zero_copy():
    _need("lstm_forward_37x29")
    try:
        import torch
    except ImportError:
        _skip("torch not installed")
    if not torch.cuda.is_available():
        _skip("torch has no CUDA")
    f = fc.load(_need("lstm_forward_37x29"))
    xs = _rand([(37, 29)] * 5, seed=6)
    ts = [torch.from_numpy(x).cuda() for x in xs]
    h, c = f(*ts)
    assert isinstance(h, torch.Tensor) and h.is_cuda and h.dtype == torch.float32
    _close([h.cpu().numpy(), c.cpu().numpy()],
           cuda_cases.lstm_forward_numpy(*[x.astype(np.float64) for x in xs]))
    out = [torch.empty(37, 29, device="cuda"), torch.empty(37, 29, device="cuda")]
    res = f(*ts, out=out)
    assert res[0].data_ptr() == out[0].data_ptr()
    try:
        f(*ts, out=[ts[0], out[1]])
        raise AssertionError("an output overlapping an input must be refused")
    except ValueError as e:
        assert "overlaps" in str(e)


def test_cupy_arrays_zero_copy():
    _need("lstm_forward_37x29")
    try:
        import cupy
    except ImportError:
        _skip("cupy not installed")
    f = fc.load(_need("lstm_forward_37x29"))
    xs = _rand([(37, 29)] * 5, seed=7)
    h, c = f(*[cupy.asarray(x) for x in xs])
    assert isinstance(h, cupy.ndarray)
    _close([cupy.asnumpy(h), cupy.asnumpy(c)],
           cuda_cases.lstm_forward_numpy(*[x.astype(np.float64) for x in xs]))


def test_errors_name_the_kernel_and_the_cuda_error():
    path = _need("lstm_forward_37x29")
    f = fc.load(path)
    try:
        f(*_rand([(37, 28)] * 5))
        raise AssertionError("wrong shapes must be refused")
    except TypeError as e:
        assert "argument 0 must be float32[37, 29]" in str(e)
    art = fc.load_artifact(path)
    step = art["plan"]["steps"][0]
    step["block"] = [2048, 1, 1]          # beyond every GPU's limit
    bad = fc.GpuFunction(art)
    try:
        bad(*_rand([(37, 29)] * 5))
        raise AssertionError("an invalid launch must raise")
    except fc.CudaError as e:
        assert step["kernel"] in str(e) and "CUDA_ERROR_" in str(e), str(e)
    art = fc.load_artifact(path)
    art["target"]["sm"] = "sm_200"
    try:
        fc.GpuFunction(art)
        raise AssertionError("an artifact for a newer GPU must be refused")
    except fc.CudaError as e:
        assert "recompile" in str(e)


def _main() -> int:
    """Run the tests without pytest; prints 'N passed, N failed, N skipped'."""
    passed = failed = skipped = 0
    for name, fn in sorted(globals().items()):
        if not (name.startswith("test_") and callable(fn)):
            continue
        try:
            fn()
            passed += 1
            print(f"PASS {name}")
        except Skip as e:
            skipped += 1
            print(f"SKIP {name}: {e}")
        except Exception as e:  # noqa: BLE001 - report every failure
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    pytest = None  # run standalone even where pytest is installed
    sys.exit(_main())
