"""Forward+backward of the LSTM and GRU cells' pointwise parts: ferrule vs a
numpy tape (unfused reverse mode, every intermediate stored), in one run.

Prints median times, the ratio, and the bytes each keeps between the forward
and the backward sweep. Not a test: numbers depend on the machine.

    python bench/pointwise_ad.py [--sizes 256x1024,1024x2048] [--repeat 10]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import ferrule

# The models, for ferrule: the cells the test suites check (tests/models.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from models import gru_fb, lstm_fb  # noqa: E402


# -- the same, as a numpy tape ---------------------------------------------------------

def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def lstm_tape(G, c, dh, dc):
    i, f, g, o = np.split(G, 4, axis=1)
    si, sf, tg, so = _sig(i), _sig(f), np.tanh(g), _sig(o)
    c2 = sf * c + si * tg
    tc = np.tanh(c2)
    h2 = so * tc
    tape = (si, sf, tg, so, tc)  # kept for the backward sweep
    dso = dh * tc
    dc2 = dc + dh * so * (1 - tc * tc)
    dsf, dsi, dtg = dc2 * c, dc2 * tg, dc2 * si
    dG = np.concatenate([dsi * si * (1 - si), dsf * sf * (1 - sf), dtg * (1 - tg * tg),
                         dso * so * (1 - so)], axis=1)
    return (h2, c2, dG, dc2 * sf), sum(a.nbytes for a in tape) + c2.nbytes


def gru_tape(X, h, dh):
    r, z, n = np.split(X, 3, axis=1)
    sr, sz = _sig(r), _sig(z)
    pre = n + sr * h
    tn = np.tanh(pre)
    h2 = (1 - sz) * tn + sz * h
    tape = (sr, sz, tn)
    dtn = dh * (1 - sz)
    dsz = dh * (h - tn)
    dpre = dtn * (1 - tn * tn)
    dsr = dpre * h
    dX = np.concatenate([dsr * sr * (1 - sr), dsz * sz * (1 - sz), dpre], axis=1)
    dh_prev = dh * sz + dpre * sr
    return (h2, dX, dh_prev), sum(a.nbytes for a in tape)


def median_ms(fn, repeat):
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1e3 * float(np.median(ts))


def run(B, H, repeat, dtype=np.float32):
    rng = np.random.default_rng(0)
    rows = []
    # LSTM
    G = rng.standard_normal((B, 4 * H), dtype=dtype)
    c, dh, dc = (rng.standard_normal((B, H), dtype=dtype) for _ in range(3))
    f = ferrule.jit(lstm_fb)
    outs = f(G, c, dh, dc)
    ref, kept = lstm_tape(G, c, dh, dc)
    err = max(float(np.abs(a - b).max()) for a, b in zip(outs, ref))
    buf = tuple(np.empty_like(o) for o in outs)
    t_f = median_ms(lambda: f(G, c, dh, dc, out=buf), repeat)
    t_n = median_ms(lambda: lstm_tape(G, c, dh, dc), repeat)
    rows.append(("lstm", B, H, t_f, t_n, kept, err))
    # GRU
    X = rng.standard_normal((B, 3 * H), dtype=dtype)
    h = rng.standard_normal((B, H), dtype=dtype)
    g = ferrule.jit(gru_fb)
    outs = g(X, h, dh)
    ref, kept = gru_tape(X, h, dh)
    err = max(float(np.abs(a - b).max()) for a, b in zip(outs, ref))
    buf = tuple(np.empty_like(o) for o in outs)
    t_f = median_ms(lambda: g(X, h, dh, out=buf), repeat)
    t_n = median_ms(lambda: gru_tape(X, h, dh), repeat)
    rows.append(("gru", B, H, t_f, t_n, kept, err))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="256x1024,1024x2048")
    p.add_argument("--repeat", type=int, default=10)
    a = p.parse_args()
    print(f"{'cell':5} {'B x H':>11} {'ferrule ms':>11} {'numpy tape ms':>14} "
          f"{'tape/ferrule':>13} {'kept: ferrule':>14} {'kept: tape':>11} {'max |diff|':>11}")
    for s in a.sizes.split(","):
        B, H = (int(v) for v in s.split("x"))
        for cell, B, H, tf, tn, kept, err in run(B, H, a.repeat):
            print(f"{cell:5} {f'{B}x{H}':>11} {tf:11.2f} {tn:14.2f} {tn / tf:12.2f}x "
                  f"{'0 B':>14} {kept / 2**20:9.1f} MiB {err:11.1e}")
    print("ferrule keeps nothing between the sweeps: the backward region recomputes "
          "the gates from the inputs (G/X and c/h), which the caller holds anyway.")


if __name__ == "__main__":
    main()
