"""Run one random program (generate.py) under ferrule and judge it.

Every program is run forward under ``jit`` and compared with the same
source run by numpy in float64 (ferrule's ops outside a trace are plain
numpy). Then a seeded choice of further modes:

* ``grad``    — ``grad`` of ``L = sum_i <f_i(x), w_i>`` against a central
  finite difference of ``L`` (numpy, float64) along a random direction;
* ``dot``     — the dot-product test: ``<J v, w> == <v, J^T w>`` from
  ``jvp`` and ``vjp``;
* ``pullback``— ``jit(grad L)`` with ``pullback="store"`` and
  ``"recompute"`` against eager ``grad``;
* ``split``   — forward and ``grad`` with every function split over row
  chunks on 2 threads;
* ``hvp``     — ``jvp(grad L)`` against a central difference of ``grad L``
  (second order);
* ``compose`` — ``grad(jit(L))`` and ``jit(grad(L))`` against eager ``grad``.

:func:`check` returns ``{"outcome": ..., "mode": ..., "detail": ...}``:
``ok``, ``wrong`` (a result outside tolerance; ``detail`` says by how
much) or ``error`` (an exception; ``detail`` names its class and message).
A wrong derivative is confirmed with a second direction and step before
it is reported, so a kink met by chance is not a false alarm.
"""

import random
import traceback

import numpy as np

import ferrule
import ferrule.numpy as N
from ferrule import nn
from ferrule.runtime import cpu

import fuzz_rules as R
from generate import Program

MODES_F64 = ("grad", "dot", "pullback", "split", "hvp", "compose")
MODES_F32 = ("grad", "dot", "split")
TOL = {"float64": 1e-9, "float32": 2e-4}
FD_TOL = {"float64": 2e-6, "float32": 3e-3}


class Wrong(Exception):
    """A result outside tolerance."""


def _compile(p: Program, reference: bool = False):
    """The program as a function; ``reference``: its float64 reference, in
    which the program's casts to float32 are casts to float64 (a float32
    rounding inside the reference would make its finite differences noise)."""
    env = {"N": N, "nn": nn, "R": R}
    exec(p.source.replace(".astype(N.float32)", ".astype(N.float64)") if reference
         else p.source, env)
    return env["f"]


def _err(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return np.inf
    if not np.all(np.isfinite(want)):
        return 0.0 if np.array_equal(np.isnan(got), np.isnan(want)) else np.inf
    return float(np.max(np.abs(got - want), initial=0.0) / (1.0 + np.max(np.abs(want), initial=0.0)))


def _close(what, got, want, tol):
    for g, w in zip(got, want):
        e = _err(g, w)
        if not e <= tol:
            raise Wrong(f"{what}: relative error {e:.3g} > {tol:g}")


def _tree_dot(a, b) -> float:
    return float(sum(np.sum(np.asarray(x, np.float64) * np.asarray(y, np.float64))
                     for x, y in zip(a, b)))


class _Run:
    def __init__(self, p: Program):
        self.p = p
        self.f = _compile(p)
        self.f64 = _compile(p, reference=True)
        rng = np.random.default_rng(p.seed)
        self.xs = p.inputs(rng)
        self.x64 = [x.astype(np.float64) for x in self.xs]
        with np.errstate(all="ignore"):
            self.ref = [np.asarray(o, np.float64) for o in self.f64(*self.x64)]
        self.ws = [rng.standard_normal(o.shape) for o in self.ref]
        self.vs = [rng.standard_normal(x.shape) for x in self.xs]
        self.tol, self.fd_tol = TOL[p.dtype], FD_TOL[p.dtype]
        self.argnums = tuple(range(len(self.xs)))

    def loss(self, *xs):
        """``L = sum_i <f_i(x), w_i>`` (ws cast to each output's dtype)."""
        outs = self.f(*xs)
        return sum(N.sum(o * w.astype(getattr(o, "dtype", np.float64)))
                   for o, w in zip(outs, self.ws))

    def loss_np(self, xs) -> float:
        with np.errstate(all="ignore"):
            return float(sum(np.sum(np.asarray(o, np.float64) * w)
                             for o, w in zip(self.f64(*xs), self.ws)))

    # -- modes -----------------------------------------------------------------
    def fwd(self):
        got = ferrule.jit(self.f)(*self.xs)
        _close("jit forward vs numpy float64", got, self.ref, self.tol)

    def _grad(self):
        g = ferrule.grad(self.loss, argnums=self.argnums)(*self.xs)
        return [np.asarray(t, np.float64) for t in g]

    def grad(self):
        g = self._grad()
        self._check_fd(g)

    def _check_fd(self, g, label="grad"):
        def fd(vs, h):
            xp = [x + h * v for x, v in zip(self.x64, vs)]
            xm = [x - h * v for x, v in zip(self.x64, vs)]
            return (self.loss_np(xp) - self.loss_np(xm)) / (2 * h)
        rng = np.random.default_rng(self.p.seed + 1)
        for attempt, h in enumerate((1e-5, 1e-6)):
            vs = self.vs if attempt == 0 else [rng.standard_normal(x.shape) for x in self.xs]
            want, got = fd(vs, h), _tree_dot(g, vs)
            e = abs(got - want) / (1.0 + abs(want))
            if e <= self.fd_tol:
                return
        raise Wrong(f"{label} vs finite differences: <g, v> = {got:.10g}, FD {want:.10g} "
                    f"(relative error {e:.3g} > {self.fd_tol:g}, two directions)")

    def dot(self):
        outs, jv = ferrule.jvp(self.f, tuple(self.xs), tuple(v.astype(self.p.dtype) for v in self.vs))
        _close("jvp primal vs numpy", outs, self.ref, self.tol)
        _, pb = ferrule.vjp(self.f, *self.xs)
        jtw = pb(tuple(w.astype(np.asarray(o).dtype) for w, o in zip(self.ws, outs)))
        lhs, rhs = _tree_dot(jv, self.ws), _tree_dot(self.vs, jtw)
        e = abs(lhs - rhs) / (1.0 + abs(lhs))
        if not e <= self.fd_tol * (1 if self.p.dtype == "float32" else 1e-3):
            raise Wrong(f"dot-product test: <Jv, w> = {lhs:.12g}, <v, J^T w> = {rhs:.12g} "
                        f"(relative error {e:.3g})")

    def pullback(self):
        want = self._grad()
        for how in ("store", "recompute"):
            got = ferrule.jit(ferrule.grad(self.loss, argnums=self.argnums), pullback=how)(*self.xs)
            _close(f"jit(grad, pullback={how!r}) vs grad", got, want, self.tol)

    def split(self):
        previous = cpu.set_defaults(cpu.CpuOptions(threads=2, split_min_elements=1,
                                                   split_min_rows_with_sums=1))
        try:
            got = ferrule.jit(self.f)(*self.xs)
            _close("split forward vs numpy", got, self.ref, self.tol)
            g = ferrule.jit(ferrule.grad(self.loss, argnums=self.argnums))(*self.xs)
        finally:
            cpu.set_defaults(previous)
        self._check_fd([np.asarray(t, np.float64) for t in g], "split grad")

    def hvp(self):
        grad_l = ferrule.grad(self.loss, argnums=self.argnums)
        _, hv = ferrule.jvp(grad_l, tuple(self.xs), tuple(self.vs))
        h = 1e-5
        gp = grad_l(*[x + h * v for x, v in zip(self.xs, self.vs)])
        gm = grad_l(*[x - h * v for x, v in zip(self.xs, self.vs)])
        fd = [(a - b) / (2 * h) for a, b in zip(gp, gm)]
        _close("jvp(grad) vs finite differences of grad", hv, fd, 1e-4)

    def compose(self):
        want = self._grad()
        a = ferrule.grad(ferrule.jit(self.loss), argnums=self.argnums)(*self.xs)
        b = ferrule.jit(ferrule.grad(self.loss, argnums=self.argnums))(*self.xs)
        _close("grad(jit(L)) vs grad", a, want, self.tol)
        _close("jit(grad(L)) vs grad", b, want, self.tol)


def modes_for(p: Program):
    """``fwd`` and two or three more, chosen by the seed."""
    r = random.Random(p.seed * 7919 + 1)
    pool = MODES_F64 if p.dtype == "float64" else MODES_F32
    return ["fwd", *r.sample(pool, k=min(len(pool), r.randint(2, 3)))]


def check(p: Program, modes=None) -> dict:
    """Run ``p`` in each mode; the first failure, or ``ok``."""
    modes = modes or modes_for(p)
    try:
        run = _Run(p)
    except Exception as e:        # the numpy reference itself failed: a generator bug
        return {"outcome": "generator", "mode": "reference",
                "detail": f"{type(e).__name__}: {e}"}
    if not all(np.all(np.isfinite(o)) for o in run.ref):
        return {"outcome": "skipped", "mode": "reference", "detail": "non-finite reference"}
    for m in modes:
        try:
            getattr(run, m)()
        except Wrong as e:
            return {"outcome": "wrong", "mode": m, "detail": str(e)}
        except Exception as e:
            tb = traceback.extract_tb(e.__traceback__)
            where = f"{tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else "?"
            return {"outcome": "error", "mode": m,
                    "detail": f"{type(e).__name__}: {str(e)[:300]} (raised at {where})"}
    return {"outcome": "ok", "mode": ",".join(modes), "detail": ""}
