"""GPU benchmark of ferrule's fused LSTM/GRU forward+backward kernels.

Runs on a GPU machine with numpy and the NVIDIA driver; PyTorch, JAX and
CuPy are optional peers. No MLIR or LLVM: the artifacts were compiled
elsewhere by bench/build_gpu_artifacts.py and the launcher is loaded from
runtime/cuda on its own. Usually started by bench/gpu_check.sh.

For every artifact in bench/artifacts/manifest.json (cell × B×H) it
1. checks ferrule's outputs (and each peer's) against numpy float64 on a
   subset of rows (the cells are row-independent, so rows are exact tests);
2. times ferrule next to PyTorch eager autograd, torch.compile, and
   jax.jit(jax.vjp) on the same inputs, in the same process;
3. reports achieved bandwidth — the bytes a perfect fused kernel moves (each
   input read once, each output written once) over the time — as a fraction
   of the device-to-device copy bandwidth measured at the start;
4. with PyTorch, also times ferrule on inputs one element off 16-byte
   alignment, which run the kernels' scalar fallback instead of their
   16-byte vector loads/stores;
5. times one MLP training step (loss and both weight gradients) next to the
   same peers, in GFLOP/s: ferrule's GPU matmul against cuBLAS.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # share the GPU

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cuda"))
import cuda_cases  # noqa: E402


fc = cuda_cases.load_launcher()


def try_import(name):
    try:
        return __import__(name), ""
    except Exception as e:  # noqa: BLE001 - any failure means "peer absent"
        return None, f"{type(e).__name__}: {e}"


torch, torch_why = try_import("torch")
if torch is not None and not torch.cuda.is_available():
    torch, torch_why = None, "torch has no CUDA device"


# ------------------------------------------------------------- the peers

def torch_cells():
    def lstm(G, c):
        i, f, g, o = G.chunk(4, 1)
        c2 = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c2), c2

    def gru(x, h):
        r, z, n = x.chunk(3, 1)
        r, z = torch.sigmoid(r), torch.sigmoid(z)
        n = torch.tanh(n + r * h)
        return (1 - z) * n + z * h
    return {"lstm": (lstm, 2), "gru": (gru, 2)}   # (forward, #primals)


def mlp_loss_torch(w1, w2, x, y):
    return ((torch.tanh(x @ w1) @ w2 - y) ** 2).mean()


def torch_training_runner(loss_fn, args):
    """Loss and gradients for the two weights, as a training step does."""
    w1, w2, x, y = args

    def run():
        ws = [w.detach().requires_grad_() for w in (w1, w2)]
        loss = loss_fn(*ws, x, y)
        return (loss.detach(), *torch.autograd.grad(loss, ws))
    return run


def torch_autograd_runner(fwd, n_primals, args):
    """Forward then backward with torch.autograd; returns outputs + grads."""
    primals, cts = args[:n_primals], args[n_primals:]

    def run():
        ps = [p.detach().requires_grad_() for p in primals]
        outs = fwd(*ps)
        outs = outs if isinstance(outs, tuple) else (outs,)
        torch.autograd.backward(outs, cts)
        return (*[o.detach() for o in outs], *[p.grad for p in ps])
    return run


def jax_runner(cell, args_np_or_torch):
    import jax
    import jax.numpy as jnp

    def lstm(G, c):
        i, f, g, o = jnp.split(G, 4, axis=1)
        c2 = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return jax.nn.sigmoid(o) * jnp.tanh(c2), c2

    def gru(x, h):
        r, z, n = jnp.split(x, 3, axis=1)
        r, z = jax.nn.sigmoid(r), jax.nn.sigmoid(z)
        n = jnp.tanh(n + r * h)
        return (1 - z) * n + z * h

    def mlp_loss(w1, w2, x, y):
        # float32 products as the others compute them (JAX's default on
        # recent GPUs is TF32, ~1e-3 relative error)
        hp = jax.lax.Precision.HIGHEST
        h = jnp.tanh(jnp.matmul(x, w1, precision=hp))
        return jnp.mean((jnp.matmul(h, w2, precision=hp) - y) ** 2)

    if cell == "lstm":
        def fb(G, c, dh, dc):
            out, pb = jax.vjp(lstm, G, c)
            return (*out, *pb((dh, dc)))
    elif cell == "mlp":
        def fb(w1, w2, x, y):
            loss, grads = jax.value_and_grad(mlp_loss, argnums=(0, 1))(w1, w2, x, y)
            return (loss, *grads)
    else:
        def fb(x, h, dout):
            out, pb = jax.vjp(gru, x, h)
            return (out, *pb(dout))
    jf = jax.jit(fb)
    xs = []
    for a in args_np_or_torch:
        try:
            xs.append(jax.dlpack.from_dlpack(a))     # zero copy from torch
        except Exception:  # noqa: BLE001 - older JAX: go through the host
            xs.append(jax.device_put(np.asarray(a.cpu() if hasattr(a, "cpu") else a)))

    def run():
        return jf(*xs)
    return run, lambda outs: [o.block_until_ready() for o in outs]


# ------------------------------------------------------------- measuring

def copy_bandwidth(nbytes: int = 1 << 30, repeat: int = 20) -> dict:
    """Device-to-device copy bandwidth (read + write bytes per second)."""
    drv = fc.driver
    src, dst = fc.DeviceArray((nbytes,), np.uint8), fc.DeviceArray((nbytes,), np.uint8)
    res = {}
    for _ in range(3):
        drv.call("cuMemcpyDtoDAsync_v2", drv.CUdeviceptr(dst.ptr), drv.CUdeviceptr(src.ptr),
                 nbytes, None)
    start, stop = drv.Event(), drv.Event()
    start.record()
    for _ in range(repeat):
        drv.call("cuMemcpyDtoDAsync_v2", drv.CUdeviceptr(dst.ptr), drv.CUdeviceptr(src.ptr),
                 nbytes, None)
    stop.record()
    res["cuMemcpyDtoD"] = 2 * nbytes * repeat / (stop.elapsed_ms(start) / 1e3) / 1e9
    if torch is not None:
        a = torch.empty(nbytes // 4, dtype=torch.float32, device="cuda")
        b = torch.empty_like(a)
        for _ in range(3):
            b.copy_(a)
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        for _ in range(repeat):
            b.copy_(a)
        e1.record()
        torch.cuda.synchronize()
        res["torch copy_"] = 2 * nbytes * repeat / (e0.elapsed_time(e1) / 1e3) / 1e9
        del a, b
    del src, dst
    return res


def sync():
    if torch is not None:
        torch.cuda.synchronize()
    else:
        fc.driver.call("cuCtxSynchronize")


def time_it(run, finish=None, repeat=20, rounds=5) -> float:
    """Median over ``rounds`` of the mean seconds per call of ``repeat``
    back-to-back calls (wall clock between device synchronisations)."""
    for _ in range(3):
        out = run()
    (finish or (lambda o: None))(out)
    sync()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(repeat):
            out = run()
        (finish or (lambda o: None))(out)
        sync()
        times.append((time.perf_counter() - t0) / repeat)
    return statistics.median(times)


def to_numpy(a, rows=None):
    """Rows ``rows`` (all when None) of a torch / JAX / launcher device
    array, as numpy."""
    if hasattr(a, "detach"):
        a = a.detach()
        if rows is not None:
            a = a[torch.as_tensor(rows, device=a.device)]
        return a.cpu().numpy()
    a = a.get() if isinstance(a, fc.DeviceArray) else np.asarray(a)
    return a if rows is None else a[rows]


def max_error(outs, ref, rows):
    """Max |got - want| / (1 + |want|) over the checked rows and outputs."""
    err = 0.0
    for o, w in zip(outs, ref):
        g = to_numpy(o, rows).astype(np.float64)
        err = max(err, float(np.max(np.abs(g - w) / (1 + np.abs(w)))))
    return err


# ------------------------------------------------------------- one case

def make_inputs(shapes, seed=0, scale=1.0):
    """Random float32 inputs on the device (torch if present, else uploaded)."""
    if torch is not None:
        g = torch.Generator(device="cuda").manual_seed(seed)
        return [torch.randn(*s, device="cuda", generator=g) * scale for s in shapes]
    rng = np.random.default_rng(seed)
    return [fc.DeviceArray.from_numpy((rng.standard_normal(s) * scale).astype(np.float32))
            for s in shapes]


def bench_case(entry, art_dir: Path, peers, repeat: int, check_rows: int, tol: float):
    cell, B, H = entry["cell"], entry["B"], entry["H"]
    training = cell in cuda_cases.TRAINING
    shapes_fn, reference = {**cuda_cases.CELLS, **cuda_cases.TRAINING}[cell]
    f = fc.load(art_dir / entry["file"])
    # Training inputs scaled so tanh is not saturated (x @ w1 ~ N(0, 1)).
    args = make_inputs(shapes_fn(B, H), scale=(1 / np.sqrt(H)) if training else 1.0)
    # The cells are row-local: a subset of rows checks them. The training
    # step's outputs depend on every row: check all of them.
    rows = None if training else np.r_[0:min(check_rows, B // 2),
                                       B - min(check_rows, B // 2):B]
    ref = reference(*[to_numpy(a, rows).astype(np.float64) for a in args])
    moved = sum(int(np.prod(s)) * np.dtype(d).itemsize for s, d in f.inputs + f.outputs)
    flops = entry.get("flops")
    results = []

    def record(impl, run, finish=None):
        try:
            outs = run()
            if finish:
                finish(outs)
            err = max_error(outs, ref, rows)
            t = time_it(run, finish, repeat)
            results.append({"impl": impl, "ms": t * 1e3, "GBps": moved / t / 1e9,
                            "GFLOPs": flops / t / 1e9 if flops else None,
                            "max_rel_err": err, "ok": err <= tol})
        except Exception as e:  # noqa: BLE001 - a failing peer is reported, not fatal
            results.append({"impl": impl, "error": f"{type(e).__name__}: {e}"[:300]})
        sync()

    if torch is not None:   # outputs come from torch's caching allocator
        record(f"ferrule ({f.loaded_from})", lambda: f(*args, sync=False))
    if torch is not None and not training:
        # The same kernels on views one element off 16-byte alignment: the
        # scalar fallback path, i.e. what the vector loads/stores buy.
        try:
            odd = [torch.empty(a.numel() + 1, device="cuda")[1:].view(a.shape).copy_(a)
                   for a in args]
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            results.append({"impl": "ferrule, misaligned views (scalar path)",
                            "error": f"{type(e).__name__}: {e}"[:300]})
        else:
            record("ferrule, misaligned views (scalar path)", lambda: f(*odd, sync=False))
            del odd
    else:                   # reuse outputs: cuMemAlloc per call would dominate
        outs = [fc.DeviceArray(s, d) for s, d in f.outputs]
        record(f"ferrule ({f.loaded_from})", lambda: f(*args, out=outs, sync=False))
    if torch is not None and training:
        if "eager" in peers:
            record("torch eager autograd", torch_training_runner(mlp_loss_torch, args))
        if "compile" in peers:
            record("torch.compile", torch_training_runner(torch.compile(mlp_loss_torch), args))
    elif torch is not None:
        fwd, n = torch_cells()[cell]
        if "eager" in peers:
            record("torch eager autograd", torch_autograd_runner(fwd, n, args))
        if "compile" in peers:
            record("torch.compile", torch_autograd_runner(torch.compile(fwd), n, args))
    if "jax" in peers:
        jax_mod, why = try_import("jax")
        if jax_mod is None:
            results.append({"impl": "jax.jit(jax.vjp)", "error": why})
        else:
            record("jax.jit(jax.vjp)", *jax_runner(cell, args))
    args.clear()   # free the inputs before empty_cache (closures share the list)
    if torch is not None:
        torch.cuda.empty_cache()
    return {"cell": cell, "B": B, "H": H, "bytes": moved, "flops": flops,
            "kernels": entry.get("kernels"), "results": results}


def markdown(device, copy_bw, cases) -> str:
    ref_bw = max(copy_bw.values())
    lines = [f"Device: {device['name']} (sm_{device['compute_capability'][0]}"
             f"{device['compute_capability'][1]}, {device['sm_count']} SMs, driver "
             f"{device['driver_version']}); measured copy bandwidth "
             + ", ".join(f"{k} {v:.0f} GB/s" for k, v in copy_bw.items()), "",
             "| case | B×H | implementation | ms | GB/s | of copy BW | GFLOP/s "
             "| max rel err vs f64 |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for c in cases:
        for r in c["results"]:
            if "error" in r:
                lines.append(f"| {c['cell']} | {c['B']}×{c['H']} | {r['impl']} | — | — | — "
                             f"| — | {r['error']} |")
                continue
            gf = f"{r['GFLOPs']:.0f}" if r.get("GFLOPs") else "—"
            lines.append(
                f"| {c['cell']} | {c['B']}×{c['H']} | {r['impl']} | {r['ms']:.3f} | "
                f"{r['GBps']:.0f} | {r['GBps'] / ref_bw:.0%} | {gf} | {r['max_rel_err']:.1e}"
                f"{'' if r['ok'] else ' FAIL'} |")
    lines += ["", "GB/s = bytes of one read of every input and one write of every output "
              "(the minimum for the computation) / time; peers move more in practice. "
              "The MLP step is matmul-bound: read its GFLOP/s (multiply-add = 2 flops), "
              "not its share of copy bandwidth."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="ferrule GPU benchmark (see module doc)")
    ap.add_argument("--artifacts", default=str(ROOT / "bench" / "artifacts"))
    ap.add_argument("--peers", default="eager,compile,jax",
                    help="comma list from eager,compile,jax ('' for none)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--check-rows", type=int, default=256)
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--only", default="", help="e.g. lstm or lstm:4096x4096")
    ap.add_argument("--copy-bytes", type=int, default=1 << 30,
                    help="buffer size for the copy-bandwidth measurement")
    ap.add_argument("--json", default="")
    ap.add_argument("--markdown", default="")
    a = ap.parse_args(argv)
    why = fc.available()
    if why:
        print(f"no CUDA driver/GPU: {why}")
        return 2
    art_dir = Path(a.artifacts)
    manifest = json.loads((art_dir / "manifest.json").read_text())
    device = fc.device_info(0)
    print(f"device: {device}")
    if torch is None:
        print(f"PyTorch peers skipped: {torch_why}")
    copy_bw = copy_bandwidth(a.copy_bytes)
    print("copy bandwidth (GB/s):", {k: round(v) for k, v in copy_bw.items()})
    peers = {p for p in a.peers.split(",") if p}
    cases = []
    for entry in manifest["benchmarks"]:
        tag = f"{entry['cell']}:{entry['B']}x{entry['H']}"
        if a.only and not tag.startswith(a.only):
            continue
        print(f"== {tag}", flush=True)
        case = bench_case(entry, art_dir, peers, a.repeat, a.check_rows, a.tol)
        for r in case["results"]:
            print("  ", json.dumps(r))
        cases.append(case)
    table = markdown(device, copy_bw, cases)
    print(table)
    report = {"device": device, "copy_bandwidth_GBps": copy_bw, "cases": cases,
              "target": manifest.get("target")}
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    if a.markdown:
        Path(a.markdown).write_text(table + "\n")
    bad = [r for c in cases for r in c["results"]     # misaligned runs must be right too
           if r["impl"].startswith("ferrule") and not r.get("ok")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
