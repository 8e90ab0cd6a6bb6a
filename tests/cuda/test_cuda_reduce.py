"""Reductions to one value on the GPU (runtime/cuda_compile/reduce.py): three
launches (per-thread partials, one block combining them, one thread
finishing) instead of a single-thread loop. Run on the emulated driver
against numpy float64, and matched/refused on hand-written buffer IR."""

import numpy as np
import pytest
from mlir import ir

import ferrule
import ferrule.numpy as fnp
from ferrule.dialect.context import make_context
from ferrule.runtime import cuda
from ferrule.runtime.cuda import driver
from ferrule.runtime.cuda_compile.mapping import map_module_to_gpu
from ferrule.runtime.cuda_compile.reduce import PARTIAL_BLOCKS, match_reduction

from cuda_emulator import FakeCuda


def _run_on_emulator(monkeypatch, fun, *args):
    prog = ferrule.compile(fun, *args, target="cuda:sm_90")
    monkeypatch.setattr(driver, "_api", FakeCuda(prog.program))
    monkeypatch.setattr(driver, "_init_error", None)
    return prog, cuda.GpuFunction(prog.program.to_artifact())(*args)


CASES = [
    ("sum", lambda x: fnp.sum(x), lambda x: np.sum(x)),
    ("mean of squares", lambda x: fnp.mean(x * x), lambda x: np.mean(x * x)),
    ("max", lambda x: fnp.max(x), lambda x: np.max(x)),
    ("min via -max(-x)", lambda x: -fnp.max(-x), lambda x: np.min(x)),
]


@pytest.mark.parametrize("name,f,ref", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("shape", [(3, 5), (300, 1000)])
def test_full_reductions_match_numpy(monkeypatch, name, f, ref, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    prog, (got,) = _run_on_emulator(monkeypatch, lambda x: (f(x),), x)
    kinds = [k["kind"] for k in prog.program.kernels.values()]
    assert kinds.count("reduce") == 3
    want = ref(x.astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_partials_cover_big_inputs_with_a_bounded_grid(monkeypatch):
    x = np.random.default_rng(1).standard_normal((1100, 1024)).astype(np.float32)
    prog, (got,) = _run_on_emulator(monkeypatch, lambda x: (fnp.sum(x * x),), x)
    grids = [k["grid"][0] for k in prog.program.kernels.values() if k["kind"] == "reduce"]
    assert grids == [PARTIAL_BLOCKS, 1, 1]      # 1100*1024 points > 1024 blocks of 256
    np.testing.assert_allclose(got, np.sum(x.astype(np.float64) ** 2), rtol=1e-6)


def test_max_propagates_nan(monkeypatch):
    x = np.arange(6000, dtype=np.float32).reshape(60, 100)
    x[37, 11] = np.nan
    _, (got,) = _run_on_emulator(monkeypatch, lambda x: (fnp.max(x),), x)
    assert np.isnan(got)


def test_value_and_grad_of_a_loss(monkeypatch):
    """A training step's loss is a full reduction next to pointwise
    gradient kernels; both match numpy float64."""
    rng = np.random.default_rng(2)
    w, x = (rng.standard_normal((256, 96)).astype(np.float32) for _ in range(2))
    loss = lambda w, x: fnp.mean((x * w - 1.0) ** 2)  # noqa: E731
    prog, (val, g) = _run_on_emulator(monkeypatch, ferrule.value_and_grad(loss), w, x)
    w64, x64 = w.astype(np.float64), x.astype(np.float64)
    np.testing.assert_allclose(val, np.mean((x64 * w64 - 1) ** 2), rtol=1e-6)
    np.testing.assert_allclose(g, 2 * (x64 * w64 - 1) * x64 / w.size, rtol=1e-5, atol=1e-9)


# ------------------------------------------------------------- matching

_NEST = """
func.func @f(%x: memref<8x16xf32>, %r: memref<f32>, %s: memref<16xf32>, %k: index) {{
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c16 = arith.constant 16 : index
  scf.for %i = %c0 to %c8 step %c1 {{
    scf.for %j = %c0 to %c16 step %c1 {{
      %v = memref.load %x[%i, %j] : memref<8x16xf32>
{body}
    }}
  }}
  return
}}
"""

MATCH = {
    "sum": (True, """      %a = memref.load %r[] : memref<f32>
      %n = arith.addf %a, %v : f32
      memref.store %n, %r[] : memref<f32>"""),
    "max, operands swapped": (True, """      %a = memref.load %r[] : memref<f32>
      %n = arith.maximumf %v, %a : f32
      memref.store %n, %r[] : memref<f32>"""),
    "product": (False, """      %a = memref.load %r[] : memref<f32>
      %n = arith.mulf %a, %v : f32
      memref.store %n, %r[] : memref<f32>"""),
    "accumulator at a loop index": (False, """      %a = memref.load %s[%j] : memref<16xf32>
      %n = arith.addf %a, %v : f32
      memref.store %n, %s[%j] : memref<16xf32>"""),
    "accumulator at a runtime index": (False, """      %a = memref.load %s[%k] : memref<16xf32>
      %n = arith.addf %a, %v : f32
      memref.store %n, %s[%k] : memref<16xf32>"""),
    "accumulator read twice": (False, """      %a = memref.load %r[] : memref<f32>
      %b = memref.load %r[] : memref<f32>
      %t = arith.addf %b, %v : f32
      %n = arith.addf %a, %t : f32
      memref.store %n, %r[] : memref<f32>"""),
    "a second store": (False, """      %a = memref.load %r[] : memref<f32>
      %n = arith.addf %a, %v : f32
      memref.store %n, %r[] : memref<f32>
      memref.store %v, %s[%j] : memref<16xf32>"""),
}


@pytest.mark.parametrize("case", list(MATCH))
def test_which_nests_are_parallel_reductions(case):
    expect, body = MATCH[case]
    with make_context(), ir.Location.unknown():
        module = ir.Module.parse(_NEST.format(body=body))
        fn = module.body.operations[0]
        loop = next(o.operation for o in fn.regions[0].blocks[0].operations
                    if o.operation.name == "scf.for")
        assert (match_reduction(loop) is not None) == expect
        infos = map_module_to_gpu(module)
        module.operation.verify()
        kinds = [i.kind for i in infos]
        assert kinds == (["reduce"] * 3 if expect else ["serial"])


# ------------------------------------------------ reductions over leading rows

@pytest.mark.parametrize("rows,cols", [(4000, 24), (1000, 3), (4099, 40)])
def test_column_reductions_split_over_row_chunks(monkeypatch, rows, cols):
    """A bias-gradient-like sum (and a max) over many rows into few outputs:
    row chunks in parallel, then the chunks folded in order."""
    x = np.random.default_rng(rows).standard_normal((rows, cols)).astype(np.float32)
    prog, (s, m) = _run_on_emulator(monkeypatch, lambda x: (fnp.sum(x * x, axis=0),
                                                            fnp.max(x, axis=0)), x)
    threads = [k["elements"] for k in prog.program.kernels.values() if k["kind"] == "reduce"]
    # per reduction: (chunks x cols) partial threads, then cols folding threads
    assert len(threads) == 4 and threads[0] >= 2 * cols and threads[1] == cols
    np.testing.assert_allclose(s, (x.astype(np.float64) ** 2).sum(0), rtol=1e-6)
    np.testing.assert_array_equal(m, x.max(0))


def test_few_rows_or_many_outputs_keep_one_thread_per_output(monkeypatch):
    x = np.ones((20, 64), np.float32)               # 20 rows: one chunk
    prog, (s,) = _run_on_emulator(monkeypatch, lambda x: (fnp.sum(x, axis=0),), x)
    assert "reduce" not in [k["kind"] for k in prog.program.kernels.values()]
    np.testing.assert_array_equal(s, np.full(64, 20.0, np.float32))


def test_bias_gradient_of_a_training_step(monkeypatch):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2048, 16)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    step = ferrule.grad(lambda b, x: fnp.mean(fnp.tanh(x + b) ** 2))
    prog, (g,) = _run_on_emulator(monkeypatch, lambda b, x: (step(b, x),), b, x)
    assert "reduce" in [k["kind"] for k in prog.program.kernels.values()]
    np.testing.assert_allclose(g, ferrule.jit(step)(b, x), rtol=1e-5, atol=1e-8)
