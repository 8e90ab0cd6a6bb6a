"""Where one ferrule call's time goes, for the suite's workloads at a few
sizes (docs/performance.md, "Where a call's time goes").

For each workload and size, in this one process, medians of:

  user call        f(*args): jit dispatch + runtime + kernel, fresh outputs
  user call, out=  f(*args, out=buf): preallocated outputs (mapped pages)
  compiled fn      the compiled function called directly (no jit dispatch),
                   fresh outputs and with out=
  native, 1 thread the kernel alone: the native entry point called with
                   prebuilt descriptors into preallocated outputs, compiled
                   for one thread (no Python, no allocation)
  1 / 2 threads    the user call (out=) with row splitting off, and forced on
                   (split_min_elements=0): the thread hand-off's cost or gain

with the minor page faults per call (getrusage) of the fresh and out=
calls, the bandwidth bound (bench/suite_timing.py), and the trivial call
(x + 1.0 on 4 elements) as the floor of a call's overhead.

    python bench/suite_profile.py [--sizes 64x256,1024x2048] [--workloads lstm,gru]
"""

import argparse
import dataclasses
import resource
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite_contenders import prepare  # noqa: E402
from suite_timing import copy_bound, median_seconds  # noqa: E402
from suite_workloads import WORKLOADS  # noqa: E402


def _faults(call, n=20) -> float:
    """Minor page faults per call (the process's, averaged over n calls)."""
    call()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        call()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / n


def _native(fn, args, buf):
    """The one-thread compiled function's native entry, with its descriptors
    built once: the kernel's time without Python or allocation."""
    from ferrule.runtime.cpu import oom
    desc = []
    for a in [*args, *buf]:
        desc += fn._descriptor(a)
    slot = oom.thread_slot()
    return lambda: fn._cfunc(slot, *desc)


def profile(wl, B, H, repeat, budget):
    """``{measure: seconds or faults}`` for one workload and size."""
    from ferrule.runtime.cpu import options
    w = WORKLOADS[wl]
    args = w.inputs(B, H)
    p = prepare("ferrule", w, args)           # the jitted function, as the suite calls it
    res = p["call"]()
    buf = tuple(np.empty_like(o) for o in res)
    t = lambda call: median_seconds(call, repeat, budget)          # noqa: E731
    r = {"user call": t(p["call"]), "user call, out=": t(p["call_out"]),
         "faults/call": _faults(p["call"]), "faults/call, out=": _faults(p["call_out"])}
    jitted = p["jitted"]
    low = jitted.lower(*args)
    fn = low.compile(options.defaults())
    r["compiled fn"] = t(lambda: fn(*args))
    r["compiled fn, out="] = t(lambda: fn(*args, out=buf))
    r["threads"] = getattr(fn, "threads", 1)
    one = low.compile(dataclasses.replace(options.defaults(), threads=1))
    r["native, 1 thread"] = t(_native(one, args, buf))
    r["1 thread, out="] = t(lambda: one(*args, out=buf))
    split = low.compile(dataclasses.replace(options.defaults(), split_min_elements=0))
    r["split threads"] = getattr(split, "threads", 1)
    r["split, out="] = t(lambda: split(*args, out=buf))
    r["bound"] = copy_bound(w.bytes_moved(B, H), repeat, budget)[0]
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="64x256,1024x2048")
    p.add_argument("--workloads", default="lstm,gru")
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--budget", type=float, default=3.0)
    a = p.parse_args()
    triv = prepare("ferrule", WORKLOADS["add_one"], WORKLOADS["add_one"].inputs(1, 4))
    print(f"trivial call (x + 1.0, 4 elements): "
          f"{1e6 * median_seconds(triv['call'], a.repeat, a.budget):.1f} us")
    for s in a.sizes.split(","):
        B, H = (int(v) for v in s.split("x"))
        for wl in a.workloads.split(","):
            r = profile(wl, B, H, a.repeat, a.budget)
            us = {k: 1e6 * v for k, v in r.items() if not k.startswith(("faults", "threads",
                                                                         "split threads"))}
            print(f"\n{WORKLOADS[wl].label} {B}x{H}: default {r['threads']} thread(s), "
                  f"forced split {r['split threads']}")
            for k, v in us.items():
                print(f"  {k:22} {v:10.1f} us")
            print(f"  {'faults/call':22} {r['faults/call']:10.1f}   "
                  f"out=: {r['faults/call, out=']:.1f}")


if __name__ == "__main__":
    main()
