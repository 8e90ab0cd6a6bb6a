"""The char-LSTM language model's training step, ferrule against its peers.

One step = loss and gradients of every weight of: embedding lookup ->
LSTM over T steps -> output projection -> softmax cross-entropy (mean over
T*B tokens), for T=32, B=32, E=64, H=256, V=96 by default. Contenders, each
run in its own process (so no runtime or thread pool disturbs another):

  ferrule              jit(value_and_grad) of the loss with ferrule.scan
  torch nn.LSTM        PyTorch eager, nn.LSTM + autograd
  torch.compile        torch.compile of the loss unrolled over T (not nn.LSTM)
  jax lax.scan         jax.jit(jax.value_and_grad) with lax.scan

Each reports its compile time (first call, cold caches) and the median step
time; the driver checks every contender's loss and gradients against
ferrule's and prints ratios. PyTorch and JAX are optional: a contender whose
library is missing is skipped and says so.

    python bench/char_lstm.py [--T 32 --B 32 --H 256 --E 64 --V 96] [--repeat 20]
    python bench/char_lstm.py --only ferrule     # one contender in this process
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

CONTENDERS = ("ferrule", "torch nn.LSTM", "torch.compile", "jax lax.scan")
NAMES = ("emb", "Wx", "Wh", "b", "Wy", "by")


def make_problem(T, B, E, H, V, seed=0):
    """Weights (float32) and token ids (int32) shared by every contender."""
    rng = np.random.default_rng(seed)
    f32 = np.float32
    params = {
        "emb": rng.standard_normal((V, E)).astype(f32) * 0.3,
        "Wx": (rng.standard_normal((E, 4 * H)) / np.sqrt(E)).astype(f32),
        "Wh": (rng.standard_normal((H, 4 * H)) / np.sqrt(H)).astype(f32),
        "b": np.zeros(4 * H, f32),
        "Wy": (rng.standard_normal((H, V)) / np.sqrt(H)).astype(f32),
        "by": np.zeros(V, f32),
    }
    tokens = rng.integers(0, V, (T + 1, B)).astype(np.int32)
    return params, tokens[:-1], tokens[1:]


# ------------------------------------------------------------------ contenders

def _example():
    """examples/char_lstm.py, the README's main job, as a module."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples",
                        "char_lstm.py")
    spec = importlib.util.spec_from_file_location("char_lstm_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ferrule_step(T, B, E, H, V):
    """The main job's own loss (examples/char_lstm.py ``loss_fn``), its value
    and gradients under ``ferrule.jit``, from a zero state."""
    import ferrule
    example = _example()
    h0 = np.zeros((B, H), np.float32)
    f = ferrule.jit(ferrule.value_and_grad(example.loss_fn, has_aux=True))

    def run(params, xs, ys):
        (v, _), g = f(params, xs, ys, h0, h0)
        return float(v), {n: g[n] for n in NAMES}
    return run


def torch_lstm_step(T, B, E, H, V):
    import torch
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(E, H)
    emb = torch.nn.Embedding(V, E)
    proj = torch.nn.Linear(H, V)

    def run(params, xs, ys):
        with torch.no_grad():
            emb.weight.copy_(torch.from_numpy(params["emb"]))
            lstm.weight_ih_l0.copy_(torch.from_numpy(params["Wx"].T))
            lstm.weight_hh_l0.copy_(torch.from_numpy(params["Wh"].T))
            lstm.bias_ih_l0.copy_(torch.from_numpy(params["b"]))
            lstm.bias_hh_l0.zero_()
            proj.weight.copy_(torch.from_numpy(params["Wy"].T))
            proj.bias.copy_(torch.from_numpy(params["by"]))
        for m in (lstm, emb, proj):
            m.zero_grad()
        x = emb(torch.from_numpy(xs).long())
        hs, _ = lstm(x)
        logits = proj(hs)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V),
                                                 torch.from_numpy(ys).long().reshape(-1))
        loss.backward()
        g = {"emb": emb.weight.grad, "Wx": lstm.weight_ih_l0.grad.T,
             "Wh": lstm.weight_hh_l0.grad.T, "b": lstm.bias_ih_l0.grad,
             "Wy": proj.weight.grad.T, "by": proj.bias.grad}
        return float(loss), {k: v.numpy() for k, v in g.items()}
    return run


def torch_compile_step(T, B, E, H, V):
    import torch

    def loss_fn(emb, Wx, Wh, b, Wy, by, xs, ys):
        gx = emb[xs] @ Wx + b
        h = c = torch.zeros(B, H)
        hs = []
        for t in range(T):                      # unrolled: torch.compile has no scan here
            i, f, g, o = (gx[t] + h @ Wh).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            hs.append(h)
        logits = torch.stack(hs) @ Wy + by
        return torch.nn.functional.cross_entropy(logits.reshape(-1, V), ys.reshape(-1))

    def vg(*ps_and_data):
        ps = [p.detach().requires_grad_() for p in ps_and_data[:6]]
        loss = loss_fn(*ps, *ps_and_data[6:])
        return loss, torch.autograd.grad(loss, ps)
    compiled = torch.compile(vg)

    def run(params, xs, ys):
        ps = [torch.from_numpy(params[n]) for n in NAMES]
        loss, g = compiled(*ps, torch.from_numpy(xs).long(), torch.from_numpy(ys).long())
        return float(loss), {n: v.numpy() for n, v in zip(NAMES, g)}
    return run


def jax_step(T, B, E, H, V):
    import jax
    import jax.numpy as jnp

    def loss_fn(p, xs, ys):
        gx = p["emb"][xs] @ p["Wx"] + p["b"]

        def step(hc, g):
            h, c = hc
            i, f, gg, o = jnp.split(g + h @ p["Wh"], 4, axis=1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(gg)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h
        h0 = jnp.zeros((B, H), jnp.float32)
        _, hs = jax.lax.scan(step, (h0, h0), gx)
        logits = hs @ p["Wy"] + p["by"]
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, ys[..., None], axis=-1))
    f = jax.jit(jax.value_and_grad(loss_fn))

    def run(params, xs, ys):
        v, g = f(params, xs, ys)
        v = float(v)
        return v, {k: np.asarray(x) for k, x in g.items()}
    return run


STEPS = {"ferrule": ferrule_step, "torch nn.LSTM": torch_lstm_step,
         "torch.compile": torch_compile_step, "jax lax.scan": jax_step}


def run_one(name, args, out_npz):
    """Time one contender in this process; save its loss and gradients."""
    params, xs, ys = make_problem(args.T, args.B, args.E, args.H, args.V)
    try:
        t = time.perf_counter()
        step = STEPS[name](args.T, args.B, args.E, args.H, args.V)
        loss, grads = step(params, xs, ys)
        compile_s = time.perf_counter() - t
    except ImportError as e:
        return {"name": name, "skipped": f"not installed ({e.name})"}
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        step(params, xs, ys)
        times.append(time.perf_counter() - t)
    np.savez(out_npz, loss=loss, **grads)
    return {"name": name, "compile_s": compile_s, "step_ms": 1e3 * float(np.median(times)),
            "loss": loss}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for k, v in (("T", 32), ("B", 32), ("E", 64), ("H", 256), ("V", 96), ("repeat", 20)):
        p.add_argument(f"--{k}", type=int, default=v)
    p.add_argument("--only", choices=CONTENDERS, help="run one contender in this process")
    p.add_argument("--json", help="(internal) write the result of --only here")
    p.add_argument("--npz", help="(internal) write --only's loss and gradients here")
    a = p.parse_args()
    if a.only:
        with tempfile.TemporaryDirectory() as d:
            res = run_one(a.only, a, a.npz or os.path.join(d, "g.npz"))
        if a.json:
            with open(a.json, "w") as fh:
                json.dump(res, fh)
        else:
            print(res)
        return
    print(f"char-LSTM training step: T={a.T} B={a.B} E={a.E} H={a.H} V={a.V}, float32, "
          f"{os.cpu_count()} CPUs; each contender in its own process, cold caches")
    results = []
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, FERRULE_CACHE_DIR=os.path.join(d, "cache"))
        for name in CONTENDERS:
            js, npz = os.path.join(d, "r.json"), os.path.join(d, f"{len(results)}.npz")
            cmd = [sys.executable, __file__, "--only", name, "--json", js, "--npz", npz,
                   *[f"--{k}={getattr(a, k)}" for k in ("T", "B", "E", "H", "V", "repeat")]]
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if r.returncode != 0 or not os.path.exists(js):
                res = {"name": name, "skipped": f"failed: {(r.stderr or r.stdout).strip()[-300:]}"}
            else:
                with open(js) as fh:
                    res = json.load(fh)
                os.remove(js)
                if "skipped" not in res:
                    res["grads"] = dict(np.load(npz))
            results.append(res)
    ref = next((r for r in results if r["name"] == "ferrule" and "grads" in r), None)
    live = [r for r in results if "skipped" not in r]
    best_step = min((r["step_ms"] for r in live if r["name"] != "ferrule"), default=None)
    best_comp = min((r["compile_s"] for r in live if r["name"] != "ferrule"), default=None)
    print(f"{'contender':<16} {'compile s':>10} {'step ms':>9} {'step/ferrule':>13}  check")
    for r in results:
        if "skipped" in r:
            print(f"{r['name']:<16} skipped: {r['skipped']}")
            continue
        check = "reference"
        if ref is not None and r is not ref:
            err = max(float(np.max(np.abs(r["grads"][n] - ref["grads"][n])
                                   / (np.max(np.abs(ref["grads"][n])) + 1e-30))) for n in NAMES)
            check = f"loss {abs(r['loss'] - ref['loss']):.1e}, grads rel {err:.1e}"
        ratio = r["step_ms"] / ref["step_ms"] if ref else float("nan")
        print(f"{r['name']:<16} {r['compile_s']:>10.2f} {r['step_ms']:>9.2f} {ratio:>13.2f}  {check}")
    if ref is not None and best_step is not None:
        print(f"ferrule / best peer: step {ref['step_ms'] / best_step:.2f}x, "
              f"compile {ref['compile_s'] / best_comp:.2f}x")


if __name__ == "__main__":
    main()
