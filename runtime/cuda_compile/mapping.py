"""Map the loops of a bufferized function onto GPU launches (``gpu.launch``).

Input: a ``func.func`` on memrefs after ``convert-linalg-to-parallel-loops``
(static shapes). Its top level then holds ``scf.parallel`` nests (one per
linalg op, reduction dimensions as inner ``scf.for``), ``memref.copy`` ops
left by bufferization, buffer management (``memref.alloc``/``dealloc``,
views) and sometimes serial code (a reduction to a 0-d buffer is an
``scf.for`` with no parallel loop around it).

Output: every piece of computation sits inside a ``gpu.launch``, so the host
side is a straight-line sequence of allocations and launches that
:mod:`ferrule.runtime.cuda_compile.hostplan` turns into plain data:

* ``scf.parallel`` over a box of N points -> blocks of ``BLOCK`` (256)
  threads; each thread walks a **grid-stride loop** over the linearised
  index ``i = blockIdx.x*blockDim.x + threadIdx.x; i < N; i += gridDim.x*
  blockDim.x`` and recovers the loop indices by div/rem with the (constant)
  extents, innermost fastest, so neighbouring threads touch neighbouring
  elements (coalesced). One launch per nest, so one fused pointwise region is
  exactly one kernel. Where :mod:`ferrule.runtime.cuda_compile.vectorize` allows,
  each thread instead takes ``V`` neighbouring points with 16-byte vector
  loads/stores, behind a run-time alignment test whose other branch is the
  scalar loop (the grid then covers ``N / V`` points).
* ``scf.for`` nests around one ``scf.parallel`` (a reduction over a leading
  dimension, e.g. a bias gradient) -> the same, with the ``scf.for`` nest
  moved inside each thread: the loops come from one linalg op, whose
  parallel dimensions carry no dependence, so the interchange is legal.
  With few outputs and many rows, :mod:`ferrule.runtime.cuda_compile.reduce` splits
  the rows into chunks instead (partials, then an in-order fold).
* ``memref.copy`` -> the same kind of launch with a load/store body.
* a loop nest reducing a whole box into one element (a loss ``sum``,
  ``mean``, ``max``) -> three launches of :mod:`ferrule.runtime.cuda_compile.reduce`
  (per-thread partials, a combining block, a finishing thread).
* maximal runs of other top-level ops (0-d stores, serial loops of another
  shape) -> one launch of a single thread. Correct, not fast: they hold
  O(1) work in the programs ferrule generates (a scalar's fill, a final
  truncation or scaling).
"""

import itertools
from typing import Callable, List, Sequence, Tuple

from mlir import ir
from mlir.dialects import arith, gpu, memref, scf

from ...dialect.ir_utils import find_symbol
from .launch_ir import (BLOCK, GpuMappingError, LaunchInfo, const_index, count, for_bounds,
                          grid_for, grid_stride_loop, index_const, launch, trip_counts)

from .reduce import (map_reduction, map_split_reduction, match_reduction,
                          match_split_reduction)
from .vectorize import emit_alignment_test, emit_lanes, plan_vectors

# Ops that stay on the host: buffer management, views of buffers (the kernel
# receives the base pointer; a view's static offset/strides travel in its
# type), constants (sunk into kernels by outlining) and the return.
HOST_OPS = frozenset({
    "arith.constant", "memref.alloc", "memref.dealloc", "memref.get_global",
    "memref.subview", "memref.collapse_shape", "memref.expand_shape",
    "memref.reinterpret_cast", "memref.cast", "func.return", "gpu.launch",
})


def emit_grid_stride_launch(anchor: ir.Operation, name: str, kind: str,
                            bounds: Sequence[Tuple[int, int, int]],
                            body: Callable[[List[ir.Value], ir.Operation], None]
                            ) -> LaunchInfo:
    """Insert before ``anchor`` a launch running ``body`` for every point of
    the box ``bounds`` = [(lower, upper, step), ...].

    ``body(ivs, end)`` is called once, with the insertion point inside the
    loop, and builds the per-point code from the index values ``ivs``; ops
    moved in from elsewhere go before ``end`` (the loop's terminator).
    """
    trips = trip_counts(bounds)
    n = count(trips)
    with ir.InsertionPoint(anchor):
        _, blk = launch(grid_for(n), BLOCK, name)
    with ir.InsertionPoint(blk):
        lanes, end = grid_stride_loop(blk, trips, bounds)
        with ir.InsertionPoint(end):
            body(lanes[0], end)
        gpu.TerminatorOp()
    return LaunchInfo(name, kind, n, (grid_for(n), 1, 1), (BLOCK, 1, 1), True)


def _move_body(src: ir.Block, ivs: Sequence[ir.Value], end: ir.Operation) -> None:
    """Move the ops of loop body ``src`` (minus its terminator) before
    ``end``, its block arguments replaced by ``ivs``."""
    for arg, iv in zip(src.arguments, ivs):
        arg.replace_all_uses_with(iv)
    for op in list(src.operations)[:-1]:  # the last is scf.reduce
        op.operation.move_before(end)


def _map_parallel(par: ir.Operation, name: str) -> LaunchInfo:
    """One launch for an ``scf.parallel`` nest; vector lanes when
    :func:`~ferrule.runtime.cuda_compile.vectorize.plan_vectors` allows, guarded by
    a run-time alignment test whose other branch is the scalar loop."""
    pv = par.opview
    lbs = [const_index(v) for v in pv.lowerBound]
    ubs = [const_index(v) for v in pv.upperBound]
    sts = [const_index(v) for v in pv.step]
    if len(par.results):
        raise GpuMappingError("scf.parallel with reductions is not mapped to "
                              "the GPU (linalg lowers reductions to scf.for)")
    bounds = list(zip(lbs, ubs, sts))
    trips = trip_counts(bounds)
    n = count(trips)
    src = par.regions[0].blocks[0]
    plan, why = plan_vectors(par, trips, bounds)
    width = plan.width if plan else 1
    grid = grid_for(-(-n // width))
    with ir.InsertionPoint(par):
        _, blk = launch(grid, BLOCK, name)
    with ir.InsertionPoint(blk):
        if plan is None:
            lanes, end = grid_stride_loop(blk, trips, bounds)
            _move_body(src, lanes[0], end)
        else:
            branch = scf.IfOp(emit_alignment_test(plan), [], has_else=True)
            with ir.InsertionPoint(branch.then_block):
                then_end = scf.YieldOp([]).operation
            with ir.InsertionPoint(branch.else_block):
                else_end = scf.YieldOp([]).operation
            with ir.InsertionPoint(then_end):
                lanes, end = grid_stride_loop(blk, trips, bounds, width)
            emit_lanes(par, lanes, end, plan)
            with ir.InsertionPoint(else_end):   # misaligned: scalar fallback
                lanes, end = grid_stride_loop(blk, trips, bounds)
            _move_body(src, lanes[0], end)
        gpu.TerminatorOp()
    par.erase()
    return LaunchInfo(name, "parallel", n, (grid, 1, 1), (BLOCK, 1, 1), True,
                      vector=width, scalar_reason=why)


def _for_chain_around_parallel(op: ir.Operation):
    """``([scf.for, ...], scf.parallel)`` if ``op`` is a perfect nest of
    constant-bound ``scf.for`` loops (no loop-carried values) around one
    ``scf.parallel``; else None."""
    chain = []
    while op.name == "scf.for":
        body = list(op.regions[0].blocks[0].operations)
        if len(op.results) or len(body) != 2:
            return None
        bounds = for_bounds(op)
        if bounds is None:
            return None
        chain.append((op, bounds))
        op = body[0].operation
    if not chain or op.name != "scf.parallel" or len(op.results):
        return None
    return chain, op


def _map_for_over_parallel(root: ir.Operation, chain, par: ir.Operation,
                           name: str) -> LaunchInfo:
    pv = par.opview
    bounds = [tuple(const_index(v) for v in t)
              for t in zip(pv.lowerBound, pv.upperBound, pv.step)]
    src = par.regions[0].blocks[0]

    def body(ivs, end):
        for f, (lb, ub, st) in chain:     # rebuild the serial nest per thread
            with ir.InsertionPoint(end):
                loop = scf.ForOp(index_const(lb), index_const(ub), index_const(st))
                with ir.InsertionPoint(loop.body):
                    inner_end = scf.YieldOp([]).operation
            f.opview.induction_variable.replace_all_uses_with(loop.induction_variable)
            end = inner_end
        _move_body(src, ivs, end)

    info = emit_grid_stride_launch(root, name, "parallel", bounds, body)
    root.erase()
    return info


def _splat_global(v: ir.Value):
    """The element attribute if ``v`` is ``memref.get_global`` of a splat
    constant (e.g. the zeros an accumulator starts from), else None."""
    get = v.owner
    if not isinstance(get, ir.OpView) or get.operation.name != "memref.get_global":
        return None
    sym = ir.FlatSymbolRefAttr(get.operation.attributes["name"]).value
    module = get.operation
    while module.name != "builtin.module":
        module = module.parent
    g = find_symbol(module, sym, "memref.global")
    init = g.attributes["initial_value"] if g is not None and "initial_value" in g.attributes \
        else None
    if isinstance(init, ir.DenseElementsAttr) and init.is_splat:
        return init.get_splat_value()
    return None


def _map_copy(op: ir.Operation, name: str) -> LaunchInfo:
    """A ``memref.copy`` becomes a grid-stride copy kernel; a copy of a splat
    constant becomes a fill (stores only: no constant buffer read)."""
    src, dst = op.operands[0], op.operands[1]
    shape = ir.MemRefType(src.type).shape
    splat = _splat_global(src)

    def body(ivs, _end):
        if splat is not None:
            v = arith.ConstantOp(splat.type, splat).result
        else:
            v = memref.LoadOp(src, ivs).result
        memref.StoreOp(v, dst, ivs)

    info = emit_grid_stride_launch(op, name, "fill" if splat is not None else "copy",
                                   [(0, s, 1) for s in shape], body)
    op.erase()
    return info


def _map_serial(run: List[ir.Operation], name: str) -> LaunchInfo:
    """Move a run of serial top-level ops into a one-thread launch."""
    inside = set(run)   # MLIR ops hash and compare by identity of the op
    for o in run:
        for r in o.results:
            for use in r.uses:
                user = _top_level_ancestor(use.owner, run[0].parent)
                if user not in inside:
                    raise GpuMappingError(
                        f"{o.name} computes a scalar on the host side that "
                        f"{user.name} uses; the GPU path cannot pass scalars "
                        f"between kernels")
    with ir.InsertionPoint(run[0]):
        _, blk = launch(1, 1, name)
    with ir.InsertionPoint(blk):
        term = gpu.TerminatorOp().operation
    for o in run:
        o.move_before(term)
    return LaunchInfo(name, "serial", 1, (1, 1, 1), (1, 1, 1), False)


def _top_level_ancestor(op, func_op) -> ir.Operation:
    op = op.operation
    while op.parent is not None and op.parent.operation != func_op.operation:
        op = op.parent.operation
    return op


def sink_constants(launch: ir.Operation) -> None:
    """Clone every ``arith.constant`` defined outside ``launch`` and used in
    it into its body, so outlining makes no kernel parameter for it (the
    outliner itself sinks only index computations)."""
    body = launch.regions[0].blocks[0]
    first = body.operations[0]
    clones = {}

    def visit(op):
        for i, v in enumerate(op.operands):
            d = v.owner
            if (isinstance(d, ir.OpView) and d.operation.name == "arith.constant"
                    and not _is_inside(d.operation, launch)):
                key = d.operation
                if key not in clones:
                    clones[key] = d.operation.clone(ip=ir.InsertionPoint(first))
                op.operands[i] = clones[key].results[0]
        for region in op.regions:
            for b in region.blocks:
                for inner in b.operations:
                    visit(inner.operation)

    for op in list(body.operations):
        visit(op.operation)


def _is_inside(op: ir.Operation, ancestor: ir.Operation) -> bool:
    p = op.parent
    while p is not None:
        if p.operation == ancestor.operation:
            return True
        p = p.parent
    return False


def map_function_to_gpu(func_op: ir.Operation) -> List[LaunchInfo]:
    """Rewrite the top level of ``func_op`` in place (see the module doc).

    Kernels are named ``<function>_k<n>``; returns their launch infos.
    """
    fname = ir.StringAttr(func_op.attributes["sym_name"]).value
    infos: List[LaunchInfo] = []

    numbers = itertools.count()

    def name():
        return f"{fname}_k{next(numbers)}"

    block = func_op.regions[0].blocks[0]
    for op in list(block.operations):
        op = op.operation
        if op.name == "scf.parallel":
            infos.append(_map_parallel(op, name()))
        elif op.name == "memref.copy":
            infos.append(_map_copy(op, name()))
        elif op.name == "scf.for":
            nest = _for_chain_around_parallel(op)
            if nest is not None:
                split = match_split_reduction(*nest)
                if split is not None:
                    infos += map_split_reduction(split, name)
                else:
                    infos.append(_map_for_over_parallel(op, *nest, name()))
                continue
            reduction = match_reduction(op)
            if reduction is not None:
                infos += map_reduction(reduction, name)
    run: List[ir.Operation] = []
    for op in list(block.operations) + [None]:
        op = op.operation if op is not None else None
        if op is None or op.name in HOST_OPS:
            if run:
                infos.append(_map_serial(run, name()))
                run = []
        else:
            run.append(op)
    for op in block.operations:
        if op.operation.name == "gpu.launch":
            sink_constants(op.operation)
    return infos


def map_module_to_gpu(module: ir.Module) -> List[LaunchInfo]:
    """Apply :func:`map_function_to_gpu` to every ``func.func`` with a body."""
    infos: List[LaunchInfo] = []
    for op in module.body.operations:
        op = op.operation
        if op.name == "func.func" and len(op.regions[0].blocks):
            infos += map_function_to_gpu(op)
    return infos
