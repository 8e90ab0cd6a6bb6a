"""The pullback of one pointwise region, two ways, and the cost model.

* ``recompute`` (default): the backward region reads the region's inputs and
  the output cotangents, re-evaluates the body, and applies the scalar
  partials backwards. Kept between the sweeps: the inputs only.
* ``store``: the forward region also writes ∂y_j/∂x_i for every active input
  i and output j; the backward region only multiplies them by the
  cotangents (Zygote's ``broadcast_forward``).
* ``keep``: the forward region also writes the result of each expensive
  scalar op (:data:`EXPENSIVE`: ``tanh``, ``exp``, ``log``, ...) of the
  body; the backward region recomputes the body from the inputs with those
  results read instead of evaluated, so only cheap arithmetic is redone
  (JAX's ``checkpoint`` policies save values the same way). Kept between the
  sweeps: the inputs and the kept results.

:func:`choose` picks by bytes moved beyond the primal's own traffic:
recompute re-reads each active region's inputs (at their own, possibly
broadcast, size); store writes and then reads n_active × n_outputs partial
arrays of the region's domain. Recompute does more arithmetic, which the
model ignores (it is cheap next to memory on CPUs and GPUs) — except in a
loop's step (``auto-in-loop``: the pullbacks of a ``scan`` step), whose
arrays are one step's slices and stay in cache: there a region with
expensive ops keeps their results when they are at most twice the bytes of
its inputs (an LSTM cell: its 5 ``tanh`` results and the cell state kept
instead of 5 inputs, and each ``tanh`` evaluated once instead of twice).
"""

from typing import Dict, List, Optional, Tuple

import numpy as np
from mlir import ir

from . import ad_common as ad
from ...dialect.ir_utils import (PARALLEL, block_ops, body_block, create, drop_unused_inputs,
                                 element_type, empty,
                                 float_const, generic_maps, generic_num_inputs, identity_map,
                                 is_identity, make_generic, shape_of)
from .registry import PassError
from .scalar_ad import NoRuleError, active_values, clone_body, reverse_body

STRATEGIES = ("auto", "recompute", "store", "keep", "auto-in-loop")
# Scalar ops whose results ``keep`` writes out rather than re-evaluate: the
# transcendental functions (tens of instructions each once expanded).
EXPENSIVE = frozenset(f"math.{n}" for n in (
    "tanh", "exp", "exp2", "expm1", "log", "log1p", "log2", "log10", "sin", "cos", "tan",
    "erf", "atan", "atan2", "powf", "sinh", "cosh", "asin", "acos", "asinh", "acosh", "atanh"))


def _bytes(v: ir.Value) -> int:
    t = v.type
    width = 8 if str(element_type(t)) == "f64" else 4
    return int(np.prod(shape_of(t), dtype=np.int64)) * width


def wanted_inputs(op: ir.Operation, active) -> List[int]:
    """Indices of the region's float inputs that need a cotangent."""
    n_in = generic_num_inputs(op)
    ins = list(op.operands)[:n_in]
    return [i for i in range(n_in) if ins[i] in active
            and isinstance(element_type(ins[i]), (ir.F32Type, ir.F64Type))]


def choose(op: ir.Operation, active, forced: str) -> Tuple[str, int, int]:
    """(strategy, bytes moved by recompute, bytes moved by store)."""
    if forced not in STRATEGIES:
        raise PassError("reverse", f"unknown pullback strategy {forced!r}; "
                        f"use one of {', '.join(STRATEGIES)}", op.location)
    n_in = generic_num_inputs(op)
    ins = list(op.operands)[:n_in]
    want = wanted_inputs(op, active)
    float_outs = [r for r in op.results if isinstance(element_type(r), (ir.F32Type, ir.F64Type))]
    recompute = sum(_bytes(v) for v in set(ins))
    store = 2 * len(want) * sum(_bytes(r) for r in float_outs)
    if forced not in ("auto", "auto-in-loop"):
        return forced, recompute, store
    n_kept = len(kept_ops(op)) if forced == "auto-in-loop" else 0
    if n_kept and n_kept * _bytes(op.results[0]) <= 2 * recompute:
        return "keep", recompute, store
    return ("store" if store < recompute else "recompute"), recompute, store


def kept_ops(op: ir.Operation) -> List[ir.Operation]:
    """The expensive scalar ops of a pointwise region's body (``keep``)."""
    return [o for o in _body_parts(op)[1] if o.name in EXPENSIVE and len(o.results) == 1
            and isinstance(o.results[0].type, (ir.F32Type, ir.F64Type))]


def _body_parts(op):
    src = body_block(op)
    ops = block_ops(src)
    return list(src.arguments), ops[:-1], list(ops[-1].operands)


def _backprop(op, env, a, n_in, seeds: Dict[int, ir.Value], want,
              kept: Optional[Dict[ir.Value, ir.Value]] = None) -> List[ir.Value]:
    """Inside a new body: recompute the primal from ``a[:n_in]`` and return the
    adjoint of each wanted input for output adjoints ``seeds`` (j -> value).
    ``kept`` maps results of body ops to values to read instead of
    re-evaluating those ops (``keep``)."""
    bargs, body_ops, yielded = _body_parts(op)
    benv = dict(env)  # captured outer values map to their clones
    benv.update({bargs[i]: a[i] for i in range(n_in)})
    benv.update(kept or {})
    clone_body([o for o in body_ops if not (kept and o.results and o.results[0] in kept)],
               benv)
    adj: Dict[ir.Value, ir.Value] = {}
    for j, s in seeds.items():
        y = yielded[j]
        adj[y] = s if y not in adj else create("arith.addf", [s.type], [adj[y], s]).result
    act = active_values(body_ops, {bargs[i] for i in want})
    try:
        reverse_body(body_ops, benv, adj, act)
    except NoRuleError as e:
        raise PassError("reverse", str(e), e.op.location) from None
    ins = list(op.operands)
    return [adj.get(bargs[i]) or float_const(element_type(ins[i]), 0.0) for i in want]


def _accumulate(op, cts, want, xbars) -> None:
    maps = generic_maps(op)
    ins = list(op.operands)
    for i, xbar in zip(want, xbars):
        if is_identity(maps[i]):
            cts.add(ins[i], xbar)
        else:
            cts.add(ins[i], ad.reduce_to(xbar, maps[i], shape_of(ins[i])))


def reverse_recompute(op, env, cts, active, ybars,
                      kept_vals: Optional[List[ir.Value]] = None) -> None:
    """Backward region that re-evaluates the primal (see module docstring);
    with ``kept_vals`` (``keep``: :func:`forward_keeping`'s extra outputs)
    it reads the kept results instead of re-evaluating their ops, and reads
    only the inputs it still needs."""
    want = wanted_inputs(op, active)
    live = [j for j, g in enumerate(ybars) if g is not None]
    if not want or not live:
        return
    n_in = generic_num_inputs(op)
    maps = generic_maps(op)
    dom = shape_of(op.results[0])
    rank = len(dom)
    ins = list(op.operands)[:n_in]
    kept = [o.results[0] for o in kept_ops(op)] if kept_vals is not None else []
    n_k = len(kept)

    def body(a):
        seeds = {j: a[n_in + n_k + k] for k, j in enumerate(live)}
        return _backprop(op, env, a, n_in, seeds, want,
                         dict(zip(kept, a[n_in:n_in + n_k])) if kept else None)

    inits = [empty(dom, element_type(ins[i])) for i in want]
    new = make_generic([env[v] for v in ins] + list(kept_vals or []) + [ybars[j] for j in live],
                       inits, maps[:n_in] + [identity_map(rank)] * (n_k + len(live) + len(inits)),
                       [PARALLEL] * rank, body)
    if kept:
        # The inputs only kept ops read are not read again: not kept for it
        # (in a scan, not stored per step).
        new = drop_unused_inputs(new)
    _accumulate(op, cts, want, list(new.results))


def forward_with_partials(op, env, active) -> Dict[Tuple[int, int], ir.Value]:
    """Clone ``op`` into the forward sweep with extra outputs ∂y_j/∂x_i.

    Returns {(i, j): partial tensor}; the primal results are put in ``env``.
    """
    n_in = generic_num_inputs(op)
    maps = generic_maps(op)
    want = wanted_inputs(op, active)
    ins = list(op.operands)[:n_in]
    outs = [j for j, r in enumerate(op.results)
            if isinstance(element_type(r), (ir.F32Type, ir.F64Type))]
    dom = shape_of(op.results[0])
    rank = len(dom)
    bargs, body_ops, yielded = _body_parts(op)
    pairs = [(i, j) for j in outs for i in want]

    def body(a):
        benv = dict(env)
        benv.update({bargs[i]: a[i] for i in range(n_in)})
        clone_body(body_ops, benv)
        prim = [benv.get(v, v) for v in yielded]
        parts = []
        for j in outs:
            one = float_const(element_type(op.results[j]), 1.0)
            parts += _backprop(op, env, a, n_in, {j: one}, want)
        return prim + parts

    inits = [env[v] for v in list(op.operands)[n_in:]]
    # ∂y_j/∂x_i is an adjoint of x_i: it has x_i's element type (they differ
    # across a cast in the body).
    p_inits = [empty(dom, element_type(ins[i])) for i, j in pairs]
    new = make_generic([env[v] for v in ins], inits + p_inits,
                       maps[:n_in] + [identity_map(rank)] * (len(inits) + len(p_inits)),
                       [PARALLEL] * rank, body)
    n_out = len(op.results)
    for r, nr in zip(op.results, list(new.results)[:n_out]):
        env[r] = nr
    return dict(zip(pairs, list(new.results)[n_out:]))


def _cast(v: ir.Value, t: ir.Type) -> ir.Value:
    """Scalar ``v`` as float type ``t`` (extf/truncf; ``v`` if it has it)."""
    if v.type == t:
        return v
    wider = isinstance(t, ir.F64Type)
    return create("arith.extf" if wider else "arith.truncf", [t], [v]).result


def reverse_stored(op, env, cts, active, ybars, partials) -> None:
    """Backward region: x̄_i = Σ_j ȳ_j · ∂y_j/∂x_i from stored partials."""
    want = wanted_inputs(op, active)
    live = [j for j, g in enumerate(ybars) if g is not None and (want and (want[0], j) in partials)]
    if not want or not live:
        return
    dom = shape_of(op.results[0])
    rank = len(dom)
    reads = [ybars[j] for j in live] + [partials[(i, j)] for i in want for j in live]
    L = len(live)

    ins = list(op.operands)

    def body(a):
        out = []
        for k, i in enumerate(want):
            acc = None
            for m, j in enumerate(live):
                part = a[L + k * L + m]
                term = create("arith.mulf", [part.type], [_cast(a[m], part.type), part]).result
                acc = term if acc is None else create("arith.addf", [term.type], [acc, term]).result
            out.append(acc)
        return out

    inits = [empty(dom, element_type(ins[i])) for i in want]
    new = make_generic(reads, inits, [identity_map(rank)] * (len(reads) + len(inits)),
                       [PARALLEL] * rank, body)
    _accumulate(op, cts, want, list(new.results))


def forward_keeping(op, env, active) -> List[ir.Value]:
    """Clone ``op`` into the forward sweep with the results of its
    :func:`kept_ops` as extra outputs (one tensor of the domain each, in
    body order); the primal results are put in ``env``."""
    n_in = generic_num_inputs(op)
    maps = generic_maps(op)
    ins = list(op.operands)[:n_in]
    dom = shape_of(op.results[0])
    rank = len(dom)
    bargs, body_ops, yielded = _body_parts(op)
    kept = [o.results[0] for o in kept_ops(op)]

    def body(a):
        benv = dict(env)
        benv.update({bargs[i]: a[i] for i in range(n_in)})
        clone_body(body_ops, benv)
        return [benv.get(v, v) for v in yielded] + [benv[v] for v in kept]

    inits = [env[v] for v in list(op.operands)[n_in:]]
    k_inits = [empty(dom, v.type) for v in kept]
    new = make_generic([env[v] for v in ins], inits + k_inits,
                       maps[:n_in] + [identity_map(rank)] * (len(inits) + len(k_inits)),
                       [PARALLEL] * rank, body)
    n_out = len(op.results)
    for r, nr in zip(op.results, list(new.results)[:n_out]):
        env[r] = nr
    return list(new.results)[n_out:]
