"""The warm-cache first call of the char-LSTM training step, by part.

The step is the example's (examples/char_lstm.py ``train_step``: embedding,
LSTM with ``ferrule.scan``, cross-entropy, value_and_grad, Adam), at T=32
B=32 E=64 H=256 V=96. One process fills a fresh disk cache
(``FERRULE_CACHE_DIR``); then ``--repeat`` fresh processes each time

  import         ``import ferrule`` (and the example's module)
  first call     the first call of the jitted step, from its start to its
                 result: what a warm disk cache leaves to do
  steady call    the median of 5 calls after it
  beyond         first call minus steady call: the part the cache target
                 (issue 11: <= 50 ms) is about

and the first call's parts as ``Lowered.timings`` reports them. Medians
over the processes are printed, with the load.

    python bench/warm_start.py [--repeat 5] [--profile]

``--profile`` also runs cProfile over one warm first call and prints its
top entries (cumulative time).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import ferrule
sys.path.insert(0, sys.argv[1] + "/examples")
import char_lstm as ex
t_import = time.perf_counter() - t0
T, B, E, H, V = 32, 32, 64, 256, 96
params = ex.init_params(V, E, H)
m = {k: np.zeros_like(p) for k, p in params.items()}
v = {k: np.zeros_like(p) for k, p in params.items()}
rng = np.random.default_rng(0)
xs, ys = (rng.integers(0, V, (T, B)).astype(np.int32) for _ in range(2))
h = c = np.zeros((B, H), np.float32)
step = ferrule.jit(ex.train_step)
args = (params, m, v, xs, ys, h, c, 3e-3, 1.0)
if sys.argv[2] == "profile":
    import cProfile, pstats, io
    pr = cProfile.Profile(); pr.enable(); step(*args); pr.disable()
    s = io.StringIO(); pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(35)
    print(s.getvalue(), file=sys.stderr)
    print(json.dumps({}))
    raise SystemExit
t1 = time.perf_counter()
out = step(*args)
first = time.perf_counter() - t1
steady = []
for _ in range(5):
    t = time.perf_counter(); step(*args); steady.append(time.perf_counter() - t)
low = step.lower(*args)
print(json.dumps({"import_s": t_import, "first_s": first, "steady_s": float(np.median(steady)),
                  "timings": low.timings, "loss": float(out[0]),
                  "mlir_imported": "mlir.ir" in sys.modules,
                  "traced": step.trace_count}))
"""


def child(cache: str, mode: str = "time") -> dict:
    env = dict(os.environ, FERRULE_CACHE_DIR=cache)
    env.pop("PYTHONPATH", None)
    r = subprocess.run([sys.executable, "-c", CHILD, ROOT, mode], env=env, capture_output=True,
                       text=True, timeout=1200)
    if r.returncode != 0:
        raise SystemExit(r.stderr[-3000:])
    if mode == "profile":
        print(r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5, help="warm processes (medians)")
    p.add_argument("--profile", action="store_true", help="cProfile one warm first call")
    a = p.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        cold = child(d)
        runs = [child(d) for _ in range(a.repeat)]
        if a.profile:
            child(d, "profile")
    med = lambda k: 1e3 * float(np.median([r[k] for r in runs]))
    beyond = 1e3 * float(np.median([r["first_s"] - r["steady_s"] for r in runs]))
    parts = sorted({k for r in runs for k in r["timings"]})
    print(f"char-LSTM train_step (value_and_grad + Adam) T=32 B=32 E=64 H=256 V=96; "
          f"{os.cpu_count()} CPUs, load {load0:.1f} -> {os.getloadavg()[0]:.1f}; "
          f"medians of {len(runs)} warm processes")
    print(f"cold first call {cold['first_s']:.2f} s")
    print(f"warm: import {med('import_s'):.0f} ms, first call {med('first_s'):.1f} ms, "
          f"steady call {med('steady_s'):.1f} ms, beyond a steady call {beyond:.1f} ms")
    print("warm first call's parts: " + ", ".join(
        f"{k} {1e3 * float(np.median([r['timings'].get(k, 0.0) for r in runs])):.1f} ms"
        for k in parts))
    print(f"traced in the warm process: {runs[0]['traced']} time(s); MLIR bindings imported: "
          f"{runs[0]['mlir_imported']}; same loss as cold: "
          f"{all(r['loss'] == cold['loss'] for r in runs)}")


if __name__ == "__main__":
    main()
