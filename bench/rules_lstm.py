"""The LSTM gate rule three ways, forward+backward, in one run:

* ``frule_via_ad`` rule under ferrule's compiler (the rule from
  docs/rules.md): fused tangent code, one loop nest;
* a hand-written ChainRules-style rrule (stores its intermediates, pullback
  written op by op) run by ``ferrule.eager`` — what a tape AD such as Zygote
  does with such a rule: unfused, one numpy kernel per op;
* the same hand-written rrule under ferrule's compiler (its pullback is
  traced and fused too) — for reference.

    python bench/rules_lstm.py [--size 1024x2048] [--repeat 10]
"""

import argparse
import sys
from pathlib import Path

import numpy as np

import ferrule
import ferrule.numpy as fnp
from ferrule import eager, rules
from ferrule.nn import sigmoid
from pointwise_ad import median_ms

# The gates and the frule_via_ad rule (docs/rules.md) the test suites check.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from models import lstm_gates  # noqa: E402
from models import lstm_pointwise as lstm_fwd_mode  # noqa: E402

lstm_handwritten = rules.primitive(lambda i, f, g, o, c: lstm_gates(i, f, g, o, c))
lstm_handwritten.__name__ = "lstm_handwritten"


@rules.rrule(lstm_handwritten)
def handwritten_rule(config, i, f, g, o, c):
    si, sf, tg, so = sigmoid(i), sigmoid(f), fnp.tanh(g), sigmoid(o)
    c2 = sf * c + si * tg
    tc = fnp.tanh(c2)

    def pullback(ybar):
        dh, dc = ybar
        dc2 = dc + dh * so * (1.0 - tc * tc)
        return (rules.NoTangent(), dc2 * tg * si * (1.0 - si), dc2 * c * sf * (1.0 - sf),
                dc2 * si * (1.0 - tg * tg), dh * tc * so * (1.0 - so), dc2 * sf)
    return (so * tc, c2), pullback


def loss_with(cell):
    def loss(G, c, dh, dc):
        i, f, g, o = fnp.split(G, 4, axis=1)
        h2, c2 = cell(i, f, g, o, c)
        return fnp.sum(h2 * dh) + fnp.sum(c2 * dc)
    return loss


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1024x2048")
    p.add_argument("--repeat", type=int, default=10)
    a = p.parse_args()
    B, H = (int(v) for v in a.size.split("x"))
    rng = np.random.default_rng(0)
    G = rng.standard_normal((B, 4 * H), dtype=np.float32)
    c, dh, dc = (rng.standard_normal((B, H), dtype=np.float32) for _ in range(3))
    fused = ferrule.jit(ferrule.grad(loss_with(lstm_fwd_mode), argnums=(0, 1)))
    hand_c = ferrule.jit(ferrule.grad(loss_with(lstm_handwritten), argnums=(0, 1)))
    hand_e = eager.grad(loss_with(lstm_handwritten), argnums=(0, 1))
    ref = hand_e(G, c, dh, dc)
    for name, fn in [("fused", fused), ("handwritten/compiler", hand_c)]:
        got = fn(G, c, dh, dc)
        err = max(float(np.abs(x - y).max()) for x, y in zip(got, ref))
        assert err < 1e-4, (name, err)
    t1 = median_ms(lambda: fused(G, c, dh, dc), a.repeat)
    t2 = median_ms(lambda: hand_e(G, c, dh, dc), a.repeat)
    t3 = median_ms(lambda: hand_c(G, c, dh, dc), a.repeat)
    print(f"LSTM gates forward+backward, B x H = {B} x {H}, float32, median of {a.repeat}")
    print(f"  frule_via_ad rule, ferrule compiler : {t1:8.2f} ms   1.00x")
    print(f"  hand-written rrule, ferrule.eager   : {t2:8.2f} ms  {t2 / t1:5.2f}x slower")
    print(f"  hand-written rrule, ferrule compiler: {t3:8.2f} ms  {t3 / t1:5.2f}x")


if __name__ == "__main__":
    main()
