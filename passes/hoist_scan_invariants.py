"""hoist-scan-invariants: compute a scan step's loop-invariant work once.

Expects: ``ad.scan`` ops after the AD passes (no ``ad.vjp``/``ad.jvp``
left; the steps are plain functions on tensors).
Guarantees: for each ``ad.scan`` whose step function no other op refers
to, every top-level op of the step that reads only the step's ``consts``
arguments (or other such ops' results) — but ``func.call``, which may call
host code — is cloned before the scan, on the scan's const operands. The
step is replaced by ``@<step>_hoisted``, which takes the hoisted results
that the rest of the step reads as extra consts (appended after the
original ones); the scan passes them. Operand-free ops without regions
(constants, ``tensor.empty``) stay in the step as well, never passed.
A step with nothing but such ops to hoist is left alone.

Why: a scan traced over basis vectors (``jacrev``: each step calls a
``vjp`` pullback; ``jacfwd``: each step a ``jvp``) carries the primal's
forward sweep inside the step, where it depends only on the primals (the
consts). Hoisted, the forward sweep runs once and each step runs only the
backward sweep (or the tangent code), as a batched ``vmap`` would.
The reverse pass's scan rule already hoists invariants of the scans it
differentiates; this pass does the same for the primal scans that remain.
Runs before ``fuse-pointwise`` so that invariant pointwise code is not
fused into a per-step region first.
"""

from typing import List

from mlir import ir

from ..dialect import builders
from ..dialect.ir_utils import (block_ops, clone_with_remap, find_func, func_body, func_name,
                                values_used)
from .support import ad_common as ad
from .support.registry import register

_NEVER = ("func.call", "func.return")


@register("hoist-scan-invariants")
def hoist_scan_invariants(module_op: ir.Operation) -> None:
    scans: List[ir.Operation] = []
    module_op.walk(lambda o: (scans.append(o.operation) if o.operation.name == "ad.scan"
                              else None, ir.WalkResult.ADVANCE)[1])
    refs = ad.callee_refs(module_op)
    for op in scans:
        if refs.get(ad.callee_of(op), 0) == 1:
            _hoist(module_op, op)


def _cheap(o: ir.Operation) -> bool:
    return not len(o.operands) and not len(o.regions)


def _hoist(module_op: ir.Operation, op: ir.Operation) -> None:
    n_c, n_x, n_k = ad.segment_sizes(op)
    step = find_func(module_op, ad.callee_of(op))
    block = func_body(step)
    args = list(block.arguments)
    ops = block_ops(block)
    ret, body = ops[-1], ops[:-1]
    invariant = set(args[n_c + n_x:])
    hoisted = []
    for o in body:
        if o.name not in _NEVER and all(v in invariant for v in values_used(o)):
            hoisted.append(o)
            invariant.update(o.results)
    moved = [o for o in hoisted if not _cheap(o)]
    if not moved:
        return
    moved_set = set(moved)
    kept = [o for o in body if o not in moved_set]
    read_by_kept = {v for o in kept + [ret] for v in values_used(o)}
    live = [r for o in moved for r in o.results if r in read_by_kept]

    operands = list(op.operands)
    consts = operands[n_c + n_x:]
    env = dict(zip(args[n_c + n_x:], consts))
    with ir.InsertionPoint(op), op.location:
        for o in hoisted:
            clone_with_remap(o, env)
    new_step = ad.new_func(module_op, f"{ad.callee_of(op)}_hoisted",
                           [a.type for a in args] + [v.type for v in live], step.location)
    new_args = list(func_body(new_step).arguments)
    step_env = dict(zip(args + live, new_args))
    with ir.InsertionPoint(func_body(new_step)), step.location:
        for o in kept:
            clone_with_remap(o, step_env)
    ad.finish_func(new_step, [step_env[v] for v in ret.operands])
    with ir.InsertionPoint(op), op.location:
        new = builders.scan(func_name(new_step), operands[:n_c], operands[n_c:n_c + n_x],
                            consts + [env[v] for v in live], [r.type for r in op.results],
                            ad.int_attr(op, "length"), ad.int_attr(op, "reverse") != 0,
                            ad.int_attr(op, "remat") != 0)
    for old, res in zip(op.results, new.results):
        old.replace_all_uses_with(res)
    op.erase()
    step.erase()
