"""expand-math: f32 math ops as polynomial arith code.

Accuracy is measured through the real CPU pipeline (``CPU_LOWERING`` runs
expand-math) against numpy in float64, on random bit patterns (every binade,
subnormals, infinities and NaNs), on a dense sample of each function's
interesting range, and on hand-picked edge cases. The IR tests check what the
pass promises: no libm call is left for f32 (so loops vectorise), ops are
found at any depth, new ops carry the replaced op's location, and f64,
tensor and unhandled ops are left alone.
"""

import math
import re

import numpy as np
import pytest
from mlir import ir

from ferrule.dialect import make_context
from ferrule.passes import run_pipeline
from ferrule.runtime import cpu, pipelines
from ferrule.runtime.cpu.codegen import host_target_machine, optimize
from ferrule.runtime.signature import function_specs

N = 1 << 17
F32_MIN = float(np.finfo(np.float32).tiny)
F32_MAX = float(np.finfo(np.float32).max)
MAX_REL = 3e-7   # over results that are normal f32 numbers
MAX_ULP = 2.5    # everywhere finite (subnormal results: in units of 2**-149)

_erf = np.vectorize(math.erf, otypes=[np.float64])

# name -> (float64 reference, sampler of the function's interesting range)
OPS = {
    "exp": (np.exp, lambda r: r.uniform(-105, 90, N)),
    "exp2": (np.exp2, lambda r: r.uniform(-151, 129, N)),
    "expm1": (np.expm1, lambda r: r.uniform(-20, 90, N)),
    "log": (np.log, lambda r: 10.0 ** r.uniform(-45, 38.5, N)),
    "log2": (np.log2, lambda r: 10.0 ** r.uniform(-45, 38.5, N)),
    "log10": (np.log10, lambda r: 10.0 ** r.uniform(-45, 38.5, N)),
    "log1p": (np.log1p, lambda r: r.uniform(-1, 3, N)),
    "tanh": (np.tanh, lambda r: r.uniform(-12, 12, N)),
    "sin": (np.sin, lambda r: r.uniform(-200, 200, N)),
    "cos": (np.cos, lambda r: r.uniform(-200, 200, N)),
    "erf": (_erf, lambda r: r.uniform(-5, 5, N)),
}

EDGES = [0.0, -0.0, 1e-45, -1e-45, 1e-40, -1e-40, F32_MIN, -F32_MIN, 1e-30,
         2.0 ** -24, -2.0 ** -24, 1e-7, -1e-7, 1e-4, -1e-4, 0.5, -0.5, 0.625,
         -0.625, 0.7071067, 1.0, -1.0, 1.0000001, 0.99999994, 2.0, -2.0,
         math.pi / 2, math.pi, -math.pi, 3.92, 4.0, 9.0, 10.0, -10.0, 17.0,
         -25.0, 88.0, 88.72283, 88.72284, 89.0, -87.33, -88.0, -100.0,
         -103.97, -103.98, -104.0, 119.99, 120.0, 127.99, 128.0, -126.0,
         -149.0, -150.0, -151.0, 1e6, 1e10, 1e30, -1e30, 1.2e38, F32_MAX,
         -F32_MAX, math.inf, -math.inf, math.nan, -math.nan]

@pytest.fixture(scope="module")
def ctx():
    return make_context()


@pytest.fixture(autouse=True)
def _cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FERRULE_CACHE_DIR", str(tmp_path))


def _unary_src(op: str, n: int = N) -> str:
    return (f"func.func @f(%a: tensor<{n}xf32>) -> tensor<{n}xf32> {{\n"
            f"  %0 = math.{op} %a : tensor<{n}xf32>\n"
            f"  return %0 : tensor<{n}xf32>\n}}")


def _compile(src: str, ctx) -> cpu.CpuFunction:
    _, llvm_ir = cpu.lower_to_llvm_ir(src, "f", ctx)
    ins, outs = function_specs(ir.Module.parse(src, ctx), "f")
    return cpu.CpuFunction(llvm_ir, "f", ins, outs)


def _inputs(op: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    edges = np.array(EDGES, np.float32)
    bits = rng.integers(0, 2 ** 32, N // 2, dtype=np.uint64).astype(np.uint32)
    dense = OPS[op][1](rng).astype(np.float32)
    x = np.concatenate([edges, -edges, bits.view(np.float32), dense])
    return x[:N]


def _ulp(r: np.ndarray) -> np.ndarray:
    """The f32 ulp at |r|, with subnormals' spacing below FLT_MIN."""
    a = np.maximum(np.abs(r), F32_MIN).astype(np.float32)
    return np.spacing(a).astype(np.float64)


@pytest.mark.parametrize("op", list(OPS))
def test_accuracy(op, ctx):
    x = _inputs(op)
    (y,) = _compile(_unary_src(op), ctx)(x)
    with np.errstate(all="ignore"):
        ref = OPS[op][0](x.astype(np.float64))
        ref32 = ref.astype(np.float32)
    y64 = y.astype(np.float64)

    nan_wrong = np.isnan(y) != np.isnan(ref32)
    assert not nan_wrong.any(), (op, x[nan_wrong][:5], y[nan_wrong][:5])
    inf_wrong = (np.isinf(y) | np.isinf(ref32)) & (y != ref32)
    assert not inf_wrong.any(), (op, x[inf_wrong][:5], y[inf_wrong][:5])
    zero = (ref32 == 0) & (y == 0)
    sign_wrong = zero & (np.signbit(y) != np.signbit(ref32))
    assert not sign_wrong.any(), (op, "sign of zero", x[sign_wrong][:5])

    fin = np.isfinite(ref32) & np.isfinite(y)
    ulp = np.abs(y64[fin] - ref[fin]) / _ulp(ref[fin])
    k = np.argmax(ulp)
    assert ulp[k] <= MAX_ULP, (op, float(x[fin][k]), float(y[fin][k]), ref[fin][k], ulp[k])
    normal = fin & (np.abs(ref32) >= F32_MIN)
    rel = np.abs(y64[normal] - ref[normal]) / np.abs(ref[normal])
    k = np.argmax(rel)
    assert rel[k] <= MAX_REL, (op, float(x[normal][k]), float(y[normal][k]), rel[k])


def test_exp_special_values(ctx):
    x = np.array([0.0, -0.0, math.inf, -math.inf, math.nan, 88.72283172607422,
                  88.72283935546875, -103.97, -103.98, 1.0] + [0.0] * 6,
                 np.float32)
    (y,) = _compile(_unary_src("exp", 16), ctx)(x)
    assert y[0] == 1 and y[1] == 1 and y[2] == math.inf and y[3] == 0
    assert math.isnan(y[4])
    assert np.isfinite(y[5]) and y[6] == math.inf  # last finite, first overflow
    assert y[7] == np.float32(2.0 ** -149) and y[8] == 0  # smallest subnormal, then 0
    assert abs(float(y[9]) - math.e) <= 2.4e-7


def test_no_libm_call_and_loop_vectorises(ctx):
    ops = list(OPS)
    body = "\n".join(f"  %r{i} = math.{op} %a : tensor<64xf32>" for i, op in enumerate(ops))
    rets = ", ".join(f"%r{i}" for i in range(len(ops)))
    types = ", ".join(["tensor<64xf32>"] * len(ops))
    src = (f"func.func @f(%a: tensor<64xf32>) -> ({types}) {{\n{body}\n"
           f"  return {rets} : {types}\n}}")
    _, llvm_ir = cpu.lower_to_llvm_ir(src, "f", ctx)
    calls = set(re.findall(r"call [^@]*@([\w.]+)", llvm_ir))
    assert not {c for c in calls if re.search(r"(exp|log|tanh|sin|cos|erf)", c)}, calls

    import llvmlite.binding as llvm
    tm = host_target_machine()
    mod = llvm.parse_assembly(llvm_ir)
    mod.triple, mod.data_layout = tm.triple, str(tm.target_data)
    optimize(mod, tm)
    assert re.search(r"<\d+ x float>", str(mod)), "the pointwise loop was not vectorised"


def test_sin_cos_call_out_for_huge_arguments_and_still_vectorise(ctx):
    """A loop of scalar sin/cos vectorises with the huge-argument path as a
    masked vector call, and lanes of one vector mix both paths correctly."""
    src = ("func.func @f(%a: tensor<4099xf32>) -> (tensor<4099xf32>, tensor<4099xf32>) {\n"
           "  %0 = math.sin %a : tensor<4099xf32>\n  %1 = math.cos %a : tensor<4099xf32>\n"
           "  return %0, %1 : tensor<4099xf32>, tensor<4099xf32>\n}")
    _, llvm_ir = cpu.lower_to_llvm_ir(src, "f", ctx)
    import llvmlite.binding as llvm
    tm = host_target_machine()
    mod = llvm.parse_assembly(llvm_ir)
    mod.triple, mod.data_layout = tm.triple, str(tm.target_data)
    optimize(mod, tm)
    text = str(mod)
    entry = text[text.index("@__ferrule_f("):]
    entry = entry[:entry.index("\n}\n")]
    assert re.search(r"call <\d+ x float> @__ferrule_trig_big_0_v\d+\(", entry), entry[:2000]
    assert re.search(r"call <\d+ x float> @__ferrule_trig_big_1_v\d+\(", entry)

    x = np.random.default_rng(1).uniform(-3, 3, 4099).astype(np.float32)
    for i, v in [(0, 1e30), (5, -130.0), (17, 120.0), (18, -119.99), (4095, 3e38),
                 (4098, -1e6), (33, np.inf), (34, np.nan)]:
        x[i] = v
    fn = _compile(src, ctx)
    s, c = fn(x)
    with np.errstate(all="ignore"):
        for got, ref in ((s, np.sin(x.astype(np.float64))), (c, np.cos(x.astype(np.float64)))):
            fin = np.isfinite(x)
            assert np.isnan(got[~fin]).all()
            ulp = np.abs(got[fin] - ref[fin]) / _ulp(ref[fin])
            assert ulp.max() <= 1.0, (x[fin][np.argmax(ulp)], ulp.max())


def test_f64_is_left_to_libm(ctx):
    src = ("func.func @f(%a: tensor<8xf64>) -> tensor<8xf64> {\n"
           "  %0 = math.exp %a : tensor<8xf64>\n  return %0 : tensor<8xf64>\n}")
    _, llvm_ir = cpu.lower_to_llvm_ir(src, "f", ctx)
    assert "@llvm.exp.f64" in llvm_ir or "@exp(" in llvm_ir


def test_pass_in_cpu_pipeline():
    """expand-math runs on loops, before anything lowers math to libm calls."""
    p = pipelines.CPU_LOWERING
    assert p.index("func.func(convert-linalg-to-loops)") < p.index("expand-math") \
        < p.index("math-to-libm") < p.index("convert-math-to-llvm")


IR = """
func.func @g(%m: memref<16xf32>, %d: f64, %t: tensor<4xf32>, %v: vector<4xf32>)
    -> (f64, tensor<4xf32>, vector<4xf32>, f32) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  scf.for %i = %c0 to %c16 step %c1 {
    %x = memref.load %m[%i] : memref<16xf32>
    %e = math.exp %x : f32 loc("model.py":3:4)
    memref.store %e, %m[%i] : memref<16xf32>
  }
  %x0 = memref.load %m[%c0] : memref<16xf32>
  %l = math.log1p %x0 : f32 loc("model.py":5:8)
  %0 = math.exp %d : f64
  %1 = math.exp %t : tensor<4xf32>
  %2 = math.tanh %v : vector<4xf32> loc("model.py":7:1)
  %3 = math.sqrt %l : f32
  return %0, %1, %2, %3 : f64, tensor<4xf32>, vector<4xf32>, f32
}
"""


def test_ir_contract(ctx):
    with ctx, ir.Location.unknown():
        m = ir.Module.parse(IR)
        run_pipeline(m, "expand-math")
        assert m.operation.verify()
        ops = []
        m.operation.walk(lambda o: ops.append(o.operation) or ir.WalkResult.ADVANCE)
    names = [o.name for o in ops]
    assert "scf.for" in names
    left = [(o.name, str(o.results[0].type)) for o in ops
            if o.name.startswith("math.") and o.name not in ("math.absf", "math.copysign")]
    assert sorted(left) == [("math.exp", "f64"), ("math.exp", "tensor<4xf32>"),
                            ("math.sqrt", "f32")]
    for line in (3, 5, 7):  # the expansion carries the replaced op's location
        carried = [o for o in ops if f'"model.py":{line}:' in str(o.location)]
        assert len(carried) > 10, line
    loop = next(o for o in ops if o.name == "scf.for")
    loop_ops = []
    loop.walk(lambda o: loop_ops.append(o.operation) or ir.WalkResult.ADVANCE)
    assert any(o.name == "arith.shli" for o in loop_ops)  # exp expanded in place
