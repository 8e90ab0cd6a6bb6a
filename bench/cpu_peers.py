"""LSTM pointwise forward+backward on the CPU: ferrule next to PyTorch eager
autograd and ``torch.compile(torch.func.vjp)`` in one run (the peers named in
shared/ANCHORS.md). PyTorch is not a ferrule dependency: install it into
the environment to run this (``pip install torch``). Prints median times
and ratios; every implementation is checked against ferrule's results.

    python bench/cpu_peers.py [--sizes 1024x2048,4096x4096] [--repeat 10]
"""

import argparse
import sys

import numpy as np

import ferrule
from pointwise_ad import lstm_fb, median_ms


def torch_impls():
    import torch

    def cell(G, c):
        i, f, g, o = G.chunk(4, dim=1)
        c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c2), c2

    def eager(G, c, dh, dc):
        G = G.detach().requires_grad_()
        c = c.detach().requires_grad_()
        h2, c2 = cell(G, c)
        dG, dcp = torch.autograd.grad((h2, c2), (G, c), (dh, dc))
        return h2.detach(), c2.detach(), dG, dcp

    def fb(G, c, dh, dc):
        (h2, c2), pb = torch.func.vjp(cell, G, c)
        dG, dcp = pb((dh, dc))
        return h2, c2, dG, dcp

    return {"torch eager": eager, "torch.compile(vjp)": torch.compile(fb)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1024x2048,4096x4096")
    p.add_argument("--repeat", type=int, default=10)
    a = p.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("bench/cpu_peers.py needs PyTorch: pip install torch")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"ferrule threads: see FERRULE_NUM_THREADS (default: all cores)")
    peers = torch_impls()
    for s in a.sizes.split(","):
        B, H = (int(v) for v in s.split("x"))
        rng = np.random.default_rng(0)
        G = rng.standard_normal((B, 4 * H), dtype=np.float32)
        c, dh, dc = (rng.standard_normal((B, H), dtype=np.float32) for _ in range(3))
        f = ferrule.jit(lstm_fb)
        want = f(G, c, dh, dc)
        buf = tuple(np.empty_like(o) for o in want)
        t_f = median_ms(lambda: f(G, c, dh, dc, out=buf), a.repeat)
        print(f"LSTM {B}x{H}: ferrule {t_f:.2f} ms")
        tG, tc, tdh, tdc = (torch.from_numpy(x) for x in (G, c, dh, dc))
        for name, impl in peers.items():
            got = impl(tG, tc, tdh, tdc)
            err = max(float(np.abs(g.numpy() - w).max()) for g, w in zip(got, want))
            assert err < 1e-4, (name, err)
            t = median_ms(lambda: impl(tG, tc, tdh, tdc), a.repeat)
            print(f"  {name:20} {t:8.2f} ms   {t / t_f:5.2f}x ferrule's time")


if __name__ == "__main__":
    main()
