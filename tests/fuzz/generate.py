"""Random ferrule programs from a seed (the model: Csmith, YARPGen).

:func:`generate` builds a random DAG of documented ops as Python source —
values used several times (fan-out), broadcasting between shapes such as
``(B, H)``, ``(H,)``, ``(B, 1)``, ``()``, reductions with axes and
``keepdims``, matmuls (batched too), transposes, slices with steps,
``split``/``concatenate``, ``where`` with comparisons, ``astype`` (float32
programs), a custom primitive whose rrule calls ``frule_via_ad`` — and the
inputs to run it on. Inputs are drawn where every op is smooth enough for
finite differences (logs and square roots only of ``1 + v*v``-shaped
values, divisions by ``1 + v*v``); kinks (``abs``, ``relu``,
``maximum``, ``where``) are in, but ties within a finite-difference step
are unlikely at random points, and a mismatch is re-checked before it is
called wrong (check.py).

Deterministic per seed: ``generate(s)`` is the same program on every
machine and every run.
"""

import random
import re
from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np

Shape = Tuple[int, ...]


@dataclass
class Program:
    seed: int
    dtype: str                      # "float64" or "float32"
    source: str                     # defines ``f(x0, x1, ...)`` returning a tuple
    shapes: List[Shape]
    ranges: List[Tuple[float, float]] = field(default_factory=list)

    def inputs(self, rng: np.random.Generator):
        """Input arrays (this program's dtype) drawn from its ranges."""
        return [rng.uniform(lo, hi, s).astype(self.dtype) for s, (lo, hi) in
                zip(self.shapes, self.ranges)]


# op -> (weight, arity); the expression templates are in _emit.
UNARY = {"tanh": 4, "sin": 2, "cos": 2, "sigmoid": 3, "softplus": 2, "exp_tanh": 2,
         "log1p_sq": 2, "sqrt_1p_sq": 2, "square": 2, "neg": 1, "cube": 1, "abs": 1,
         "relu": 1, "rule": 2, "scale": 3, "shift": 2}
BINARY = {"add": 5, "sub": 3, "mul": 5, "div": 2, "maximum": 1, "where": 2}
STRUCT = {"reduce": 4, "matmul": 4, "transpose": 2, "slice": 2, "split": 2, "concat": 2,
          "stack_matmul": 1, "astype": 2}

_UNARY_SRC = {
    "tanh": "N.tanh({a})", "sin": "N.sin({a})", "cos": "N.cos({a})",
    "sigmoid": "nn.sigmoid({a})", "softplus": "nn.softplus({a})",
    "exp_tanh": "N.exp(N.tanh({a}))", "log1p_sq": "N.log1p({a} * {a})",
    "sqrt_1p_sq": "N.sqrt(1.0 + {a} * {a})", "square": "N.square({a})", "neg": "-{a}",
    "cube": "{a} ** 3", "abs": "N.abs({a})", "relu": "nn.relu({a})", "rule": "R.fz_rule({a})",
}
_BINARY_SRC = {
    "add": "{a} + {b}", "sub": "{a} - {b}", "mul": "{a} * {b}",
    "div": "{a} / (1.0 + {b} * {b})", "maximum": "N.maximum({a}, {b})",
    "where": "N.where({a} > {b}, {a}, {b} * 0.5)",
}


def _pick(r: random.Random, table) -> str:
    names = list(table)
    return r.choices(names, weights=[table[n] for n in names])[0]


class _Builder:
    def __init__(self, seed: int):
        self.r = random.Random(seed)
        self.seed = seed
        self.dtype = "float64" if self.r.random() < 0.7 else "float32"
        self.B, self.H = self.r.randint(1, 4), self.r.randint(1, 5)
        self.lines: List[str] = []
        self.vals: List[Tuple[str, Shape]] = []
        self.uses = {}

    def shape_choices(self) -> List[Shape]:
        B, H = self.B, self.H
        return [(B, H), (B, H), (H,), (B, 1), (1, H), (), (H, B), (2 * B, H), (B, 2 * H)]

    def value(self, prefer_recent=True) -> Tuple[str, Shape]:
        k = len(self.vals)
        # fan-out: older values come back; recent ones are likelier
        i = min(int(self.r.expovariate(0.5)), k - 1) if prefer_recent else self.r.randrange(k)
        name, shape = self.vals[k - 1 - i]
        self.uses[name] = self.uses.get(name, 0) + 1
        return name, shape

    def add(self, expr: str) -> None:
        shape = _shape_of(expr, self.vals, self.dtype)
        if shape is None:
            return
        if int(np.prod(shape, dtype=np.int64)) > 4096:
            return
        name = f"v{len(self.vals)}"
        self.lines.append(f"    {name} = {expr}")
        self.vals.append((name, shape))

    def step(self) -> None:
        r = self.r
        kind = r.choices(["unary", "binary", "struct"], weights=[5, 5, 4])[0]
        if kind == "unary":
            op = _pick(r, UNARY)
            a, _ = self.value()
            if op == "scale":
                self.add(f"{a} * {r.choice([0.5, -1.5, 2.0, 0.25])}")
            elif op == "shift":
                self.add(f"{a} + {r.choice([0.5, -1.0, 2.0])}")
            else:
                self.add(_UNARY_SRC[op].format(a=a))
            return
        if kind == "binary":
            op = _pick(r, BINARY)
            (a, sa), (b, sb) = self.value(), self.value(prefer_recent=False)
            try:
                np.broadcast_shapes(sa, sb)
            except ValueError:
                b = f"N.reshape(N.sum({b}), ())" if r.random() < 0.5 else f"N.mean({b})"
            if r.random() < 0.5:
                a, b = b, a
            self.add(_BINARY_SRC[op].format(a=a, b=b))
            return
        op = _pick(r, STRUCT)
        a, sa = self.value()
        nd = len(sa)
        if op == "reduce":
            fn = r.choice(["sum", "sum", "mean", "max"])
            if nd == 0 or r.random() < 0.2:
                self.add(f"N.{fn}({a})")
            else:
                self.add(f"N.{fn}({a}, axis={r.randrange(-nd, nd)}, keepdims={r.random() < 0.5})")
        elif op == "matmul":
            cands = [(b, sb) for b, sb in self.vals if nd >= 1 and len(sb) >= 1 and
                     sb[-2 if len(sb) >= 2 else 0] == sa[-1] and len(sa) + len(sb) >= 3]
            cands_t = [(b, sb) for b, sb in self.vals if nd >= 1 and len(sb) == 2
                       and sb[-1] == sa[-1]]
            if cands and (not cands_t or r.random() < 0.5):
                b, _ = r.choice(cands)
                self.add(f"{a} @ {b}")
            elif cands_t:
                b, _ = r.choice(cands_t)
                self.add(f"N.matmul({a}, {b}.T)")
        elif op == "stack_matmul":     # a batch of matrices: batch_matmul, with broadcasting
            if nd == 2:
                b, sb = self.value(prefer_recent=False)
                if sb == sa:
                    right = f"N.swapaxes(N.stack([{a}, {b}]), -1, -2)" if r.random() < 0.5 \
                        else f"{a}.T"
                    self.add(f"N.stack([{a}, {b}]) @ {right}")
        elif op == "transpose" and nd >= 2:
            self.add(f"{a}.T" if nd == 2 else f"N.swapaxes({a}, 0, -1)")
        elif op == "slice" and nd >= 1:
            ax = r.randrange(nd)
            n = sa[ax]
            if n >= 2:
                sl = r.choice([f"1:", f":{n - 1}", "::2", f"1::2", f"{n // 2}:"])
                idx = ", ".join([":"] * ax + [sl])
                self.add(f"{a}[{idx}]")
        elif op == "split" and nd >= 1:
            ax = r.randrange(nd)
            parts = [k for k in (2, 3) if sa[ax] % k == 0 and sa[ax] >= k]
            if parts:
                k = r.choice(parts)
                self.add(f"N.split({a}, {k}, axis={ax})[{r.randrange(k)}]")
        elif op == "concat" and nd >= 1:
            ax = r.randrange(nd)
            cands = [b for b, sb in self.vals if len(sb) == nd and all(
                sb[d] == sa[d] for d in range(nd) if d != ax)]
            b = r.choice(cands)
            order = [a, b] if r.random() < 0.5 else [b, a]
            self.add(f"N.concatenate([{', '.join(order)}], axis={ax})")
        elif op == "astype" and self.dtype == "float32":
            self.add(f"({a}.astype(N.float64) * 1.5).astype(N.float32)")

    def build(self) -> Program:
        r = self.r
        n_in = r.randint(1, 3)
        shapes = [r.choice(self.shape_choices()) for _ in range(n_in)]
        ranges = []
        for k, s in enumerate(shapes):
            self.vals.append((f"x{k}", s))
            lo = r.choice([-2.0, -1.0, 0.2])
            ranges.append((lo, lo + r.choice([1.0, 2.0, 3.0])))
        for _ in range(r.randint(3, 14)):
            self.step()
        # the results: the values nothing else reads (the DAG's sinks), the
        # last three of them, so that little of the program is dead code
        body = "\n".join(self.lines)
        sinks = [n for n, _ in self.vals[n_in:]
                 if not re.search(rf"\b{n}\b", body.split(f"    {n} = ", 1)[1].split("\n", 1)[-1]
                                  if f"    {n} = " in body else "")]
        outs = sinks[-3:] or [self.vals[-1][0]]
        args = ", ".join(f"x{k}" for k in range(n_in))
        src = "\n".join([f"def f({args}):", *self.lines, f"    return ({', '.join(outs)},)", ""])
        return Program(self.seed, self.dtype, src, shapes, ranges)


def _shape_of(expr: str, vals, dtype: str):
    """The shape of ``expr`` evaluated on arrays of the values' shapes (plain
    numpy through ferrule's eager ops), or None where it does not apply."""
    import ferrule.numpy as N
    from ferrule import nn
    import fuzz_rules as R
    env = {"N": N, "nn": nn, "R": R}
    for name, shape in vals:
        env[name] = np.full(shape, 0.5, dtype)
    try:
        with np.errstate(all="ignore"):
            out = eval(expr, env)
    except Exception:
        return None
    return tuple(np.shape(out))


def generate(seed: int) -> Program:
    """The program of ``seed`` (deterministic)."""
    return _Builder(seed).build()


if __name__ == "__main__":
    import sys
    sys.path.insert(0, __import__("os").path.dirname(__file__))
    for s in sys.argv[1:] or ["0"]:
        p = generate(int(s))
        print(f"# seed {p.seed}, {p.dtype}, inputs {p.shapes} in {p.ranges}\n{p.source}")
