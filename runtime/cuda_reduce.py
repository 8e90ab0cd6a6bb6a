"""Reductions to one value on the GPU: three launches instead of one thread.

A reduction of a whole loop box into one element — a loss ``sum``, ``mean``
or ``max`` — bufferizes to an ``scf.for`` nest with no parallel loop::

    scf.for %i ... { scf.for %j ... {
        %acc = memref.load %R[c...]          // c...: constants
        ... %v = f(loads at %i, %j) ...
        %n = arith.addf %acc, %v             // or maximumf / minimumf, either order
        memref.store %n, %R[c...] } }

which the generic mapping could only run on one GPU thread. Here it becomes

1. ``partials``: a grid-stride loop over the box (up to ``PARTIAL_BLOCKS``
   blocks of ``BLOCK`` threads); each thread folds its points into a
   register starting from the combiner's identity and writes it to
   ``P[thread]`` (a temporary buffer of one element per thread);
2. ``combine``: one block; thread ``t`` folds ``P[t], P[t + BLOCK], ...``
   and writes ``P[t]`` (each thread reads and writes only its own residue
   class, so no two threads touch the same element);
3. ``final``: one thread folds ``R`` and ``P[0:BLOCK]`` in order into ``R``.

The result is deterministic (a fixed tree for a given shape), independent
of timing; for sums it is a different association than the CPU's, which
the float64 accumulators of ``widen-accumulators`` make immaterial.

:func:`match_reduction` recognises the nest (None when it is anything else,
which then stays serial); :func:`map_reduction` rewrites it.
"""

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from mlir import ir
from mlir.dialects import arith, gpu, memref, scf

from .cuda_launch import (BLOCK, LaunchInfo, count, delinearize, for_bounds, index_const,
                          launch, thread_start_and_stride)
from .cuda_vectorize import buffer_root

# Blocks of partial sums at most: enough threads to keep a GPU's memory
# system busy (1024 * 256 = 262144 in flight), few enough partials that the
# combine step is cheap.
PARTIAL_BLOCKS = 1024

# combiner -> its identity
_IDENTITY = {"arith.addf": 0.0, "arith.maximumf": -math.inf, "arith.minimumf": math.inf,
             "arith.maxnumf": -math.inf, "arith.minnumf": math.inf}


@dataclass
class ReductionNest:
    """A matched nest: its loops (outermost first, with constant bounds),
    the accumulator's buffer ``ref`` and constant indices ``idx``, and the
    innermost body's load of it, combiner and store."""
    loops: List[Tuple[ir.Operation, Tuple[int, int, int]]]
    ref: ir.Value
    idx: List[ir.Value]
    load: ir.Operation
    combine: ir.Operation
    store: ir.Operation


def _is_const(v: ir.Value) -> bool:
    return isinstance(v.owner, ir.OpView) and v.owner.operation.name == "arith.constant"


def match_reduction(op: ir.Operation) -> Optional[ReductionNest]:
    """The :class:`ReductionNest` rooted at top-level ``op``, or None."""
    loops = []
    while op.name == "scf.for":
        if len(op.results):
            return None
        bounds = for_bounds(op)
        if bounds is None:
            return None
        loops.append((op, bounds))
        inner = [o.operation for o in op.regions[0].blocks[0].operations]
        if len(inner) == 2 and inner[0].name == "scf.for":
            op = inner[0]
            continue
        break
    if not loops:
        return None
    body = [o.operation for o in loops[-1][0].regions[0].blocks[0].operations][:-1]
    if any(len(o.regions) for o in body):
        return None
    stores = [o for o in body if o.name == "memref.store"]
    if len(stores) != 1:
        return None
    store = stores[0]
    value, ref, idx = store.operands[0], store.operands[1], list(store.operands)[2:]
    if not all(_is_const(i) for i in idx):
        return None
    combine = value.owner.operation if isinstance(value.owner, ir.OpView) else None
    if (combine is None or combine.name not in _IDENTITY or combine not in body
            or len(list(value.uses)) != 1):
        return None
    loads = [o.owner.operation for o in combine.operands
             if isinstance(o.owner, ir.OpView) and o.owner.operation.name == "memref.load"
             and o.owner.operation.operands[0] == ref
             and list(o.owner.operation.operands)[1:] == idx]
    if len(loads) != 1 or len(list(loads[0].results[0].uses)) != 1:
        return None
    load = loads[0]
    root = buffer_root(ref)
    for o in body:
        if o == load or o == store:
            continue
        if o.name == "memref.load" and buffer_root(o.operands[0]) == root:
            return None
    return ReductionNest(loops, ref, idx, load, combine, store)


def _combine(template: ir.Operation, a: ir.Value, b: ir.Value) -> ir.Value:
    attrs = {k: template.attributes[k] for k in template.attributes}
    return ir.Operation.create(template.name, results=[a.type], operands=[a, b],
                               attributes=attrs).result


def map_reduction(nest: ReductionNest, name: Callable[[], str]) -> List[LaunchInfo]:
    """Replace ``nest`` by the three launches of the module doc; ``name()``
    gives each kernel's name. Returns their launch infos."""
    root = nest.loops[0][0]
    bounds = [b for _, b in nest.loops]
    trips = [max(0, -(-(ub - lb) // st)) for lb, ub, st in bounds]
    n = count(trips)
    elt = ir.MemRefType(nest.ref.type).element_type
    blocks = max(1, min(-(-n // BLOCK), PARTIAL_BLOCKS))
    total = blocks * BLOCK
    infos = []
    with ir.InsertionPoint(root), root.location:
        partials = memref.alloc(ir.MemRefType.get([total], elt), [], [])
        ident = lambda: arith.constant(elt, _IDENTITY[nest.combine.name])  # noqa: E731

        k1 = name()
        _, blk = launch(blocks, BLOCK, k1)
        with ir.InsertionPoint(blk):
            start, stride = thread_start_and_stride(blk)
            loop = scf.ForOp(start, index_const(n), stride, [ident()])
            with ir.InsertionPoint(loop.body):
                end = scf.YieldOp([loop.inner_iter_args[0]]).operation
            with ir.InsertionPoint(end):
                (ivs,) = delinearize(loop.induction_variable, trips, bounds)
            for (f, _), iv in zip(nest.loops, ivs):
                f.opview.induction_variable.replace_all_uses_with(iv)
            body = nest.loops[-1][0].regions[0].blocks[0]
            for o in [o.operation for o in body.operations][:-1]:
                if o != nest.store:
                    o.move_before(end)
            nest.load.results[0].replace_all_uses_with(loop.inner_iter_args[0])
            nest.load.erase()
            end.operands[0] = nest.combine.results[0]
            nest.store.erase()
            memref.store(loop.results[0], partials, [start])
            gpu.TerminatorOp()
        infos.append(LaunchInfo(k1, "reduce", n, (blocks, 1, 1), (BLOCK, 1, 1), True))

        k2 = name()
        _, blk = launch(1, BLOCK, k2)
        with ir.InsertionPoint(blk):
            t = blk.arguments[3]
            loop = scf.ForOp(t, index_const(total), index_const(BLOCK), [ident()])
            with ir.InsertionPoint(loop.body):
                v = memref.load(partials, [loop.induction_variable])
                scf.YieldOp([_combine(nest.combine, loop.inner_iter_args[0], v)])
            memref.store(loop.results[0], partials, [t])
            gpu.TerminatorOp()
        infos.append(LaunchInfo(k2, "reduce", total, (1, 1, 1), (BLOCK, 1, 1), True))

        k3 = name()
        _, blk = launch(1, 1, k3)
        with ir.InsertionPoint(blk):
            acc = memref.load(nest.ref, nest.idx)
            loop = scf.ForOp(index_const(0), index_const(min(BLOCK, total)),
                             index_const(1), [acc])
            with ir.InsertionPoint(loop.body):
                v = memref.load(partials, [loop.induction_variable])
                scf.YieldOp([_combine(nest.combine, loop.inner_iter_args[0], v)])
            memref.store(loop.results[0], nest.ref, nest.idx)
            gpu.TerminatorOp()
        infos.append(LaunchInfo(k3, "reduce", BLOCK, (1, 1, 1), (1, 1, 1), False))
        memref.dealloc(partials)
    root.erase()
    return infos
