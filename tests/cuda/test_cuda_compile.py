"""The GPU compile path on a machine without a GPU: PTX facts, launch
configuration, target validation, the artifact round trip, and the loop
mapping's semantics (run on the CPU by turning each launch back into loops).

The launcher itself is exercised on a GPU by tests/cuda/test_cuda_launcher.py.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from ferrule.dialect.context import make_context
from ferrule.runtime.cuda_compile import compile_cuda
from ferrule.runtime.cuda_compile import parse_target

ROOT = Path(__file__).resolve().parents[2]
FILECHECK = Path(sysconfig.get_paths()["purelib"]) / "llvm/bin/FileCheck"
FILECHECK = FILECHECK if FILECHECK.exists() else shutil.which("FileCheck")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cuda_cases import (MIX_MLIR, MIX_SHAPES, lstm_forward_mlir,  # noqa: E402
                        lstm_forward_numpy, mix_numpy)
from cuda_emulator import run_mapped_on_cpu  # noqa: E402


@pytest.fixture(scope="module")
def lstm_prog():
    return compile_cuda(lstm_forward_mlir(256, 1024), "lstm", make_context())


@pytest.fixture(scope="module")
def mix_prog():
    return compile_cuda(MIX_MLIR, "mix", make_context())


# ------------------------------------------------------------- PTX facts

def test_lstm_forward_is_one_kernel_with_grid_stride_blocks_of_256(lstm_prog):
    ptx = lstm_prog.ptx
    assert ptx.count(".entry") == 1 == len(lstm_prog.kernels)
    (name, k), = lstm_prog.kernels.items()
    assert k["kind"] == "parallel" and k["grid_stride"]
    assert k["block"] == [256, 1, 1]
    assert k["elements"] == 256 * 1024
    # Four neighbouring elements per thread (16-byte vectors).
    assert k["vector"] == 4 and k["grid"] == [256 * 1024 // (4 * 256), 1, 1]
    assert ".maxntid 256, 1, 1" in ptx
    assert ".target sm_90" in ptx and ".version 8.0" in ptx
    assert ".local" not in ptx, "no local memory (stack) in a pointwise kernel"
    # Five inputs read and two outputs written once per element, coalesced,
    # through the read-only data cache (noalias + readonly inputs): as
    # 16-byte vectors, and as scalars in the misaligned fallback.
    assert ptx.count("ld.global.nc.v4.b32") == 5 and ptx.count("st.global.v4.b32") == 2
    assert ptx.count("ld.global.nc.b32") == 5 and ptx.count("st.global.b32") == 2
    assert ptx.count("ld.global") == ptx.count("ld.global.nc") == 10
    # One launch in the plan, inputs in order, outputs by result index.
    (step,) = lstm_prog.plan["steps"]
    assert step["kernel"] == name and step["grid"] == k["grid"]
    assert [a["kind"] for a in step["args"]] == ["input"] * 5 + ["output"] * 2


@pytest.mark.skipif(shutil.which("ptxas") is None, reason="ptxas (CUDA toolkit) not installed")
def test_ptxas_reports_no_spills(lstm_prog):
    assert lstm_prog.cubin and lstm_prog.cubin[:4] == b"\x7fELF"
    log = lstm_prog.as_text("ptxas")
    assert "0 bytes spill stores, 0 bytes spill loads" in log
    assert "0 bytes stack frame" in log
    (k,) = lstm_prog.kernels.values()
    assert k["spill_stores"] == k["spill_loads"] == 0 and k["registers"] <= 64


@pytest.mark.skipif(FILECHECK is None, reason="FileCheck not installed")
def test_ptx_filecheck(lstm_prog, tmp_path):
    checks = tmp_path / "checks.txt"
    checks.write_text("\n".join([
        "CHECK: .version 8.0",
        "CHECK: .target sm_90",
        "CHECK: .visible .entry lstm_k0(",
        "CHECK: .maxntid 256, 1, 1",
        "CHECK-NOT: .local",
        "CHECK: %nctaid.x",
        "CHECK-NOT: .entry",
        ""]))
    proc = subprocess.run([str(FILECHECK), str(checks)], input=lstm_prog.ptx,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_fused_forward_and_backward_of_the_lstm_cell():
    """Via the frontend: forward outputs and all cotangents in ONE pointwise
    kernel (dG's slices may still be copied into place by copy kernels
    until bufferization writes them in place)."""
    ferrule = pytest.importorskip("ferrule")
    from models import lstm_fb

    z = lambda *s: np.broadcast_to(np.float32(0), s)  # noqa: E731 (shapes only)
    low = ferrule.jit(lstm_fb).lower(z(64, 128), z(64, 32), z(64, 32), z(64, 32))
    prog = compile_cuda(low.as_text("ad"), low.name, make_context())
    kinds = [k["kind"] for k in prog.kernels.values()]
    assert kinds.count("parallel") == 1 and set(kinds) <= {"parallel", "copy"}
    assert prog.ptx.count(".entry") == len(prog.kernels)
    assert ".local" not in prog.ptx
    main = next(k for k in prog.kernels.values() if k["kind"] == "parallel")
    assert main["block"] == [256, 1, 1] and main["grid_stride"]


def test_fast_math_uses_hardware_approximations():
    prog = compile_cuda(lstm_forward_mlir(4, 8), "lstm", make_context(), fast_math=True)
    assert "tanh.approx.f32" in prog.ptx
    assert "div.rn.f32" not in prog.ptx   # approximate division allowed
    assert "fastmath<fast>" in prog.as_text("gpu")
    exact = compile_cuda(lstm_forward_mlir(4, 8), "lstm", make_context())
    assert "tanh.approx.f32" not in exact.ptx


def test_index_arithmetic_widens_past_2_to_the_31():
    """32-bit index arithmetic while every buffer and loop index fits in
    it (cheaper on the GPU), 64-bit beyond."""
    small = compile_cuda(lstm_forward_mlir(4, 8), "lstm", make_context(), make_cubin=False)
    loop_index = r"llvm\.br \^bb\d+\(%\d+ : (i\d+)\)"   # the grid-stride loop's index
    assert re.search(loop_index, small.as_text("nvvm")).group(1) == "i32"
    big = compile_cuda(lstm_forward_mlir(65536, 32768), "lstm", make_context(), make_cubin=False)
    assert re.search(loop_index, big.as_text("nvvm")).group(1) == "i64"
    assert "setp.lt.u64" in big.ptx or "setp.lt.s64" in big.ptx
    assert "setp.lt.u32" in small.ptx or "setp.lt.s32" in small.ptx
    (k,) = big.kernels.values()
    assert k["vector"] == 4 and k["grid"][0] == 2**31 // (4 * 256)


# ------------------------------------------------------------- targets

@pytest.mark.parametrize("target,ptx,msg", [
    ("sm_91", None, "unknown CUDA processor"),
    ("sm_90", 70, "too old for sm_90"),
    ("sm_100", "8.0", "too old for sm_100"),
    ("sm_90", "9.9", "unknown PTX ISA version"),
    ("gfx90a", None, "unknown CUDA processor"),
])
def test_invalid_target_options_raise_instead_of_aborting(target, ptx, msg):
    # LLVM would abort this process on these; reaching the assertion at all
    # shows the options were refused before LLVM saw them.
    with pytest.raises(ValueError, match=msg):
        compile_cuda(lstm_forward_mlir(4, 8), "lstm", make_context(),
                     target=target, ptx_version=ptx)


def test_target_spellings():
    assert parse_target("cuda:sm_90").sm == "sm_90"
    assert parse_target("cuda").sm == "sm_90"
    assert parse_target("sm_80").ptx == 80
    assert parse_target("sm_100").ptx == 86      # the chip's minimum
    assert parse_target("sm_90", "ptx83").ptx_version == "8.3"


def test_stages_are_available(lstm_prog):
    assert "gpu.launch_func" in lstm_prog.as_text("gpu")
    assert "gpu.launch " in lstm_prog.as_text("mapped")
    assert "llvm.func @lstm_k0" in lstm_prog.as_text("nvvm")
    assert "define ptx_kernel void @lstm_k0" in lstm_prog.as_text("llvm")
    assert "__nv_tanhf" in lstm_prog.as_text("llvm")       # libdevice, linked...
    assert "__nv_tanhf" not in lstm_prog.as_text("llvm-opt")  # ...and inlined
    with pytest.raises(ValueError, match="unknown stage"):
        lstm_prog.as_text("spirv")


# ------------------------------------------------------------- the plan

def test_mix_plan_resolves_views_constants_and_copies(mix_prog):
    plan = mix_prog.plan
    kinds = sorted(k["kind"] for k in mix_prog.kernels.values())
    assert kinds.count("serial") == 1          # the reduction to a 0-d tensor
    assert kinds.count("copy") >= 3            # slice, reshape, returned input
    assert len(plan["constants"]) == 1 and plan["constants"][0]["nbytes"] == 128
    args = [a for s in plan["steps"] if s["op"] == "launch" for a in s["args"]]
    assert {"kind": "const", "index": 0} in args
    # The slice and the reshape are views of the transpose's output buffer.
    assert sum(1 for a in args if a == {"kind": "output", "index": 2}) >= 3
    assert plan["outputs"][3] == {"shape": [], "dtype": "float32"}
    assert mix_prog.ptx.count(".entry") == len(mix_prog.kernels)
    serial = next(k for k in mix_prog.kernels.values() if k["kind"] == "serial")
    assert serial["grid"] == serial["block"] == [1, 1, 1] and not serial["grid_stride"]


# ------------------------------------------------------ semantics on the CPU

def _run_mapped_on_cpu(prog, name, arrays):
    return run_mapped_on_cpu(prog.as_text("mapped"), name, prog.inputs, prog.outputs, arrays)


def test_mapped_lstm_matches_numpy_on_cpu():
    prog = compile_cuda(lstm_forward_mlir(37, 29), "lstm", make_context(), make_cubin=False)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((37, 29)).astype(np.float32) for _ in range(5)]
    got = _run_mapped_on_cpu(prog, "lstm", xs)
    want = lstm_forward_numpy(*[x.astype(np.float64) for x in xs])
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_mapped_mix_matches_numpy_on_cpu(mix_prog):
    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal(s).astype(np.float32) for s in MIX_SHAPES)
    got = _run_mapped_on_cpu(mix_prog, "mix", [a, b, c])
    for g, w in zip(got, mix_numpy(a, b, c)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------- artifacts

_STANDALONE_LOAD = r"""
import importlib.abc, importlib.util, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("mlir", "llvmlite", "ferrule"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
spec = importlib.util.spec_from_file_location(
    "ferrule_cuda", sys.argv[1] + "/__init__.py", submodule_search_locations=[sys.argv[1]])
fc = importlib.util.module_from_spec(spec); sys.modules["ferrule_cuda"] = fc
spec.loader.exec_module(fc)
art = fc.load_artifact(sys.argv[2])
print(json.dumps({"kernels": sorted(art["kernels"]), "ptx_len": len(art["ptx"]),
                  "inputs": art["plan"]["inputs"], "available": fc.available() == ""}))
"""


def test_artifact_round_trips_through_the_standalone_launcher(mix_prog, tmp_path):
    import json
    path = tmp_path / "mix.json"
    mix_prog.save(path)
    from ferrule.runtime.cuda import artifact
    art = artifact.load(path)
    assert art == json.loads(json.dumps(mix_prog.to_artifact()))
    assert artifact.cubin_bytes(art) == mix_prog.cubin
    proc = subprocess.run([sys.executable, "-c", _STANDALONE_LOAD,
                           str(ROOT / "runtime" / "cuda"), str(path)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["kernels"] == sorted(mix_prog.kernels)
    assert out["ptx_len"] == len(mix_prog.ptx)
    assert out["inputs"] == mix_prog.plan["inputs"]


# The installed package's path to the launcher: ferrule's package __init__s
# import lazily, so neither ``from ferrule.runtime import cuda`` nor
# ``import ferrule`` followed by ``ferrule.runtime.cuda`` loads MLIR or LLVM.
_INSTALLED_LOAD = r"""
import importlib.abc, json, runpy, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("mlir", "llvmlite"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import ferrule
art = ferrule.runtime.cuda.load_artifact(sys.argv[1])   # the README's spelling
from ferrule.runtime import cuda
assert ferrule.runtime.cuda is cuda and callable(ferrule.runtime.cuda.load)
print(json.dumps({"kernels": sorted(art["kernels"]),
                  "loaded": sorted(m for m in sys.modules if m.startswith(("mlir", "llvmlite")))}))
sys.argv = ["ferrule.runtime.cuda", "info", sys.argv[1]]
runpy.run_module("ferrule.runtime.cuda", run_name="__main__")
"""


def test_installed_launcher_imports_neither_mlir_nor_llvm(mix_prog, tmp_path):
    path = tmp_path / "mix.json"
    mix_prog.save(path)
    proc = subprocess.run([sys.executable, "-c", _INSTALLED_LOAD, str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    first, *info = proc.stdout.splitlines()
    out = json.loads(first)
    assert out == {"kernels": sorted(mix_prog.kernels), "loaded": []}
    assert info[0].startswith("function  mix") and any(l.startswith("kernel") for l in info)


def test_corrupt_artifacts_are_refused(mix_prog, tmp_path):
    from ferrule.runtime.cuda import ArtifactError, artifact
    art = mix_prog.to_artifact()
    art["plan"]["steps"][0]["kernel"] = "nope"
    with pytest.raises(ArtifactError, match="unknown kernel 'nope'"):
        artifact.validate(art)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ArtifactError, match="not a ferrule-cuda-artifact"):
        artifact.load(tmp_path / "x.json")


def test_launcher_without_gpu_raises_cuda_unavailable(mix_prog, tmp_path):
    from ferrule.runtime import cuda
    if cuda.available() == "":
        pytest.skip("a CUDA GPU is present: tests/cuda/test_cuda_launcher.py covers it")
    assert "CUDA" in cuda.available()
    mix_prog.save(tmp_path / "mix.json")
    with pytest.raises(cuda.CudaUnavailable):
        cuda.load(tmp_path / "mix.json")


def test_zero_accumulators_are_fills_and_splat_constants():
    """A matmul's zero init is a store-only fill kernel, so the artifact
    carries no buffer of zeros (the MLP step's artifact went from 35 MB to
    150 KB); a splat constant a kernel does read is stored as one element."""
    from ferrule.runtime.cuda import artifact
    ferrule = pytest.importorskip("ferrule")
    a, b = np.ones((512, 256), np.float32), np.ones((256, 128), np.float32)
    prog = ferrule.compile(lambda a, b: a @ b, a, b, target="cuda:sm_90").program
    kinds = [k["kind"] for k in prog.kernels.values()]
    assert "fill" in kinds and "copy" not in kinds
    art = prog.to_artifact()
    assert art["plan"]["constants"] == [] and len(json.dumps(art)) < 100_000
    one = np.float32(0.5).tobytes()
    art["plan"]["constants"] = [{"nbytes": 4096, "splat": base64.b64encode(one).decode()}]
    artifact.validate(art)
    assert artifact.constant_bytes(art, 0) == one * 1024
    art["plan"]["constants"][0]["data"] = ""
    with pytest.raises(artifact.ArtifactError, match="needs nbytes and one of data, splat"):
        artifact.validate(art)
