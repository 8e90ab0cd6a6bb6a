"""Cold compile of the char-LSTM training step by stage: scan against unrolled.

The step of bench/compile_time.py (T=32 B=32 E=64 H=256 V=96, value and
gradients of the six weights), with ``ferrule.scan`` and unrolled over T in
Python, each with and without ``outline-repeated-loops`` (the pass that
compiles a repeated loop nest once). Each configuration runs in a fresh
process, no disk cache; the stages:

  trace          Python -> traced MLIR
  ad             the AD pipeline (differentiate, fuse)
  bufferize      tensors -> buffers (runtime/pipelines.py BUFFERIZE)
  loops          buffers -> loops (tile-matmul, linalg -> loops)
  outline        outline-repeated-loops (when on)
  to-llvm        loops -> the LLVM dialect
  translate      the LLVM dialect -> LLVM IR text
  llvm-opt       LLVM's O2/O3 pipeline
  llvm-codegen   parsing, instruction selection, object emission, loading

    python bench/compile_stages.py [--T 32] [--configs scan,unrolled,unrolled-no-outline]
"""

import argparse
import json
import os
import subprocess
import sys
import time

from compile_time import PROGRAM    # the step's problem and loss (bench/ is on the path)

CONFIGS = ("scan", "scan-no-outline", "unrolled", "unrolled-no-outline")

CHILD = r"""
import json, sys, time
import numpy as np
import ferrule, ferrule.numpy as fnp
from ferrule.nn import logsumexp, sigmoid
from ferrule.runtime import pipelines
from ferrule.runtime.cpu import codegen, compile as cc
from ferrule.runtime.cpu.function import CpuFunction
from ferrule.runtime.signature import function_signature
from ferrule.dialect import make_context
from mlir import ir
T, B, E, H, V = 32, 32, 64, 256, 96
T = int(sys.argv[2])
unroll, outline = sys.argv[1].startswith("unrolled"), "no-outline" not in sys.argv[1]
if not outline:
    loops = pipelines.cpu_loops
    pipelines.cpu_loops = lambda *a, **k: [p for p in loops(*a, **k)
                                           if p != "outline-repeated-loops"]
""" + PROGRAM + r"""
stages = {}
low = ferrule.jit(ferrule.value_and_grad(loss, argnums=tuple(range(6)))).lower(*params, xs, ys)
stages["trace"] = low.timings["trace"]
low.as_text("ad")
stages["ad"] = low.timings["ad_passes"]
n_buf = len(pipelines.BUFFERIZE)
marks = []
def on_stage(name, module):
    marks.append((name, time.perf_counter()))
t0 = time.perf_counter()
_, ll = cc.lower_to_llvm_ir(low.as_text("ad"), low.name, make_context(), on_stage=on_stage,
                            dialect_text=False)
t_end = time.perf_counter()
prev = t0
for name, t in marks:
    key = ("outline" if name == "outline-repeated-loops" else
           "to-llvm" if "reconcile-unrealized-casts" in name or "convert-" in name
           or name in ("expand-math", "math-to-libm") else
           "loops" if name in ("tile-matmul", "copy-to-linalg") or "linalg-to-loops" in name
           else "bufferize")
    stages[key] = stages.get(key, 0.0) + t - prev
    prev = t
stages["translate"] = t_end - prev
opt = [0.0]
optimize = codegen.optimize
def timed(*a, **k):
    t = time.perf_counter(); optimize(*a, **k); opt[0] += time.perf_counter() - t
codegen.optimize = timed
with make_context():
    sig = function_signature(ir.Module.parse(low.as_text("ad")), low.name)
t = time.perf_counter()
fn = CpuFunction(ll, low.name, sig.inputs, sig.outputs)
stages["llvm-opt"] = opt[0]
stages["llvm-codegen"] = time.perf_counter() - t - opt[0]
out = fn(*params, xs, ys)
steps = []
for _ in range(7):
    t = time.perf_counter(); fn(*params, xs, ys); steps.append(time.perf_counter() - t)
print(json.dumps({"stages": stages, "total": sum(stages.values()),
                  "llvm_ir_lines": ll.count("\n"), "step_ms": 1e3 * float(np.median(steps)),
                  "loss": float(out[0])}))
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--T", type=int, default=32)
    p.add_argument("--configs", default=",".join(CONFIGS))
    a = p.parse_args()
    env = dict(os.environ, FERRULE_CACHE_DIR="")
    print(f"char-LSTM training step T={a.T} B=32 E=64 H=256 V=96; {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}; cold, no disk cache; seconds")
    names = ("trace", "ad", "bufferize", "loops", "outline", "to-llvm", "translate",
             "llvm-opt", "llvm-codegen")
    print(f"{'config':22}" + "".join(f"{n:>13}" for n in names)
          + f"{'total':>9}{'IR lines':>10}{'step ms':>9}")
    for config in a.configs.split(","):
        r = subprocess.run([sys.executable, "-c", CHILD, config, str(a.T)], env=env,
                           capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            raise SystemExit(r.stderr[-3000:])
        res = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"{config:22}" + "".join(f"{res['stages'].get(n, 0.0):13.2f}" for n in names)
              + f"{res['total']:9.2f}{res['llvm_ir_lines']:10d}{res['step_ms']:9.1f}"
              + f"   loss {res['loss']:.7g}")
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
