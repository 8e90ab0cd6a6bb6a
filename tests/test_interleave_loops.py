"""interleave-loops + forward-loop-annotations in the CPU pipeline.

The passes' IR contracts are in tests/lit/interleave-loops.mlir and
tests/lit/forward-loop-annotations.mlir; here: they run where they must,
the annotation reaches LLVM IR for a fused math loop (and not for a matmul
micro-kernel), and results are unchanged by it.
"""

import re

import numpy as np

import ferrule
import ferrule.numpy as fnp
from ferrule.runtime import pipelines

INTERLEAVE = re.compile(r'!\{!"llvm\.loop\.interleave\.count", i32 (\d+)\}')


def test_pass_order():
    p = pipelines.CPU_LOWERING
    loops = p.index("func.func(convert-linalg-to-loops)")
    inter = next(i for i, s in enumerate(p) if s.startswith("interleave-loops"))
    assert loops < inter < p.index("expand-math")
    assert p.index("convert-cf-to-llvm") < p.index("forward-loop-annotations")


def test_math_loop_is_interleaved_matmul_is_not():
    x = np.ones((64, 256), np.float32)
    text = ferrule.jit(lambda x: fnp.exp(fnp.tanh(x))).lower(x).as_text("llvm-ir")
    assert INTERLEAVE.findall(text) == ["2"]
    w = np.ones((256, 256), np.float32)
    text = ferrule.jit(lambda x, w: x @ w).lower(x, w).as_text("llvm-ir")
    assert not INTERLEAVE.findall(text)


def test_results_match_numpy():
    rng = np.random.default_rng(0)
    for shape in [(3, 5), (64, 257), (2, 1031)]:      # remainders of the interleaved loop
        x = rng.standard_normal(shape).astype(np.float32)
        got = ferrule.jit(lambda x: fnp.sin(fnp.exp(fnp.tanh(x))) / (1.0 + x * x))(x)
        xd = x.astype(np.float64)
        ref = np.sin(np.exp(np.tanh(xd))) / (1.0 + xd * xd)
        np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-6)
