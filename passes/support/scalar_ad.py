"""Differentiating a straight-line scalar body (a pointwise region's body).

Both directions use the partials of :mod:`scalar_rules`:
  * :func:`forward_body` — dual numbers with K tangent directions;
  * :func:`reverse_body` — recompute the primal, then accumulate adjoints
    backwards through the body (the pullback of the region, per element).
"""

from typing import Dict, List, Optional, Sequence

from mlir import ir

from . import scalar_rules as sr
from ...dialect.ir_utils import clone_with_remap, create


class NoRuleError(Exception):
    def __init__(self, op: ir.Operation):
        self.op = op
        super().__init__(f"no derivative rule for '{op.name}'")


def clone_body(ops: Sequence[ir.Operation], env: Dict[ir.Value, ir.Value]) -> None:
    """Clone scalar ops at the current insertion point, extending ``env``."""
    for op in ops:
        clone_with_remap(op, env)


def _is_float(v: ir.Value) -> bool:
    return isinstance(v.type, (ir.F32Type, ir.F64Type, ir.F16Type, ir.BF16Type))


def forward_body(ops: Sequence[ir.Operation], env: Dict[ir.Value, ir.Value],
                 tangents: Dict[ir.Value, List[Optional[ir.Value]]], k: int) -> None:
    """Emit primal clones and K-direction tangents of ``ops``.

    ``env`` maps original values to their clones; ``tangents`` maps original
    values to a list of K tangents (None = zero). Both are extended.
    """
    for op in ops:
        clone_body([op], env)
        if op.name in sr.NON_DIFFERENTIABLE:
            continue
        ins = list(op.operands)
        if all(all(t is None for t in tangents.get(v, [None] * k)) for v in ins):
            continue
        res = op.results[0]
        if op.name in sr.CASTS:
            tangents[res] = [None if t is None else create(op.name, [env[res].type], [t]).result
                             for t in tangents.get(ins[0], [None] * k)]
            continue
        if op.name not in sr.RULES:
            raise NoRuleError(op)
        partials = sr.RULES[op.name](op, [env.get(v, v) for v in ins], env[res])
        out = []
        for d in range(k):
            acc = None
            for v, p in zip(ins, partials):
                t = tangents.get(v, [None] * k)[d]
                if p is None or t is None:
                    continue
                acc = sr.accumulate(acc, sr.scale(p, t))
            out.append(acc)
        tangents[res] = out


def reverse_body(ops: Sequence[ir.Operation], env: Dict[ir.Value, ir.Value],
                 adjoints: Dict[ir.Value, ir.Value], active: set) -> None:
    """Accumulate adjoints backwards through ``ops`` (already cloned in ``env``).

    ``adjoints`` maps original values to their adjoint (absent = zero);
    ``active`` holds the original values whose adjoints are wanted or that
    lead to one (others are skipped).
    """
    for op in reversed(list(ops)):
        if op.name in sr.NON_DIFFERENTIABLE or not len(op.results):
            continue
        res = op.results[0]
        ybar = adjoints.get(res)
        if ybar is None:
            continue
        ins = list(op.operands)
        if not any(v in active for v in ins):
            continue
        if op.name in sr.CASTS:
            v = ins[0]
            back = create(sr.CASTS[op.name], [env.get(v, v).type], [ybar]).result
            adjoints[v] = sr.accumulate(adjoints.get(v), back)
            continue
        if op.name not in sr.RULES:
            raise NoRuleError(op)
        partials = sr.RULES[op.name](op, [env.get(v, v) for v in ins], env[res])
        for v, p in zip(ins, partials):
            if p is None or v not in active or not _is_float(v):
                continue
            adjoints[v] = sr.accumulate(adjoints.get(v), sr.scale(p, ybar))


def active_values(ops: Sequence[ir.Operation], seeds: set) -> set:
    """Values that depend on ``seeds`` through ``ops`` (seeds included)."""
    active = set(seeds)
    for op in ops:
        if op.name in sr.NON_DIFFERENTIABLE:
            continue
        if any(v in active for v in op.operands):
            for r in op.results:
                if _is_float(r):
                    active.add(r)
    return active
