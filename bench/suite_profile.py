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
  no-op kernel     (one-thread functions) the user call with the kernel
                   replaced by a C no-op: the Python and ctypes part alone
  1 / 2 threads    the user call (out=) with row splitting off, and forced on
                   (split_min_elements=0): the thread hand-off's cost or gain

with the minor page faults per call (getrusage) of the fresh and out=
calls, the bandwidth bound (bench/suite_timing.py), and the trivial call
(x + 1.0 on 4 elements) as the floor of a call's overhead. Each figure is
given as the median wall time and the median CPU time of the process
(all its threads): on a loaded machine the CPU time of one-thread code is
the steadier of the two.

--heap-only first makes glibc's malloc serve every size from the heap and
keep what is freed (M_MMAP_MAX=0, M_TRIM_THRESHOLD=1 GiB): what fresh
outputs cost when their pages are reused instead of faulted in again.

    python bench/suite_profile.py [--sizes 64x256,1024x2048] [--workloads lstm,gru]
"""

import argparse
import ctypes
import dataclasses
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite_contenders import prepare  # noqa: E402
from suite_timing import copy_bound, median_seconds  # noqa: E402
from suite_workloads import WORKLOADS  # noqa: E402


def _wall_and_cpu(call, repeat, budget):
    """(median wall seconds, median CPU seconds of this process) per call."""
    cpu = []

    def timed():
        t = time.process_time()
        call()
        cpu.append(time.process_time() - t)
    wall = median_seconds(timed, repeat, budget)
    return wall, float(np.median(cpu[2:]))    # (the untimed warm-up calls dropped)


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
    argv = fn._argv([*args, *buf])
    slot = oom.thread_slot()
    return lambda: fn._cfunc(slot, ctypes.addressof(argv))


def _python_overhead(jitted, fn, args, buf, repeat, budget):
    """The same calls with the kernel replaced by a C no-op taking the same
    arguments: libc's ``strlen`` of the first argument, this thread's
    jmp_buf slot, which holds NULL between calls, so it returns 0 ("no
    allocation failed"); extra arguments are harmless in the x86-64 and
    AArch64 C conventions. What is left is Python — jit dispatch, argument
    checks, output allocation, descriptors — and ctypes' argument
    conversion, which is also timed alone."""
    from ferrule.runtime.cpu import oom
    addr = ctypes.cast(ctypes.CDLL(None).strlen, ctypes.c_void_p).value
    noop = ctypes.CFUNCTYPE(ctypes.c_int32, *fn._cfunc.argtypes)(addr)
    argv = fn._argv([*args, *buf])
    slot = oom.thread_slot()
    t = lambda call: _wall_and_cpu(call, repeat, budget)           # noqa: E731
    # The user's call path as it is (the native trampoline reading the data
    # pointers, when available), with the no-op as the compiled entry.
    real_entry, real_cfunc = fn._entry, fn._cfunc
    fn._entry, fn._cfunc = addr, noop
    try:
        return {"no-op kernel: user call": t(lambda: jitted(*args)),
                "no-op kernel: out=": t(lambda: jitted(*args, out=buf)),
                "no-op kernel: ctypes": t(lambda: noop(slot, ctypes.addressof(argv)))}
    finally:
        fn._entry, fn._cfunc = real_entry, real_cfunc


def profile(wl, B, H, repeat, budget):
    """``{measure: seconds or faults}`` for one workload and size."""
    from ferrule.runtime.cpu import options
    w = WORKLOADS[wl]
    args = w.inputs(B, H)
    p = prepare("ferrule", w, args)           # the jitted function, as the suite calls it
    res = p["call"]()
    buf = tuple(np.empty_like(o) for o in res)
    t = lambda call: _wall_and_cpu(call, repeat, budget)           # noqa: E731
    r = {"user call": t(p["call"]), "user call, out=": t(p["call_out"]),
         "faults/call": _faults(p["call"]), "faults/call, out=": _faults(p["call_out"])}
    jitted = p["jitted"]
    low = jitted.lower(*args)
    fn = low.compile(options.defaults())
    r["compiled fn"] = t(lambda: fn(*args))
    r["compiled fn, out="] = t(lambda: fn(*args, out=buf))
    r["threads"] = getattr(fn, "threads", 1)
    if hasattr(fn, "_cfunc"):                  # one thread: the Python part alone
        r.update(_python_overhead(jitted, fn, args, buf, repeat, budget))
    one = low.compile(dataclasses.replace(options.defaults(), threads=1))
    r["native, 1 thread"] = t(_native(one, args, buf))
    r["1 thread, out="] = t(lambda: one(*args, out=buf))
    split = low.compile(dataclasses.replace(options.defaults(), split_min_elements=0))
    r["split threads"] = getattr(split, "threads", 1)
    r["split, out="] = t(lambda: split(*args, out=buf))
    r["bound"] = (copy_bound(w.bytes_moved(B, H), repeat, budget)[0], float("nan"))
    return r


def heap_only() -> None:
    """Every allocation from the heap, freed memory kept (see the docstring)."""
    mallopt = ctypes.CDLL(None).mallopt
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    assert mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, 1 << 30)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="64x256,1024x2048")
    p.add_argument("--workloads", default="lstm,gru")
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--budget", type=float, default=3.0)
    p.add_argument("--heap-only", action="store_true",
                   help="malloc from the heap only, keeping freed memory")
    a = p.parse_args()
    if a.heap_only:
        import ferrule  # noqa: F401  (its own mallopt first, so that ours wins)
        from ferrule.runtime.cpu.compile import keep_freed_pages
        keep_freed_pages()
        heap_only()
    triv = prepare("ferrule", WORKLOADS["add_one"], WORKLOADS["add_one"].inputs(1, 4))
    wall, cpu = _wall_and_cpu(triv["call"], a.repeat, a.budget)
    print(f"trivial call (x + 1.0, 4 elements): {1e6 * wall:.1f} us wall, {1e6 * cpu:.1f} us CPU")
    for s in a.sizes.split(","):
        B, H = (int(v) for v in s.split("x"))
        for wl in a.workloads.split(","):
            r = profile(wl, B, H, a.repeat, a.budget)
            print(f"\n{WORKLOADS[wl].label} {B}x{H}: default {r['threads']} thread(s), "
                  f"forced split {r['split threads']}; us per call, wall and CPU")
            for k, v in r.items():
                if isinstance(v, tuple):
                    print(f"  {k:22} {1e6 * v[0]:10.1f} {1e6 * v[1]:10.1f}")
            print(f"  {'faults/call':22} {r['faults/call']:10.1f}   "
                  f"out=: {r['faults/call, out=']:.1f}")


if __name__ == "__main__":
    main()
