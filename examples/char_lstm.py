"""Train a character-level LSTM language model with ferrule, in about a minute.

    python examples/char_lstm.py                 # text: this Python's own standard library
    python examples/char_lstm.py --text FILE     # any other text
    python examples/char_lstm.py --compare       # also time the step in PyTorch and JAX

The whole training step — embedding lookup, an LSTM over T characters
(``ferrule.scan``: one compiled loop), softmax cross-entropy, the gradients
of every weight, and an Adam update — is ONE jitted function, compiled once;
the learning rate is a traced argument, so the schedule never recompiles.
Sampling (a scan that draws each next character with ``ferrule.random``) is
a second jitted function. At the end the script prints the loss next to the
text's unigram entropy (what a model that ignores context achieves), a
generated sample, and saves the loss curve as a PNG.
"""

import argparse
import math
import os
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np

import ferrule
import ferrule.numpy as fnp
from ferrule import random
from ferrule.nn import cross_entropy, sigmoid

PARAMS = ("emb", "Wx", "Wh", "b", "Wy", "by")


# ---------------------------------------------------------------------- data

def stdlib_text(max_bytes: int) -> str:
    """Source files of the running Python's standard library (present on
    every machine that runs this), concatenated up to ``max_bytes``."""
    root = Path(sysconfig.get_paths()["stdlib"])
    parts, size = [], 0
    for path in sorted(root.glob("*.py")):
        try:
            s = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        parts.append(s)
        size += len(s)
        if size >= max_bytes:
            break
    return "".join(parts)[:max_bytes]


class Vocab:
    """The ``size - 1`` most frequent characters, and one id for the rest."""

    def __init__(self, text: str, size: int):
        chars, counts = np.unique(np.frombuffer(text.encode("utf-32-le"), np.uint32),
                                  return_counts=True)
        keep = chars[np.argsort(-counts, kind="stable")][:size - 1]
        # A text with fewer distinct characters leaves ids unused; the
        # model may still sample them: they decode as the "other" mark.
        self.chars = [chr(c) for c in keep] + ["\ufffd"] * (size - len(keep))
        self.table = np.full(max(int(chars.max()), int(keep.max())) + 1, size - 1, np.int32)
        self.table[keep] = np.arange(len(keep), dtype=np.int32)
        self.size = size

    def encode(self, text: str) -> np.ndarray:
        return self.table[np.frombuffer(text.encode("utf-32-le"), np.uint32)]

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def unigram_entropy(ids: np.ndarray, V: int) -> float:
    """Entropy of the character distribution, in nats per character."""
    p = np.bincount(ids, minlength=V) / len(ids)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


# --------------------------------------------------------------------- model

def init_params(V, E, H, seed=0):
    rng = np.random.default_rng(seed)
    f32 = np.float32
    b = np.zeros(4 * H, f32)
    b[H:2 * H] = 1.0        # forget-gate bias 1: remember by default
    return {"emb": (rng.standard_normal((V, E)) * 0.3).astype(f32),
            "Wx": (rng.standard_normal((E, 4 * H)) / math.sqrt(E)).astype(f32),
            "Wh": (rng.standard_normal((H, 4 * H)) / math.sqrt(H)).astype(f32),
            "b": b,
            "Wy": (rng.standard_normal((H, V)) / math.sqrt(H)).astype(f32),
            "by": np.zeros(V, f32)}


def lstm_step(p):
    """One LSTM step ``(h, c), x_gates -> (h', c'), h'``; the input
    projection ``x @ Wx + b`` is done for all T steps at once outside."""
    def step(hc, gx):
        h, c = hc
        i, f, g, o = fnp.split(gx + h @ p["Wh"], 4, axis=1)
        c2 = sigmoid(f) * c + sigmoid(i) * fnp.tanh(g)
        h2 = sigmoid(o) * fnp.tanh(c2)
        return (h2, c2), h2
    return step


def loss_fn(p, xs, ys, h0, c0):
    """Mean cross-entropy of predicting ``ys`` (T, B) from ``xs`` (T, B)."""
    gx = fnp.take(p["emb"], xs, axis=0) @ p["Wx"] + p["b"]
    (h, c), hs = ferrule.scan(lstm_step(p), (h0, c0), gx)
    logits = hs @ p["Wy"] + p["by"]
    return fnp.mean(cross_entropy(logits, ys)), (h, c)


def train_step(params, m, v, xs, ys, h0, c0, lr, t):
    """Loss, gradients and one Adam update (betas 0.9, 0.999), all traced.
    The final LSTM state is returned to start the next chunk of text
    (truncated backpropagation through time)."""
    (loss, (h, c)), grads = ferrule.value_and_grad(loss_fn, has_aux=True)(params, xs, ys, h0, c0)
    b1, b2, eps = 0.9, 0.999, 1e-8
    new_p, new_m, new_v = {}, {}, {}
    for k in PARAMS:
        g = fnp.clip(grads[k], -5.0, 5.0)
        new_m[k] = b1 * m[k] + (1 - b1) * g
        new_v[k] = b2 * v[k] + (1 - b2) * g * g
        mhat = new_m[k] / (1 - b1 ** t)
        vhat = new_v[k] / (1 - b2 ** t)
        new_p[k] = params[k] - lr * mhat / (fnp.sqrt(vhat) + eps)
    return loss, new_p, new_m, new_v, ferrule.stop_gradient(h), ferrule.stop_gradient(c)


def sample(params, key, first, h, c, temperature, length):
    """Draw ``length`` characters after ``first`` (B,), one scan."""
    def step(carry, _):
        x, h, c, key = carry
        key, sub = random.split(key)
        gx = fnp.take(params["emb"], x, axis=0) @ params["Wx"] + params["b"]
        (h, c), _ = lstm_step(params)((h, c), gx)
        logits = (h @ params["Wy"] + params["by"]) / temperature
        nxt = random.categorical(sub, logits, axis=-1).astype(fnp.int32)
        return (nxt, h, c, key), nxt
    _, out = ferrule.scan(step, (first, h, c, key), None, length=length)
    return out


# ------------------------------------------------------------------- running

def batches(ids, T, B, rng):
    """Endless (xs, ys) pairs of shape (T, B): B streams, each reading the
    text in order from its own offset, so the LSTM state carries over."""
    n = (len(ids) - 1) // B
    starts = np.arange(B) * n + rng.integers(0, n - T)
    pos = 0
    while True:
        if pos + T + 1 > n:
            pos = 0
        idx = starts[None, :] + pos + np.arange(T + 1)[:, None]
        idx %= len(ids) - 1
        chunk = ids[idx]
        yield chunk[:-1], chunk[1:], pos == 0
        pos += T


def progress(total, disable):
    try:
        from tqdm import tqdm
    except ImportError:
        sys.exit("the example needs tqdm and matplotlib: pip install 'ferrule[examples]'")
    return tqdm(total=total, disable=disable, unit="step", dynamic_ncols=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--text", help="a UTF-8 text file (default: the standard library's source)")
    ap.add_argument("--seconds", type=float, default=60.0, help="training time budget")
    ap.add_argument("--steps", type=int, default=None, help="train this many steps instead")
    ap.add_argument("--T", type=int, default=32, help="characters per step (scan length)")
    ap.add_argument("--B", type=int, default=32, help="streams per batch")
    ap.add_argument("--H", type=int, default=256, help="LSTM width")
    ap.add_argument("--E", type=int, default=64, help="embedding width")
    ap.add_argument("--V", type=int, default=96, help="vocabulary size")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--plot", default="char_lstm_loss.png", help="where to save the loss curve")
    ap.add_argument("--sample-length", type=int, default=300)
    ap.add_argument("--compare", action="store_true",
                    help="time this training step in PyTorch and JAX too (if installed)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args(argv)

    text = Path(a.text).read_text(encoding="utf-8") if a.text else stdlib_text(2_000_000)
    vocab = Vocab(text, a.V)
    ids = vocab.encode(text)
    H0 = unigram_entropy(ids, a.V)
    print(f"text: {len(ids):,} characters ({'--text ' + a.text if a.text else 'the standard library'}),"
          f" vocabulary {a.V}; unigram entropy {H0:.3f} nats/char ({H0 / math.log(2):.3f} bits)")

    params = init_params(a.V, a.E, a.H)
    m = {k: np.zeros_like(p) for k, p in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    h = c = np.zeros((a.B, a.H), np.float32)
    step = ferrule.jit(train_step)
    data = batches(ids, a.T, a.B, np.random.default_rng(0))

    xs, ys, _ = next(data)
    t0 = time.perf_counter()
    step.lower(params, m, v, xs, ys, h, c, a.lr, 1.0).compile()
    compile_s = time.perf_counter() - t0
    print(f"compiled the training step (T={a.T}, B={a.B}, E={a.E}, H={a.H}) in {compile_s:.1f} s")

    losses, t_start, n = [], time.perf_counter(), 0
    bar = progress(a.steps, a.quiet)
    smooth = None
    while (a.steps is not None and n < a.steps) or (a.steps is None and time.perf_counter() - t_start < a.seconds):
        xs, ys, restart = next(data)
        if restart:
            h = c = np.zeros((a.B, a.H), np.float32)
        lr = a.lr * min(1.0, (n + 1) / 50)             # warm-up: a traced float, no recompile
        loss, params, m, v, h, c = step(params, m, v, xs, ys, h, c, lr, float(n + 1))
        loss = float(loss)
        losses.append(loss)
        smooth = loss if smooth is None else 0.95 * smooth + 0.05 * loss
        n += 1
        bar.update(1)
        bar.set_postfix(loss=f"{smooth:.3f}",
                        chars_per_s=f"{n * a.T * a.B / (time.perf_counter() - t_start):,.0f}")
    bar.close()
    elapsed = time.perf_counter() - t_start
    final = float(np.mean(losses[-20:]))
    print(f"{n} steps in {elapsed:.1f} s ({1e3 * elapsed / n:.1f} ms/step, "
          f"{n * a.T * a.B / elapsed:,.0f} chars/s); specialisations of the step: "
          f"{step.trace_count + step.load_count} (traced {step.trace_count}, loaded from "
          f"the disk cache untraced {step.load_count})")
    rel = 1 - final / H0
    print(f"loss: first {losses[0]:.3f}, last-20 mean {final:.3f} nats/char "
          f"({final / math.log(2):.3f} bits) vs unigram entropy {H0:.3f} "
          f"({100 * abs(rel):.0f}% {'below' if rel > 0 else 'above'})")

    gen = ferrule.jit(sample, static_argnums=(6,))
    prompt = vocab.encode("def ")
    first = np.full(a.B, prompt[-1], np.int32)
    out = gen(params, random.key(0), first, h, c, 0.8, a.sample_length)
    print("sample:\n" + "-" * 60 + "\n" + "def " + vocab.decode(out[:, 0]) + "\n" + "-" * 60)

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("the example needs tqdm and matplotlib: pip install 'ferrule[examples]'")
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(losses, lw=0.8, label="training loss")
    ax.axhline(H0, color="gray", ls="--", label="unigram entropy")
    ax.set_xlabel("step")
    ax.set_ylabel("nats / character")
    ax.set_title(f"char-LSTM with ferrule (T={a.T}, B={a.B}, H={a.H})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(a.plot, dpi=120)
    print(f"loss curve saved to {os.path.abspath(a.plot)}")

    if a.compare:
        import subprocess
        bench = Path(__file__).resolve().parents[1] / "bench" / "char_lstm.py"
        subprocess.run([sys.executable, str(bench), f"--T={a.T}", f"--B={a.B}", f"--E={a.E}",
                        f"--H={a.H}", f"--V={a.V}"], check=False)
    return final, H0


if __name__ == "__main__":
    main()
