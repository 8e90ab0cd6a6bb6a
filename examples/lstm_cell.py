"""ferrule's main job on the motivating case: an LSTM cell's pointwise gates.

Traces the gate math with ``ferrule.jit``, shows the IR at each stage, runs
the compiled code, checks it against numpy, and prints compile and run times.
"""

import time

import numpy as np

import ferrule
import ferrule.numpy as fnp
from ferrule.nn import sigmoid


def lstm_pointwise(G, c):
    """G: pre-activation gates (B, 4H); c: cell state (B, H)."""
    i, f, g, o = fnp.split(G, 4, axis=1)
    c2 = sigmoid(f) * c + sigmoid(i) * fnp.tanh(g)
    h2 = sigmoid(o) * fnp.tanh(c2)
    return h2, c2


def numpy_reference(G, c):
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))
    i, f, g, o = np.split(G.astype(np.float64), 4, axis=1)
    c2 = sig(f) * c + sig(i) * np.tanh(g)
    return sig(o) * np.tanh(c2), c2


def median_time(fn, repeat=20):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main():
    B, H = 1024, 2048
    rng = np.random.default_rng(0)
    G = rng.standard_normal((B, 4 * H), dtype=np.float32)
    c = rng.standard_normal((B, H), dtype=np.float32)

    step = ferrule.jit(lstm_pointwise)
    lowered = step.lower(G[:2, :8], c[:2, :2])
    print("== traced IR (B=2, H=2) ==")
    print(lowered.as_text("traced"))
    print("== after the AD/fusion passes: ONE pointwise region ==")
    print(lowered.as_text("ad"))

    low = step.lower(G, c)
    low.compile()
    t = low.timings
    print(f"compile at B={B}, H={H}: trace {t['trace']*1e3:.1f} ms, passes "
          f"{t['ad_passes']*1e3:.1f} ms, lowering {t['lowering']*1e3:.1f} ms, "
          f"codegen {t['codegen']*1e3:.1f} ms")

    h2, c2 = step(G, c)
    rh, rc = numpy_reference(G, c)
    err = max(np.abs(h2 - rh).max(), np.abs(c2 - rc).max())
    print(f"max |ferrule - numpy(float64)| = {err:.2e}")
    assert err < 1e-5, err

    out = (np.empty_like(c), np.empty_like(c))
    t_f = median_time(lambda: step(G, c, out=out))
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))

    def np_step():
        i, f, g, o = np.split(G, 4, axis=1)
        c2 = sig(f) * c + sig(i) * np.tanh(g)
        return sig(o) * np.tanh(c2), c2

    t_n = median_time(np_step)
    print(f"run time: ferrule {t_f*1e3:.2f} ms, numpy {t_n*1e3:.2f} ms "
          f"(numpy/ferrule = {t_n/t_f:.2f}x)")


if __name__ == "__main__":
    main()
