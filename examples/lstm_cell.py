"""ferrule's main job on the motivating case: an LSTM cell's gate math,
differentiated by compiler passes into ONE fused loop nest.

1. traces forward+backward (``ferrule.vjp`` under ``ferrule.jit``) and shows
   the IR before and after the AD passes;
2. checks outputs and gradients against a float64 numpy implementation;
3. times it next to a numpy tape (unfused reverse mode that stores every
   intermediate), in the same run.
"""

import time

import numpy as np

import ferrule
import ferrule.numpy as fnp
from ferrule.nn import sigmoid


# The cell is written here rather than imported from tests/models.py (which
# the tests and benchmarks share): this is the README's runnable example, and
# it must read on its own.
def lstm_pointwise(G, c):
    """G: pre-activation gates (B, 4H); c: cell state (B, H)."""
    i, f, g, o = fnp.split(G, 4, axis=1)
    c2 = sigmoid(f) * c + sigmoid(i) * fnp.tanh(g)
    return sigmoid(o) * fnp.tanh(c2), c2


def forward_backward(G, c, dh, dc):
    (h2, c2), pullback = ferrule.vjp(lstm_pointwise, G, c)
    dG, dc_prev = pullback((dh, dc))
    return h2, c2, dG, dc_prev


def numpy_tape(G, c, dh, dc):
    """Reference and peer: reverse mode op by op, intermediates stored."""
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))
    i, f, g, o = np.split(G, 4, axis=1)
    si, sf, tg, so = sig(i), sig(f), np.tanh(g), sig(o)
    c2 = sf * c + si * tg
    tc = np.tanh(c2)
    dc2 = dc + dh * so * (1 - tc * tc)
    dG = np.concatenate([dc2 * tg * si * (1 - si), dc2 * c * sf * (1 - sf),
                         dc2 * si * (1 - tg * tg), dh * tc * so * (1 - so)], axis=1)
    return so * tc, c2, dG, dc2 * sf


def median_ms(fn, repeat=10):
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1e3 * float(np.median(ts))


def main():
    step = ferrule.jit(forward_backward)
    small = [np.ones(s, np.float32) for s in [(2, 8), (2, 2), (2, 2), (2, 2)]]
    lowered = step.lower(*small)
    print("== traced (B=2, H=2): the tracer records; an ad.vjp op asks for the derivative ==")
    print(lowered.as_text("traced").split("#loc1 =")[0].replace(" loc(unknown)", ""))
    ad = lowered.as_text("ad")
    print("== after the AD passes: forward AND backward in ONE pointwise region ==")
    print(ad)
    print(lowered.explain(), "\n")
    assert ad.count("linalg.generic") == 1

    B, H = 1024, 2048
    rng = np.random.default_rng(0)
    G = rng.standard_normal((B, 4 * H), dtype=np.float32)
    c, dh, dc = (rng.standard_normal((B, H), dtype=np.float32) for _ in range(3))
    low = step.lower(G, c, dh, dc)
    low.compile()
    t = low.timings
    print(f"compile at B={B}, H={H}: trace {t['trace']*1e3:.1f} ms, AD passes "
          f"{t['ad_passes']*1e3:.1f} ms, lowering {t['lowering']*1e3:.1f} ms, "
          f"LLVM codegen {t['codegen']*1e3:.1f} ms")

    got = step(G, c, dh, dc)
    want = numpy_tape(*(a.astype(np.float64) for a in (G, c, dh, dc)))
    for name, a, b in zip(["h'", "c'", "dG", "dc"], got, want):
        err = float(np.abs(a - b).max())
        print(f"max |ferrule - numpy float64| for {name:3}: {err:.1e}")
        assert err < 1e-5, (name, err)

    out = tuple(np.empty_like(a) for a in got)
    t_f = median_ms(lambda: step(G, c, dh, dc, out=out))
    t_n = median_ms(lambda: numpy_tape(G, c, dh, dc))
    kept = 6 * B * H * 4
    print(f"forward+backward: ferrule {t_f:.2f} ms, numpy tape {t_n:.2f} ms "
          f"({t_n / t_f:.1f}x); kept between the sweeps: ferrule 0 B, "
          f"tape {kept / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
