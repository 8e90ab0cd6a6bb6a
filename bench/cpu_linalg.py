"""Matmul, reductions and an MLP training step on the CPU: ferrule next to
numpy (OpenBLAS, pairwise sums) and, when installed, PyTorch eager, in one
run. Prints median times, ratios to ferrule, and each result's error
against float64 numpy.

    python bench/cpu_linalg.py [--repeat 10]

Threads: numpy's BLAS and PyTorch use every core; ferrule splits a
function over cores when it can cut the batch rows (the MLP step: x and y
are cut, weight gradients summed over the chunks), and runs lone matmuls
and full reductions on one core. The thread counts are printed.
"""

import argparse
import os

import numpy as np

import ferrule
import ferrule.numpy as fnp
from pointwise_ad import median_ms


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def cases(rng):
    """(name, ferrule fn, numpy fn, torch fn or None, args)"""
    out = []
    for m, k, n in [(256, 256, 256), (1024, 1024, 1024), (4096, 512, 512), (64, 4096, 1)]:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        out.append((f"matmul {m}x{k}x{n}", lambda a, b: a @ b, np.matmul,
                    lambda a, b: a @ b, (a, b)))
    x = rng.standard_normal((4096, 4096), dtype=np.float32)
    out += [
        ("sum 4096x4096", lambda x: fnp.sum(x), np.sum, lambda x: x.sum(), (x,)),
        ("sum(x*x) 4096x4096", lambda x: fnp.sum(x * x), lambda x: np.sum(x * x),
         lambda x: (x * x).sum(), (x,)),
        ("sum axis 0", lambda x: fnp.sum(x, axis=0), lambda x: np.sum(x, axis=0),
         lambda x: x.sum(0), (x,)),
        ("sum axis 1", lambda x: fnp.sum(x, axis=1), lambda x: np.sum(x, axis=1),
         lambda x: x.sum(1), (x,)),
    ]
    B, D, Hd = 512, 784, 1024
    xs = rng.standard_normal((B, D), dtype=np.float32)
    ys = rng.standard_normal((B, 10), dtype=np.float32)
    w1 = (rng.standard_normal((D, Hd), dtype=np.float32) * 0.03)
    w2 = (rng.standard_normal((Hd, 10), dtype=np.float32) * 0.03)

    def mlp_loss(w1, w2, x, y):
        h = fnp.tanh(x @ w1)
        return fnp.mean((h @ w2 - y) ** 2)

    def np_step(w1, w2, x, y):          # hand-written numpy backward
        h = np.tanh(x @ w1)
        r = h @ w2 - y
        loss = np.mean(r * r)
        dr = 2 * r / r.size
        dw2 = h.T @ dr
        dh = dr @ w2.T * (1 - h * h)
        return loss, (x.T @ dh, dw2)

    def torch_step(w1, w2, x, y):
        torch = _torch()
        w1 = w1.detach().requires_grad_()
        w2 = w2.detach().requires_grad_()
        loss = ((torch.tanh(x @ w1) @ w2 - y) ** 2).mean()
        loss.backward()
        return loss.detach(), (w1.grad, w2.grad)

    out.append((f"MLP {B}x{D}->{Hd}->10 value_and_grad",
                ferrule.value_and_grad(mlp_loss, argnums=(0, 1)), np_step, torch_step,
                (w1, w2, xs, ys)))
    return out


def _flat(r):
    if isinstance(r, (tuple, list)):
        return [y for v in r for y in _flat(v)]
    return [np.asarray(r.detach().numpy() if hasattr(r, "detach") else r, np.float64)]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=10)
    a = p.parse_args()
    torch = _torch()
    print(f"cores: {os.cpu_count()}; ferrule: see each line's threads; "
          + (f"torch {torch.__version__}: {torch.get_num_threads()} threads"
             if torch else "torch: not installed"))
    rng = np.random.default_rng(0)
    for name, ff, nf, tf, args in cases(rng):
        f = ferrule.jit(ff)
        low = f.lower(*args)
        low.compile()
        threads = [ln for ln in low.explain().splitlines() if ln.startswith("CPU")][0]
        threads = threads.split(" (")[0].replace("CPU: ", "")
        got = f(*args)
        ref = _flat(nf(*[x.astype(np.float64) for x in args]))
        err = max(float(np.max(np.abs(g - w) / (1 + np.abs(w)))) for g, w in zip(_flat(got), ref))
        t_f = median_ms(lambda: f(*args), a.repeat)
        line = f"{name:38} ferrule {t_f:8.2f} ms ({threads}, err {err:.0e})"
        t_n = median_ms(lambda: nf(*args), a.repeat)
        line += f" | numpy {t_n:8.2f} ms ({t_n / t_f:5.2f}x)"
        if torch is not None and tf is not None:
            targs = [torch.from_numpy(x) for x in args]
            t_t = median_ms(lambda: tf(*targs), a.repeat)
            line += f" | torch {t_t:8.2f} ms ({t_t / t_f:5.2f}x)"
        print(line, flush=True)
    print("(Nx) = the peer's time / ferrule's: above 1, ferrule is faster.")


if __name__ == "__main__":
    main()
