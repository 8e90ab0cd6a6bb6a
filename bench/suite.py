"""ferrule's benchmark suite: ferrule against its peers on the CPU, each
contender in its own process, one run, medians, ratios.

Workloads (float32; bench/suite_workloads.py), each forward + backward
(``vjp`` and its pullback, every cotangent returned):

  LSTM cell      gates G (B, 4H), cell c (B, H)             -> h, c2, dG, dc
  GRU cell       PyTorch's convention: gi, gh (B, 3H), h     -> h', dgi, dgh, dh
  10-op chain    x (B, H)                                    -> y, dx
  at each size B x H of --sizes; then the full LSTM step with its two
  matmuls (x @ Wx + h @ Wh + b, then the cell; all six cotangents) at
  --step-size, and a trivial call (x + 1.0 on 4 elements, no AD): the
  per-call overhead.

Contenders (bench/suite_contenders.py): ferrule (jit of vjp), JAX
jit(vjp), torch.compile(torch.func.vjp), PyTorch eager autograd, and
hand-fused numpy (bench/suite_numpy.py); one that is not installed is
skipped with a printed line. Every contender allocates its results on
each call (as users call it); ferrule's time with preallocated out=
arrays is shown beside it, labelled. Before it is timed, each result is
checked against a float64 numpy reference (a wrong answer fails the run:
exit status 1, no table).

The bandwidth bound of a row is the measured time of a numpy copy of as
many bytes as the workload must read and write (inputs and outputs once),
on one thread or split over every CPU, whichever is faster
(bench/suite_timing.py).

Prints a markdown table (also written to --out) with ferrule / best
peer, and draws time against size, log-log, one line per contender and
the bound dashed (--plot; needs matplotlib, the `examples` extra).

    python bench/suite.py                    # 64x256 .. 4096x4096; several minutes
    python bench/suite.py --quick            # 64x256 only, few repeats: under a minute
    python bench/suite.py --sizes 1024x2048 --contenders ferrule,torch.compile
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite_contenders import CONTENDERS, describe, prepare  # noqa: E402
from suite_timing import copy_bound, median_seconds, usable_cpus  # noqa: E402
from suite_workloads import SWEPT, WORKLOADS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FULL = {"sizes": "64x256,256x1024,1024x2048,4096x4096", "step_size": "256x1024",
        "repeat": 20, "budget": 5.0}
QUICK = {"sizes": "64x256", "step_size": "64x256", "repeat": 5, "budget": 0.3}
TOLERANCE = 1e-4
"""Largest accepted max|got - ref| / (1 + max|ref|) against float64: float32
rounding gives ~1e-7 on the cells and ~1e-6 on the matmul step; a wrong
derivative gives O(1)."""


def _size(s):
    B, H = (int(v) for v in s.lower().split("x"))
    return B, H


def cases(a):
    """``(workload, B, H)`` in run order: the sweep, the matmul step, the trivial call."""
    out = [(w, *_size(s)) for s in a.sizes.split(",") for w in SWEPT]
    return out + [("lstm_step", *_size(a.step_size)), ("add_one", 1, 4)]


# -- in a child process: one contender, or the bandwidth bound --------------------------

def run_child(name, a):
    """Time every case for one contender; the result as a dict for JSON."""
    try:
        info = describe(name) if name != "bound" else f"{usable_cpus()} CPUs"
    except ImportError as e:
        return {"name": name, "skipped": f"{e.name} is not installed"}
    rows = []
    for wl, B, H in cases(a):
        w = WORKLOADS[wl]
        if name == "bound":
            if wl != "add_one":
                s, how = copy_bound(w.bytes_moved(B, H), a.repeat, a.budget)
                rows.append({"workload": wl, "B": B, "H": H, "ms": 1e3 * s, "how": how,
                             "bytes": w.bytes_moved(B, H)})
            continue
        args = w.inputs(B, H)
        t = time.perf_counter()
        p = prepare(name, w, args)
        result = p["call"]()
        first = time.perf_counter() - t
        err = w.max_error(args, p["fetch"](result))
        del result
        row = {"workload": wl, "B": B, "H": H, "err": err, "first_call_s": first}
        if not err <= TOLERANCE:          # (NaN fails too)
            row["wrong"] = f"max error {err:.2e} against float64 > {TOLERANCE:.0e}"
            rows.append(row)
            print(f"  {name:14} {w.label} {B}x{H}: WRONG ANSWER ({row['wrong']})", flush=True)
            return {"name": name, "info": info, "rows": rows}
        row["ms"] = 1e3 * median_seconds(p["call"], a.repeat, a.budget)
        if "call_out" in p:
            err_out = w.max_error(args, p["fetch"](p["call_out"]()))
            if not err_out <= TOLERANCE:
                row["wrong"] = f"out=: max error {err_out:.2e} against float64"
                rows.append(row)
                return {"name": name, "info": info, "rows": rows}
            row["out_ms"] = 1e3 * median_seconds(p["call_out"], a.repeat, a.budget)
        rows.append(row)
        extra = f", out= {row['out_ms']:.3f} ms" if "out_ms" in row else ""
        print(f"  {name:14} {w.label} {B}x{H}: {row['ms']:.3f} ms{extra} (err {err:.0e})",
              flush=True)
    return {"name": name, "info": info, "rows": rows}


# -- the driver -----------------------------------------------------------------------

def _machine():
    model = ""
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                     if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.node()}: {usable_cpus()} CPUs {model}".rstrip()


def run_all(a):
    """Run the bound and every contender, each in a child process; returns
    their results (a list of dicts) and the failures (a list of lines)."""
    results, failures = [], []
    with tempfile.TemporaryDirectory() as d:
        for name in ["bound", *a.contenders]:
            js = os.path.join(d, "result.json")
            cmd = [sys.executable, __file__, "--child", name, "--json", js,
                   "--sizes", a.sizes, "--step-size", a.step_size,
                   "--repeat", str(a.repeat), "--budget", str(a.budget)]
            print(f"[{name}]", flush=True)
            proc = subprocess.run(cmd, cwd=ROOT)     # its progress lines go to our stdout
            if not os.path.exists(js):
                failures.append(f"{name}: exited with status {proc.returncode} and no result")
                continue
            with open(js) as fh:
                res = json.load(fh)
            os.remove(js)
            if "skipped" in res:
                print(f"  {name}: skipped, {res['skipped']}", flush=True)
            failures += [f"{name} {r['workload']} {r['B']}x{r['H']}: {r['wrong']}"
                         for r in res.get("rows", ()) if "wrong" in r]
            if proc.returncode != 0 and "skipped" not in res:
                failures.append(f"{name}: exited with status {proc.returncode}")
            results.append(res)
    return results, failures


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--quick", action="store_true",
                   help=f"sizes {QUICK['sizes']}, step {QUICK['step_size']}, "
                        f"{QUICK['repeat']} repeats (the other options still win)")
    p.add_argument("--sizes", help=f"B x H of the sweep, comma-separated (default {FULL['sizes']})")
    p.add_argument("--step-size", help=f"B x H of the LSTM step (default {FULL['step_size']})")
    p.add_argument("--repeat", type=int, help=f"samples per median (default {FULL['repeat']})")
    p.add_argument("--budget", type=float,
                   help=f"seconds of sampling per case before stopping at 3+ samples "
                        f"(default {FULL['budget']})")
    p.add_argument("--contenders", default=",".join(CONTENDERS),
                   help=f"comma-separated subset of {','.join(CONTENDERS)}")
    p.add_argument("--out", help="markdown file to write (default build/bench/suite-<host>.md)")
    p.add_argument("--plot", help="PNG to draw (default: --out with .png)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--json", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    for k, v in (QUICK if a.quick else FULL).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.contenders = [c.strip() for c in a.contenders.split(",") if c.strip()]
    unknown = [c for c in a.contenders if c not in CONTENDERS]
    if unknown:
        p.error(f"unknown contenders {unknown}; choose from {', '.join(CONTENDERS)}")
    if a.child:
        res = run_child(a.child, a)
        with open(a.json, "w") as fh:
            json.dump(res, fh)
        sys.exit(1 if any("wrong" in r for r in res.get("rows", ())) else 0)

    from suite_report import markdown, plot   # the driver only: the children need neither
    load0, started = os.getloadavg(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"ferrule bench suite, {started}, {_machine()}; load average {load0[0]:.1f}\n"
          f"each contender in its own process; fresh outputs; medians of up to {a.repeat}",
          flush=True)
    results, failures = run_all(a)
    if failures:
        print("\nFAILED — wrong or missing results, no table written:\n  "
              + "\n  ".join(failures), flush=True)
        sys.exit(1)
    load1 = os.getloadavg()
    meta = {"started": started, "machine": _machine(), "load": (load0[0], load1[0]),
            "repeat": a.repeat}
    table = markdown(results, meta)
    print("\n" + table)
    out = Path(a.out) if a.out else ROOT / "build" / "bench" / f"suite-{platform.node()}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    print(f"table written to {out}")
    png = Path(a.plot) if a.plot else out.with_suffix(".png")
    print(plot(results, png))


if __name__ == "__main__":
    main()
