"""Timing for ``bench/suite.py``: the median of a call, and the measured
bandwidth bound (the time to copy as many bytes as a workload moves).
"""

import gc
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def median_seconds(call, repeat: int, budget_s: float, stat=np.median) -> float:
    """The median (or ``stat``) time of one ``call()``, over up to ``repeat``
    samples.

    The first call is not timed (caches, lazy compilation). A sample times
    enough back-to-back calls to last ~2 ms (one call for anything slower),
    so microsecond calls are not dominated by the clock; sampling stops
    after ``budget_s`` seconds once there are 3 samples."""
    call()
    t = time.perf_counter()
    call()
    once = time.perf_counter() - t
    inner = max(1, min(20000, int(2e-3 / max(once, 1e-9))))
    gc.collect()
    samples, start = [], time.perf_counter()
    while len(samples) < repeat and (len(samples) < 3 or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        for _ in range(inner):
            call()
        samples.append((time.perf_counter() - t) / inner)
    return float(stat(samples))


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def copy_bound(nbytes: int, repeat: int, budget_s: float):
    """``(seconds, how)``: the measured time to move ``nbytes`` through
    memory — a copy of ``nbytes / 2`` into a preallocated, already mapped
    array (each byte read once and written once), on one thread and split
    over every usable CPU (numpy releases the GIL while it copies), the
    faster of the two, and the fastest sample of each (a bound is what the
    machine can do, not what it usually does under load). A kernel that
    reads its inputs and writes its outputs once each cannot beat it by
    much; small sizes are measured in cache, as the kernels run."""
    n = max(1, nbytes // 8)                        # float32 elements per side
    src = np.ones(n, np.float32)
    dst = np.zeros(n, np.float32)                  # written: its pages are mapped
    best = (median_seconds(lambda: np.copyto(dst, src), repeat, budget_s, np.min), "1 thread")
    k = usable_cpus()
    if k > 1 and n >= 4 * k:
        cuts = [n * j // k for j in range(k + 1)]
        pairs = [(dst[lo:hi], src[lo:hi]) for lo, hi in zip(cuts[:-1], cuts[1:])]
        with ThreadPoolExecutor(k) as pool:
            def split_copy():
                for f in [pool.submit(np.copyto, d, s) for d, s in pairs]:
                    f.result()
            t = median_seconds(split_copy, repeat, budget_s, np.min)
        if t < best[0]:
            best = (t, f"{k} threads")
    return best
