"""Compile time of the char-LSTM training step: cold, warm disk cache, unrolled.

Each measurement runs in a fresh process with its own cache directory:

  cold            jit(value_and_grad) of the step with ferrule.scan, empty
                  disk cache: trace, AD passes, lowering, LLVM (timings by stage)
  warm            the same program in new processes, disk cache filled by
                  ``cold``: loading only (found by source key, no trace);
                  "first call" is the first call's time, "beyond a call"
                  that minus a steady call (the median process of
                  ``--warm-repeat``)
  unrolled        the same step with the LSTM unrolled over T in Python
                  (no scan), cold

The step is bench/char_lstm.py's (T=32, B=32, E=64, H=256, V=96, float32),
with one-hot inputs (``onehot @ emb``) and logsumexp cross-entropy, so it
runs on any ferrule version.

    python bench/compile_time.py [--T 32] [--skip-unrolled] [--warm-repeat 3]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

# The step's problem and loss, for the child processes here and in
# bench/compile_stages.py (which imports it): needs numpy as np, ferrule,
# fnp, logsumexp, sigmoid and T, B, E, H, V, unroll in scope.
PROGRAM = r"""
rng = np.random.default_rng(0)
f32 = np.float32
params = [rng.standard_normal((V, E)).astype(f32) * 0.3,
          (rng.standard_normal((E, 4 * H)) / np.sqrt(E)).astype(f32),
          (rng.standard_normal((H, 4 * H)) / np.sqrt(H)).astype(f32), np.zeros(4 * H, f32),
          (rng.standard_normal((H, V)) / np.sqrt(H)).astype(f32), np.zeros(V, f32)]
tok = rng.integers(0, V, (T + 1, B))
eye = np.eye(V, dtype=f32)
xs, ys = eye[tok[:-1]], eye[tok[1:]]

def loss(emb, Wx, Wh, b, Wy, by, xs, ys):
    gx = (xs @ emb) @ Wx + b
    def step(hc, g):
        h, c = hc
        i, f, gg, o = fnp.split(g + h @ Wh, 4, axis=1)
        c2 = sigmoid(f) * c + sigmoid(i) * fnp.tanh(gg)
        h2 = sigmoid(o) * fnp.tanh(c2)
        return (h2, c2), h2
    h0 = fnp.zeros((B, H), fnp.float32)
    if unroll:
        hc, hs = (h0, h0), []
        for t in range(T):
            hc, y = step(hc, gx[t])
            hs.append(y)
        hs = fnp.stack(hs)
    else:
        _, hs = ferrule.scan(step, (h0, h0), gx)
    logits = hs @ Wy + by
    return fnp.mean(logsumexp(logits, axis=-1) - fnp.sum(logits * ys, axis=-1))
"""

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import ferrule, ferrule.numpy as fnp
from ferrule.nn import logsumexp, sigmoid
T, B, E, H, V, unroll = json.loads(sys.argv[1])
""" + PROGRAM + r"""
f = ferrule.jit(ferrule.value_and_grad(loss, argnums=tuple(range(6))))
t1 = time.perf_counter()
f(*params, xs, ys)
first = time.perf_counter() - t1
steps = []
for _ in range(5):
    t = time.perf_counter(); f(*params, xs, ys); steps.append(time.perf_counter() - t)
low = f.lower(*params, xs, ys)
lines = low.as_text("llvm-ir").count("\n") if "--lines" in sys.argv else None
print(json.dumps({"import_s": t1 - t0, "first_s": first, "step_s": float(np.median(steps)),
                  "timings": low.timings, "llvm_ir_lines": lines}))
"""


def child(cache, T, B, E, H, V, unroll, lines=False):
    env = dict(os.environ, FERRULE_CACHE_DIR=cache)
    args = [sys.executable, "-c", CHILD, json.dumps([T, B, E, H, V, unroll])]
    r = subprocess.run(args + (["--lines"] if lines else []), env=env, capture_output=True,
                       text=True, timeout=3600)
    if r.returncode != 0:
        raise SystemExit(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for k, v in (("T", 32), ("B", 32), ("E", 64), ("H", 256), ("V", 96)):
        p.add_argument(f"--{k}", type=int, default=v)
    p.add_argument("--skip-unrolled", action="store_true", help="only the scan version")
    p.add_argument("--warm-repeat", type=int, default=3,
                   help="warm processes (the median one is shown)")
    a = p.parse_args()
    shape = (a.T, a.B, a.E, a.H, a.V)
    print(f"char-LSTM training step T={a.T} B={a.B} E={a.E} H={a.H} V={a.V}, float32, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as d:
        cold = child(os.path.join(d, "scan"), *shape, False, lines=True)
        warms = [child(os.path.join(d, "scan"), *shape, False) for _ in range(a.warm_repeat)]
        # The median process by its first call beyond a steady call.
        warms.sort(key=lambda r: r["first_s"] - r["step_s"])
        warm = warms[len(warms) // 2]
        unrolled = None if a.skip_unrolled else child(os.path.join(d, "unrolled"), *shape,
                                                      True, lines=True)

    def stages(r):
        return ", ".join(f"{k} {v:.2f}" for k, v in r["timings"].items())
    print(f"cold (scan)      first call {cold['first_s']:6.2f} s  ({stages(cold)}; "
          f"{cold['llvm_ir_lines']} lines of LLVM IR); step {1e3 * cold['step_s']:.1f} ms")
    print(f"warm disk cache  (median of {len(warms)} processes) "
          f"first call {1e3 * warm['first_s']:6.1f} ms, steady call "
          f"{1e3 * warm['step_s']:.1f} ms: {1e3 * (warm['first_s'] - warm['step_s']):.1f} ms "
          f"beyond a call ({stages(warm)})")
    if unrolled:
        print(f"cold (unrolled)  first call {unrolled['first_s']:6.2f} s  ({stages(unrolled)}; "
              f"{unrolled['llvm_ir_lines']} lines of LLVM IR); step "
              f"{1e3 * unrolled['step_s']:.1f} ms")
        print(f"unrolled / scan compile: {unrolled['first_s'] / cold['first_s']:.1f}x")


if __name__ == "__main__":
    main()
