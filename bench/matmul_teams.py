"""Matmuls on a team of threads inside compiled code against one thread.

For each shape M×K×N (float32) and each team size, the median time of a
jitted ``a @ b`` (fresh output each call), and the team's speed-up over
``team_threads=1``; then the char-LSTM training step (bench/char_lstm.py)
the same way. The first lines say how the team's idle threads wait
(``OMP_WAIT_POLICY``) and the machine's load: teams only pay off when the
cores are free.

    python bench/matmul_teams.py [--repeat 50] [--skip-step]
"""

import argparse
import os
import sys
import time

import numpy as np

import ferrule
from ferrule.runtime import cpu
from ferrule.runtime.cpu import codegen

SHAPES = [(32, 256, 128), (32, 256, 512), (32, 256, 1024), (32, 1024, 256), (256, 32, 1024),
          (256, 1024, 1024), (1024, 1024, 1024)]


def median_time(f, args, repeat):
    f(*args)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f(*args)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--skip-step", action="store_true", help="matmuls only")
    a = p.parse_args()
    threads = cpu.CpuOptions().resolved().threads
    policy = os.environ.get("OMP_WAIT_POLICY") or (
        f"unset, GOMP_SPINCOUNT={os.environ['GOMP_SPINCOUNT']}" if "GOMP_SPINCOUNT" in os.environ
        else f"unset, GOMP_SPINCOUNT={codegen.TEAM_SPIN_COUNT} (ferrule's default)")
    print(f"libgomp: {codegen.openmp_runtime()}, OMP_WAIT_POLICY={policy}, {threads} threads, "
          f"load average {os.getloadavg()[0]:.2f}")
    rng = np.random.default_rng(0)
    print(f"{'M×K×N':>16} {'1 thread µs':>12} {f'team of {threads} µs':>16} {'speed-up':>9}")
    for m, k, n in SHAPES:
        args = (rng.standard_normal((m, k)).astype(np.float32),
                rng.standard_normal((k, n)).astype(np.float32))
        t = {}
        for team in (1, threads):
            with cpu.using(team_threads=team, split_min_elements=1 << 40):
                t[team] = median_time(ferrule.jit(lambda a, b: a @ b), args, a.repeat)
        print(f"{f'{m}×{k}×{n}':>16} {1e6 * t[1]:>12.1f} {1e6 * t[threads]:>16.1f} "
              f"{t[1] / t[threads]:>9.2f}")
    if a.skip_step:
        return
    sys.path.insert(0, os.path.dirname(__file__))
    import char_lstm
    params, xs, ys = char_lstm.make_problem(32, 32, 64, 256, 96)
    t = {}
    for team in (1, threads):
        with cpu.using(team_threads=team):
            step = char_lstm.ferrule_step(32, 32, 64, 256, 96)
            t[team] = median_time(lambda: step(params, xs, ys), (), max(5, a.repeat // 5))
    print(f"char-LSTM step (T=32 B=32 H=256): 1 thread {1e3 * t[1]:.2f} ms, team of {threads} "
          f"{1e3 * t[threads]:.2f} ms, speed-up {t[1] / t[threads]:.2f}")


if __name__ == "__main__":
    main()
