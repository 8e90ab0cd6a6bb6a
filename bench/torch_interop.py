"""ferrule inside PyTorch: per-call overhead of ``ferrule.torch.function`` and
an LSTM language model whose cell is ferrule's, against nn.LSTMCell and the
same cell written in torch ops, eager and under ``torch.compile``, forward +
backward, in one run. Prints medians and ratios.

    python bench/torch_interop.py [--repeat 30] [--smoke]

* Overhead, at the LSTM pointwise cell of 64x256 (G: 64x1024, c: 64x256,
  float32): the wrapper's call next to ferrule's compiled function called
  on numpy arrays directly (the same native code: the difference is the
  wrapper), the registered custom op called through the dispatcher (what
  torch.compile'd graphs run), the same cell in torch ops, and one native
  torch op (``torch.tanh(c)``) for scale.
* LM: embedding -> LSTM (T steps) -> linear -> cross-entropy; the three
  cells compute the same function (the LSTMCell includes its two matmuls,
  the others take them from nn.Linear). Compiled with the default backend
  (inductor), ``fullgraph=True``, ``dynamic=False``. Variants are timed in
  interleaved rounds; each time is one forward + backward.

``--smoke`` runs tiny sizes, few repeats and the ``aot_eager`` backend (the
test suite runs it so; its numbers mean nothing).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import ferrule
import ferrule.torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from ddp_lstm import lstm_pointwise  # noqa: E402


def lstm_torch_ops(G, c):
    i, f, g, o = G.chunk(4, 1)
    c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c2), c2


def overhead(args):
    B, H = args.batch, args.hidden
    g = torch.Generator().manual_seed(0)
    G = torch.randn(B, 4 * H, generator=g)
    c = torch.randn(B, H, generator=g)
    cell = ferrule.torch.function(lstm_pointwise, pullback="recompute")
    cell(G, c)
    Gn, cn = G.numpy(), c.numpy()
    native = cell.lower(G, c).compile()
    outs = (np.empty((B, H), np.float32), np.empty((B, H), np.float32))
    name, _ = cell._op_info(((tuple(G.shape), np.dtype(np.float32)),
                             (tuple(c.shape), np.dtype(np.float32))))
    op = getattr(torch.ops.ferrule, name)
    Gr, cr = G.clone().requires_grad_(), c.clone().requires_grad_()
    cases = [
        ("ferrule compiled fn on numpy (no wrapper)", lambda: native(Gn, cn, out=outs)),
        ("ferrule.torch.function, no grad", lambda: _nograd(cell, G, c)),
        ("custom op via dispatcher, no grad", lambda: _nograd(op, G, c)),
        ("cell in torch ops, no grad", lambda: _nograd(lstm_torch_ops, G, c)),
        ("one native op: torch.tanh(c)", lambda: torch.tanh(c)),
        ("ferrule.torch.function, fwd+bwd", lambda: _fwd_bwd(cell, Gr, cr)),
        ("custom op via dispatcher, fwd+bwd", lambda: _fwd_bwd(op, Gr, cr)),
        ("cell in torch ops, fwd+bwd", lambda: _fwd_bwd(lstm_torch_ops, Gr, cr)),
    ]
    times = {label: [] for label, _ in cases}
    for _, fn in cases:
        fn()
    for _ in range(args.repeat):          # interleaved rounds: load drifts alike
        for label, fn in cases:
            t = time.perf_counter()
            for _ in range(args.inner):
                fn()
            times[label].append((time.perf_counter() - t) / args.inner * 1e6)
    rows = {label: statistics.median(v) for label, v in times.items()}
    base = rows["ferrule compiled fn on numpy (no wrapper)"]
    print(f"\n## Per call, LSTM pointwise cell {B}x{H} float32 (G {B}x{4 * H}), medians")
    print("| call | us | vs. compiled fn alone |")
    print("|---|---:|---:|")
    for label, _ in cases:
        print(f"| {label} | {rows[label]:.1f} | {rows[label] / base:.2f}x |")
    print(f"wrapper overhead (no grad): {rows['ferrule.torch.function, no grad'] - base:.1f} us "
          f"per call; through the dispatcher: "
          f"{rows['custom op via dispatcher, no grad'] - base:.1f} us")


def _nograd(fn, *a):
    with torch.no_grad():
        return fn(*a)


def _fwd_bwd(fn, G, c):
    h, c2 = fn(G, c)
    torch.autograd.grad((h.sum() + c2.sum(),), (G, c))


class PointwiseLSTM(nn.Module):
    def __init__(self, vocab, embed, hidden, cell):
        super().__init__()
        self.hidden, self.cell = hidden, cell
        self.embed = nn.Embedding(vocab, embed)
        self.ih = nn.Linear(embed, 4 * hidden)
        self.hh = nn.Linear(hidden, 4 * hidden, bias=False)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        B, T = tokens.shape
        gx = self.ih(self.embed(tokens)).transpose(0, 1).contiguous()
        h = gx.new_zeros(B, self.hidden)
        c = gx.new_zeros(B, self.hidden)
        hs = []
        for t in range(T):
            h, c = self.cell(gx[t] + self.hh(h), c)
            hs.append(h)
        return self.out(torch.stack(hs, 1))


class TorchLSTMCellLM(nn.Module):
    def __init__(self, vocab, embed, hidden):
        super().__init__()
        self.hidden = hidden
        self.embed = nn.Embedding(vocab, embed)
        self.cell = nn.LSTMCell(embed, hidden)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        B, T = tokens.shape
        x = self.embed(tokens)
        h = x.new_zeros(B, self.hidden)
        c = x.new_zeros(B, self.hidden)
        hs = []
        for t in range(T):
            h, c = self.cell(x[:, t], (h, c))
            hs.append(h)
        return self.out(torch.stack(hs, 1))


def language_model(args):
    V, E, H, B, T = args.vocab, args.embed, args.hidden, args.batch, args.seq
    torch.manual_seed(0)
    tokens = torch.randint(0, V, (B, T + 1))
    x, y = tokens[:, :-1], tokens[:, 1:]
    cell = ferrule.torch.function(lstm_pointwise, pullback="recompute")
    models = {
        "ferrule cell": PointwiseLSTM(V, E, H, cell),
        "nn.LSTMCell": TorchLSTMCellLM(V, E, H),
        "cell in torch ops": PointwiseLSTM(V, E, H, lstm_torch_ops),
    }

    def step(model):
        def run():
            for p in model.parameters():
                p.grad = None
            logits = model(x)
            F.cross_entropy(logits.reshape(-1, V), y.reshape(-1)).backward()
        return run
    variants = {}
    for name, m in models.items():
        variants[f"{name}, eager"] = step(m)
    compile_s = {}
    for name, m in models.items():
        cm = torch.compile(m, fullgraph=True, dynamic=False, backend=args.backend)
        t = time.perf_counter()
        step(cm)()            # compile forward and backward
        compile_s[name] = time.perf_counter() - t
        variants[f"{name}, torch.compile"] = step(cm)
    times = {k: [] for k in variants}
    for _ in range(args.rounds):          # interleaved rounds
        for k, fn in variants.items():
            t = time.perf_counter()
            for _ in range(args.lm_inner):
                fn()
            times[k].append((time.perf_counter() - t) / args.lm_inner * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["nn.LSTMCell, eager"]
    print(f"\n## LSTM language model, forward + backward: vocab {V}, embed {E}, hidden {H}, "
          f"batch {B}, {T} steps, float32; medians of {args.rounds} rounds "
          f"(compile backend: {args.backend})")
    print("| cell | mode | ms / step | vs. nn.LSTMCell eager | compile s |")
    print("|---|---|---:|---:|---:|")
    for k in variants:
        name, mode = k.split(", ")
        cs = f"{compile_s[name]:.0f}" if mode == "torch.compile" else ""
        print(f"| {name} | {mode} | {med[k]:.2f} | {med[k] / base:.2f}x | {cs} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=40)
    p.add_argument("--inner", type=int, default=50)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--lm-inner", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--embed", type=int, default=128)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--seq", type=int, default=16)
    p.add_argument("--backend", default="inductor")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (ferrule runs these sizes on one thread)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (for the test suite)")
    args = p.parse_args()
    if args.smoke:
        args.repeat, args.inner, args.rounds, args.lm_inner = 3, 5, 2, 1
        args.batch, args.hidden, args.embed, args.vocab, args.seq = 4, 8, 8, 16, 3
        args.backend = "aot_eager"
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), ferrule "
          f"{ferrule.__version__}, {os.cpu_count()} CPUs")
    overhead(args)
    language_model(args)


if __name__ == "__main__":
    main()
