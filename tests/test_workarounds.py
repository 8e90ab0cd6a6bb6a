"""Are the upstream workarounds still needed?

For each workaround (passes/workarounds/, two guards in the runtime, and the
Python verifier of the ad dialect) this
runs the upstream passes alone on the IR that triggers the upstream bug, in
a subprocess (these bugs kill the process), and asserts that upstream still
fails. When such a test fails, upstream has fixed the bug: the message says
which workaround can go. A second test per workaround shows that ferrule's
way through the same IR works.
"""

import importlib.metadata
import subprocess
import sys
import textwrap

import pytest
from mlir import ir

from ferrule.dialect import make_context
from ferrule.passes import run_pipeline
from ferrule.passes.workarounds import (copy_to_linalg, distinct_results, loop_annotations,
                                        widen_bool_buffers, widen_bools)

BUFFERIZE = ["func.func(convert-elementwise-to-linalg)",
             "one-shot-bufferize{bufferize-function-boundaries "
             "function-boundary-type-conversion=identity-layout-map}",
             "buffer-results-to-out-params{hoist-static-allocs modify-public-functions}"]
TO_LLVM = ["func.func(convert-linalg-to-loops)", "expand-strided-metadata", "lower-affine",
           "convert-scf-to-cf", "convert-arith-to-llvm", "finalize-memref-to-llvm",
           "convert-func-to-llvm", "convert-cf-to-llvm", "reconcile-unrealized-casts"]

# distinct-results: one value returned twice.
RETURNED_TWICE = """
func.func @f(%a: tensor<4xf32> {bufferization.writable = false}) -> (tensor<4xf32>, tensor<4xf32>) {
  %0 = arith.addf %a, %a : tensor<4xf32>
  return %0, %0 : tensor<4xf32>, tensor<4xf32>
}"""
# widen-bools: a bool tensor result.
BOOL_RESULT = """
func.func @f(%a: tensor<4xf32> {bufferization.writable = false},
             %b: tensor<4xf32> {bufferization.writable = false}) -> tensor<4xi1> {
  %0 = arith.cmpf olt, %a, %b : tensor<4xf32>
  return %0 : tensor<4xi1>
}"""
# widen-bool-buffers: an i1 buffer (deallocation's ownership flags are such).
BOOL_BUFFER = """
func.func @f(%m: memref<4xi1>) -> i1 {
  %c0 = arith.constant 0 : index
  %v = memref.load %m[%c0] : memref<4xi1>
  memref.store %v, %m[%c0] : memref<4xi1>
  return %v : i1
}"""
# copy-to-linalg: a copy out of a strided view.
STRIDED_COPY = """
func.func @f(%a: memref<4x8xf32>, %b: memref<4x4xf32>) {
  %s = memref.subview %a[0, 0] [4, 4] [1, 1] : memref<4x8xf32> to memref<4x4xf32, strided<[8, 1]>>
  memref.copy %s, %b : memref<4x4xf32, strided<[8, 1]>> to memref<4x4xf32>
  return
}"""

_UPSTREAM_ONLY = """
import sys
from mlir import ir, passmanager
with ir.Context():
    module = ir.Module.parse(sys.argv[1])
    passmanager.PassManager.parse(sys.argv[2]).run(module.operation)
    print(module)
"""


def _upstream(ir_text: str, passes) -> subprocess.CompletedProcess:
    """Run upstream ``passes`` on ``ir_text`` in a fresh Python process."""
    pipeline = "builtin.module(" + ",".join(passes) + ")"
    return subprocess.run([sys.executable, "-c", _UPSTREAM_ONLY, ir_text, pipeline],
                          capture_output=True, text=True, timeout=120)


def _gone(name: str, path: str, what: str) -> str:
    return (f"upstream no longer {what}: the workaround {name!r} ({path}) is not needed "
            f"any more; remove it (and its place in runtime/pipelines.py and its lit test)")


def _ours(ir_text: str, passes) -> str:
    with make_context(), ir.Location.unknown():
        module = ir.Module.parse(ir_text)
        run_pipeline(module, passes)
        module.operation.verify()
        return str(module)


@pytest.mark.parametrize("mod", [distinct_results, widen_bools, widen_bool_buffers,
                                 copy_to_linalg, loop_annotations])
def test_each_workaround_names_the_llvm_it_was_checked_with(mod):
    installed = importlib.metadata.version("xtc-mlir-python-bindings")
    assert mod.LLVM_VERSION in mod.__doc__
    assert installed.startswith(mod.LLVM_VERSION + "."), (
        f"MLIR is now {installed}; {mod.__name__} was checked against LLVM "
        f"{mod.LLVM_VERSION}: run tests/test_workarounds.py, and update LLVM_VERSION "
        f"(or remove the workaround if its check below says so)")


def test_distinct_results_still_needed():
    proc = _upstream(RETURNED_TWICE, BUFFERIZE)
    assert proc.returncode != 0, _gone("distinct-results", "passes/workarounds/distinct_results.py",
                                       "crashes on a value returned twice")


def test_distinct_results_works_around_it():
    out = _ours(RETURNED_TWICE, [BUFFERIZE[0], "distinct-results", *BUFFERIZE[1:]])
    assert "memref.copy %arg1, %arg2" in out   # the second result: a copy of the first


def test_widen_bools_still_needed():
    proc = _upstream(BOOL_RESULT, BUFFERIZE + TO_LLVM)
    assert proc.returncode != 0, _gone("widen-bools", "passes/workarounds/widen_bools.py",
                                       "aborts on buffers of i1")


def test_widen_bools_works_around_it():
    out = _ours(BOOL_RESULT, [BUFFERIZE[0], "widen-bools", *BUFFERIZE[1:], *TO_LLVM])
    assert "i1" not in out.split("llvm.func @f")[1].split(")")[0]   # i8 buffers


def test_widen_bool_buffers_still_needed():
    proc = _upstream(BOOL_BUFFER, TO_LLVM)
    assert proc.returncode != 0, _gone("widen-bool-buffers",
                                       "passes/workarounds/widen_bool_buffers.py",
                                       "aborts on loads and stores of i1 buffers")


def test_widen_bool_buffers_works_around_it():
    out = _ours(BOOL_BUFFER, ["widen-bool-buffers", *TO_LLVM])
    assert "llvm.func @f" in out


def test_copy_to_linalg_still_needed():
    proc = _upstream(STRIDED_COPY, TO_LLVM)
    assert proc.returncode == 0, proc.stderr
    assert "memrefCopy" in proc.stdout, _gone(
        "copy-to-linalg", "passes/workarounds/copy_to_linalg.py",
        "lowers a strided memref.copy to a call of the runner library's memrefCopy")


def test_copy_to_linalg_works_around_it():
    assert "memrefCopy" not in _ours(STRIDED_COPY, ["copy-to-linalg", *TO_LLVM])


# forward-loop-annotations: an annotated scf.for.
ANNOTATED_LOOP = """
func.func @f(%m: memref<1024xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = arith.constant 1024 : index
  scf.for %i = %c0 to %n step %c1 {
    %x = memref.load %m[%i] : memref<1024xf32>
    %y = arith.mulf %x, %x : f32
    memref.store %y, %m[%i] : memref<1024xf32>
  } {llvm.loop_annotation = #llvm.loop_annotation<interleave = <count = 2>>}
  return
}"""

_TRANSLATED = """
import sys
from mlir import ir, passmanager
from ferrule.dialect import make_context
from ferrule.passes import run_pipeline
from ferrule.runtime.cpu.compile import translate_to_llvm_ir
with make_context():
    module = ir.Module.parse(sys.argv[1])
    run_pipeline(module, sys.argv[2])
    print(translate_to_llvm_ir(module.operation))
"""


def _llvm_ir(passes) -> str:
    proc = subprocess.run([sys.executable, "-c", _TRANSLATED, ANNOTATED_LOOP, ",".join(passes)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_forward_loop_annotations_still_needed():
    assert "llvm.loop.interleave.count" not in _llvm_ir(TO_LLVM), _gone(
        "forward-loop-annotations", "passes/workarounds/loop_annotations.py",
        "drops an scf.for's llvm.loop_annotation on the way to LLVM IR")


def test_forward_loop_annotations_works_around_it():
    text = _llvm_ir([*TO_LLVM, "forward-loop-annotations"])
    assert '!{!"llvm.loop.interleave.count", i32 2}' in text


# -- guards in the runtime --------------------------------------------------------

def test_translating_an_unconverted_op_still_crashes():
    """runtime/llvm_translate.py refuses such modules before LLVM sees them."""
    script = textwrap.dedent("""
        from mlir import ir
        from mlir.dialects import llvm
        with ir.Context():
            m = ir.Module.parse('''
              llvm.func @f(%a: vector<4xf32>) -> vector<4xf32> {
                %0 = vector.broadcast %a : vector<4xf32> to vector<4xf32>
                llvm.return %0 : vector<4xf32>
              }''')
            llvm.translate_module_to_llvmir(m.operation)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode < 0, _gone("translate_to_llvm_ir's check", "runtime/llvm_translate.py",
                                      "crashes translating an op left unconverted")


def test_a_ptx_version_too_old_for_the_chip_still_kills_the_process():
    """runtime/cuda_compile/target.py validates targets before LLVM sees them."""
    script = textwrap.dedent("""
        import llvmlite.binding as llvm
        llvm.initialize_all_targets(); llvm.initialize_all_asmprinters()
        tm = llvm.Target.from_triple("nvptx64-nvidia-cuda").create_target_machine(
            cpu="sm_90", features="+ptx70", opt=2)
        m = llvm.parse_assembly('target triple = "nvptx64-nvidia-cuda"\\n'
                                'define void @k() { ret void }')
        tm.emit_assembly(m)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "LLVM ERROR" in proc.stderr, _gone(
        "parse_target's PTX table", "runtime/cuda_compile/target.py",
        "exits on a PTX version too old for the chip")


def test_irdl_still_binds_a_variadic_to_one_type():
    """Why the ad ops are checked in Python (dialect/verify.py) against
    ad.irdl.mlir instead of being loaded with irdl.load_dialects: an IRDL
    variadic accepts operands of one type only, and ad ops mix them."""
    from mlir.dialects import irdl
    with ir.Context(), ir.Location.unknown():
        irdl.load_dialects(ir.Module.parse("""
            irdl.dialect @t {
              irdl.operation @op {
                %a = irdl.any
                irdl.operands(xs: variadic %a)
              }
            }"""))
        mixed = """
            func.func @f(%a: f32, %b: f64) {
              "t.op"(%a, %b) : (f32, f64) -> ()
              return
            }"""
        try:
            ir.Module.parse(mixed)
        except ir.MLIRError as e:
            assert "expected 'f32' but got 'f64'" in str(e)
        else:
            pytest.fail(_gone("Python verification of ad ops", "dialect/verify.py",
                              "binds an IRDL variadic to one type: load ad.irdl.mlir with "
                              "irdl.load_dialects instead"))
