"""outline-repeated-loops (passes/outline_repeated_loops.py): a step unrolled
in Python compiles its kernels once, and computes exactly what it did
before — checked on the unrolled LSTM training step, and on IR: the pass's
output verifies.
"""

from pathlib import Path

import numpy as np
from mlir import ir

import ferrule
import ferrule.numpy as fnp
from ferrule.dialect import make_context
from ferrule.nn import logsumexp, sigmoid
from ferrule.passes import run_pipeline
from ferrule.runtime import pipelines

LIT = Path(__file__).parent / "lit" / "outline-repeated-loops.mlir"


def _unrolled_lstm(T=5, B=4, E=3, H=8, V=6):
    rng = np.random.default_rng(0)
    f32 = np.float32
    args = [rng.standard_normal((V, E)).astype(f32), rng.standard_normal((E, 4 * H)).astype(f32),
            rng.standard_normal((H, 4 * H)).astype(f32) / 3, rng.standard_normal(4 * H).astype(f32),
            rng.standard_normal((H, V)).astype(f32), np.zeros(V, f32)]
    eye = np.eye(V, dtype=f32)
    tok = rng.integers(0, V, (T + 1, B))
    args += [eye[tok[:-1]], eye[tok[1:]]]

    def loss(emb, Wx, Wh, b, Wy, by, xs, ys):
        gx = (xs @ emb) @ Wx + b
        h = c = fnp.zeros((B, H), fnp.float32)
        hs = []
        for t in range(T):                        # unrolled: T copies of the step
            i, f, g, o = fnp.split(gx[t] + h @ Wh, 4, axis=1)
            c = sigmoid(f) * c + sigmoid(i) * fnp.tanh(g)
            h = sigmoid(o) * fnp.tanh(c)
            hs.append(h)
        logits = fnp.stack(hs) @ Wy + by
        return fnp.mean(logsumexp(logits, axis=-1) - fnp.sum(logits * ys, axis=-1))
    return ferrule.value_and_grad(loss, argnums=tuple(range(6))), args


def _without_the_pass(monkeypatch):
    loops = pipelines.cpu_loops
    monkeypatch.setattr(pipelines, "cpu_loops", lambda *a, **k: [
        p for p in loops(*a, **k) if p != "outline-repeated-loops"])


def test_an_unrolled_step_computes_the_same_with_its_kernels_outlined(monkeypatch):
    monkeypatch.setenv("FERRULE_CACHE_DIR", "")
    f, args = _unrolled_lstm()
    low = ferrule.jit(f).lower(*args)
    outlined = low.compile()(*[np.asarray(a) for a in args])
    llvm_ir = low.as_text("llvm-ir")
    assert "noinline" in llvm_ir and llvm_ir.count("call void @__ferrule_loss_loop") >= 5
    _without_the_pass(monkeypatch)
    low2 = ferrule.jit(f).lower(*args)
    inline = low2.compile()(*[np.asarray(a) for a in args])
    assert "loss_loop" not in low2.as_text("llvm-ir")
    for a, b in zip(outlined, inline):       # the same ops in the same order: bitwise
        np.testing.assert_array_equal(a, b)


def test_the_pass_output_verifies():
    text = "\n".join(l for l in LIT.read_text().splitlines() if not l.startswith("//"))
    with make_context(), ir.Location.unknown():
        module = ir.Module.parse(text)
        run_pipeline(module, ["outline-repeated-loops"])
        module.operation.verify()
        out = str(module)
    assert out.count("call @caller_loop0") == 2 and "caller_loop1" not in out


def test_it_runs_in_the_cpu_pipeline_after_the_loops_are_built():
    loops = pipelines.cpu_loops(64)
    assert loops.index("outline-repeated-loops") > loops.index("func.func(convert-linalg-to-loops)")
    assert "outline-repeated-loops" in pipelines.cpu_lowering(64)


def test_the_compile_stage_benchmark_runs():
    """bench/compile_stages.py (docs/performance.md), cut to T=2."""
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / "bench" / "compile_stages.py"), "--T", "2",
                        "--configs", "unrolled,unrolled-no-outline"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    losses = [l.split("loss ")[1] for l in r.stdout.splitlines() if "loss " in l]
    assert len(losses) == 2 and losses[0] == losses[1]
