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

from .launch_ir import (BLOCK, LaunchInfo, count, delinearize, for_bounds, index_const,
                          launch, thread_start_and_stride)
from .vectorize import buffer_root

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
    acc = _accumulation(body, _is_const)
    return ReductionNest(loops, *acc) if acc else None


def _accumulation(body: List[ir.Operation], index_ok: Callable[[ir.Value], bool]):
    """``(ref, idx, load, combine, store)`` when loop body ``body`` (its ops
    minus the terminator) folds one value into ``ref[idx]`` — one store, fed
    by a combiner of a load of the same element, with ``index_ok`` true of
    every index and ``ref``'s buffer read nowhere else — else None."""
    if any(len(o.regions) for o in body):
        return None
    stores = [o for o in body if o.name == "memref.store"]
    if len(stores) != 1:
        return None
    store = stores[0]
    value, ref, idx = store.operands[0], store.operands[1], list(store.operands)[2:]
    if not all(index_ok(i) for i in idx):
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
    return ref, idx, load, combine, store


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


# ------------------------------------------------ reductions over leading rows

# A reduction over leading loops into one element per point of an inner
# parallel box — a bias gradient, out[j] += x[i, j] — would get one thread
# per output element, each looping over every row: with few outputs and many
# rows that leaves most of the GPU idle. It is split instead into chunks of
# rows: one launch computes a partial per (chunk, output), a second folds
# each output's partials in chunk order into it (deterministic).
SPLIT_MIN_ROWS = 16                  # rows per chunk at least
SPLIT_TARGET_THREADS = 1 << 18       # threads to aim for in the first launch


@dataclass
class SplitReduction:
    """A matched nest: serial ``loops`` (outermost first) around ``par``
    (with constant ``par_bounds``), the accumulation into ``ref[idx]`` (its
    indices ``par``'s induction variables or constants) and the number of
    row ``chunks``."""
    loops: List[Tuple[ir.Operation, Tuple[int, int, int]]]
    par: ir.Operation
    par_bounds: List[Tuple[int, int, int]]
    ref: ir.Value
    idx: List[ir.Value]
    load: ir.Operation
    combine: ir.Operation
    store: ir.Operation
    chunks: int


def _trips(bounds) -> List[int]:
    return [max(0, -(-(ub - lb) // st)) for lb, ub, st in bounds]


def match_split_reduction(loops, par: ir.Operation) -> Optional[SplitReduction]:
    """A :class:`SplitReduction` for serial ``loops`` around ``par``, or
    None (not an accumulation, or enough outputs to fill the GPU already)."""
    pv = par.opview
    bounds = []
    for lb, ub, st in zip(pv.lowerBound, pv.upperBound, pv.step):
        if not (_is_const(lb) and _is_const(ub) and _is_const(st)):
            return None
        bounds.append(tuple(ir.IntegerAttr(v.owner.operation.attributes["value"]).value
                            for v in (lb, ub, st)))
    outputs = count(_trips(bounds))
    rows = count(_trips([b for _, b in loops]))
    chunks = min(-(-SPLIT_TARGET_THREADS // max(outputs, 1)), rows // SPLIT_MIN_ROWS)
    if chunks < 2 or len(par.results):
        return None
    block = par.regions[0].blocks[0]
    par_args = list(block.arguments)
    body = [o.operation for o in block.operations][:-1]       # minus scf.reduce
    acc = _accumulation(body, lambda v: v in par_args or _is_const(v))
    if acc is None:
        return None
    return SplitReduction(loops, par, bounds, *acc, chunks)


def map_split_reduction(sr: SplitReduction, name: Callable[[], str]) -> List[LaunchInfo]:
    """Replace the nest by the two launches described above; ``name()``
    gives each kernel's name. Returns their launch infos."""
    root = sr.loops[0][0]
    row_bounds = [b for _, b in sr.loops]
    row_trips, out_trips = _trips(row_bounds), _trips(sr.par_bounds)
    rows, outputs, chunks = count(row_trips), count(out_trips), sr.chunks
    per = -(-rows // chunks)
    elt = ir.MemRefType(sr.ref.type).element_type
    par_args = list(sr.par.regions[0].blocks[0].arguments)
    infos = []
    with ir.InsertionPoint(root), root.location:
        partials = memref.alloc(ir.MemRefType.get([chunks * outputs], elt), [], [])
        ident = lambda: arith.constant(elt, _IDENTITY[sr.combine.name])  # noqa: E731

        k1, points = name(), chunks * outputs
        blocks = max(1, min(-(-points // BLOCK), 2**31 - 1))
        _, blk = launch(blocks, BLOCK, k1)
        with ir.InsertionPoint(blk):
            start, stride = thread_start_and_stride(blk)
            loop = scf.ForOp(start, index_const(points), stride)
            with ir.InsertionPoint(loop.body):
                end = scf.YieldOp([]).operation
            with ir.InsertionPoint(end):
                t = loop.induction_variable
                out_lin = arith.remui(t, index_const(outputs))
                chunk = arith.divui(t, index_const(outputs))
                (out_ivs,) = delinearize(out_lin, out_trips, sr.par_bounds)
                lo = arith.muli(chunk, index_const(per))
                hi = arith.minui(arith.addi(lo, index_const(per)), index_const(rows))
                inner = scf.ForOp(lo, hi, index_const(1), [ident()])
                with ir.InsertionPoint(inner.body):
                    iend = scf.YieldOp([inner.inner_iter_args[0]]).operation
                with ir.InsertionPoint(iend):
                    (row_ivs,) = delinearize(inner.induction_variable, row_trips, row_bounds)
                for (f, _), iv in zip(sr.loops, row_ivs):
                    f.opview.induction_variable.replace_all_uses_with(iv)
                for a, iv in zip(par_args, out_ivs):
                    a.replace_all_uses_with(iv)
                body = sr.par.regions[0].blocks[0]
                for o in [o.operation for o in body.operations][:-1]:
                    if o != sr.store:
                        o.move_before(iend)
                sr.load.results[0].replace_all_uses_with(inner.inner_iter_args[0])
                sr.load.erase()
                iend.operands[0] = sr.combine.results[0]
                memref.store(inner.results[0], partials, [t])
            gpu.TerminatorOp()
        infos.append(LaunchInfo(k1, "reduce", points, (blocks, 1, 1), (BLOCK, 1, 1), True))

        k2 = name()
        blocks2 = max(1, min(-(-outputs // BLOCK), 2**31 - 1))
        _, blk = launch(blocks2, BLOCK, k2)
        with ir.InsertionPoint(blk):
            start, stride = thread_start_and_stride(blk)
            loop = scf.ForOp(start, index_const(outputs), stride)
            with ir.InsertionPoint(loop.body):
                end = scf.YieldOp([]).operation
            with ir.InsertionPoint(end):
                p = loop.induction_variable
                (ivs,) = delinearize(p, out_trips, sr.par_bounds)
                idx = [ivs[par_args.index(i)] if i in par_args else i for i in sr.idx]
                first = memref.load(sr.ref, idx)
                fold = scf.ForOp(index_const(0), index_const(chunks), index_const(1), [first])
                with ir.InsertionPoint(fold.body):
                    at = arith.addi(arith.muli(fold.induction_variable, index_const(outputs)), p)
                    v = memref.load(partials, [at])
                    scf.YieldOp([_combine(sr.combine, fold.inner_iter_args[0], v)])
                memref.store(fold.results[0], sr.ref, idx)
            gpu.TerminatorOp()
        infos.append(LaunchInfo(k2, "reduce", outputs, (blocks2, 1, 1), (BLOCK, 1, 1), True))
        memref.dealloc(partials)
    root.erase()
    return infos
