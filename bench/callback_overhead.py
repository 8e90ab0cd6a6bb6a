"""What a host callback (ferrule.pure_callback) costs per call.

Three jitted functions of a float64 array of n elements, each timed as the
median over many calls:

* ``x + 1`` — no callback (the jitted call's own overhead);
* ``cb(x) + 1`` with ``cb = lambda x: x`` — one callback per call;
* ten callbacks in a chain inside one compiled function.

The cost of one callback is (ten - none) / 10: the native -> Python -> native
round trip (the GIL taken, the buffers wrapped as numpy arrays, the result
checked and copied back), without the jitted call's own overhead. With
``--jax``, ``jax.pure_callback`` under ``jax.jit`` is timed the same way.

    python bench/callback_overhead.py [--sizes 4,1000,1000000] [--repeat 2000] [--jax]
"""

import argparse
import time

import numpy as np

import ferrule


def median_us(fn, x, repeat):
    fn(x)
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn(x)
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e6


def ferrule_fns(n):
    sd = ferrule.ShapeDtype((n,), np.float64)
    ident = lambda x: x

    def chain(k):
        def f(x):
            for _ in range(k):
                x = ferrule.pure_callback(ident, sd, x) + 1.0
            return x
        return ferrule.jit(f)
    return ferrule.jit(lambda x: x + 1.0), chain(1), chain(10)


def jax_fns(n):
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    sd = jax.ShapeDtypeStruct((n,), jnp.float64)
    ident = lambda x: x

    def chain(k):
        def f(x):
            for _ in range(k):
                x = jax.pure_callback(ident, sd, x) + 1.0
            return x
        jf = jax.jit(f)
        return lambda x: jf(x).block_until_ready()
    plain = jax.jit(lambda x: x + 1.0)
    return (lambda x: plain(x).block_until_ready()), chain(1), chain(10)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="4,1000,1000000")
    p.add_argument("--repeat", type=int, default=2000)
    p.add_argument("--jax", action="store_true", help="also time jax.pure_callback")
    args = p.parse_args()
    makers = [("ferrule", ferrule_fns)] + ([("jax", jax_fns)] if args.jax else [])
    print(f"{'':8}{'n':>9}{'no callback':>14}{'1 callback':>13}{'10 callbacks':>15}"
          f"{'per callback':>15}")
    for n in [int(s) for s in args.sizes.split(",")]:
        x = np.random.default_rng(0).standard_normal(n)
        repeat = max(20, args.repeat // max(1, n // 10000))
        for name, make in makers:
            none, one, ten = make(n)
            t0, t1, t10 = (median_us(f, x, repeat) for f in (none, one, ten))
            print(f"{name:8}{n:>9}{t0:>12.1f}us{t1:>11.1f}us{t10:>13.1f}us"
                  f"{(t10 - t0) / 10:>13.1f}us")


if __name__ == "__main__":
    main()
