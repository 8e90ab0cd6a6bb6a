"""Map the loops of a bufferized function onto GPU launches (``gpu.launch``).

Input: a ``func.func`` on memrefs after ``convert-linalg-to-parallel-loops``
(static shapes). Its top level then holds ``scf.parallel`` nests (one per
linalg op, reduction dimensions as inner ``scf.for``), ``memref.copy`` ops
left by bufferization, buffer management (``memref.alloc``/``dealloc``,
views) and sometimes serial code (a reduction to a 0-d buffer is an
``scf.for`` with no parallel loop around it).

Output: every piece of computation sits inside a ``gpu.launch``, so the host
side is a straight-line sequence of allocations and launches that
:mod:`ferrule.runtime.cuda_hostplan` turns into plain data:

* ``scf.parallel`` over a box of N points -> blocks of ``BLOCK`` (256)
  threads; each thread walks a **grid-stride loop** over the linearised
  index ``i = blockIdx.x*blockDim.x + threadIdx.x; i < N; i += gridDim.x*
  blockDim.x`` and recovers the loop indices by div/rem with the (constant)
  extents, innermost fastest, so neighbouring threads touch neighbouring
  elements (coalesced). One launch per nest, so one fused pointwise region is
  exactly one kernel. Where :mod:`ferrule.runtime.cuda_vectorize` allows,
  each thread instead takes ``V`` neighbouring points with 16-byte vector
  loads/stores, behind a run-time alignment test whose other branch is the
  scalar loop (the grid then covers ``N / V`` points).
* ``scf.for`` nests around one ``scf.parallel`` (a reduction over a leading
  dimension, e.g. a bias gradient) -> the same, with the ``scf.for`` nest
  moved inside each thread: the loops come from one linalg op, whose
  parallel dimensions carry no dependence, so the interchange is legal.
* ``memref.copy`` -> the same kind of launch with a load/store body.
* maximal runs of other top-level ops (serial loops, 0-d stores) -> one
  launch of a single thread. Correct, not fast: they only occur for
  reductions to a scalar.
"""

from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple

from mlir import ir
from mlir.dialects import arith, gpu, memref, scf

from .cuda_vectorize import emit_alignment_test, emit_lanes, plan_vectors

BLOCK = 256
# CUDA's limit on gridDim.x. A grid-stride loop stays correct with fewer
# blocks than ceil(N / BLOCK).
MAX_GRID_X = 2**31 - 1

# Ops that stay on the host: buffer management, views of buffers (the kernel
# receives the base pointer; a view's static offset/strides travel in its
# type), constants (sunk into kernels by outlining) and the return.
HOST_OPS = frozenset({
    "arith.constant", "memref.alloc", "memref.dealloc", "memref.get_global",
    "memref.subview", "memref.collapse_shape", "memref.expand_shape",
    "memref.reinterpret_cast", "memref.cast", "func.return", "gpu.launch",
})


class GpuMappingError(Exception):
    """The function contains something the GPU mapping cannot place."""


@dataclass
class LaunchInfo:
    """What the mapping decided for one kernel (kept as launch metadata).

    ``kind``: "parallel" (a loop nest), "copy" (a memref.copy) or "serial"
    (one thread). ``elements``: points of the iteration box (1 for serial).
    ``grid_stride``: the kernel loops with stride gridDim.x*blockDim.x. The
    grid is compiled in (LLVM uses its range), so launch it as recorded.
    ``vector``: points per thread per step with 16-byte loads/stores (1:
    scalar; ``scalar_reason`` says why, for a parallel nest). A vector
    kernel falls back to its scalar loop when a buffer is misaligned.
    """
    name: str
    kind: str
    elements: int
    grid: Tuple[int, int, int]
    block: Tuple[int, int, int]
    grid_stride: bool
    vector: int = 1
    scalar_reason: str = ""


def _const_index(v: ir.Value) -> int:
    op = v.owner
    if not isinstance(op, ir.OpView) or op.operation.name != "arith.constant":
        raise GpuMappingError(
            f"loop bound {v} is not a constant; the GPU path needs static shapes")
    return ir.IntegerAttr(op.operation.attributes["value"]).value


def _index(value: int) -> ir.Value:
    return arith.ConstantOp(ir.IndexType.get(), value).result


def _launch(grid: int, block: int, name: str) -> Tuple[ir.Operation, ir.Block]:
    """Create ``gpu.launch`` with a 1-D grid and block at the insertion point.

    ``name`` becomes the outlined kernel's (and its gpu.module's) symbol, so
    the metadata gathered here can be matched to kernels after outlining.
    """
    # The extended builder adds the entry block with the 12 index arguments
    # (block ids, thread ids, grid sizes, block sizes).
    op = gpu.LaunchOp((grid, 1, 1), (block, 1, 1))
    op.attributes["function"] = ir.FlatSymbolRefAttr.get(name)
    op.attributes["module"] = ir.FlatSymbolRefAttr.get(name)
    return op, op.regions[0].blocks[0]


def _grid_stride_loop(blk: ir.Block, trips: Sequence[int],
                      bounds: Sequence[Tuple[int, int, int]], width: int = 1
                      ) -> Tuple[List[List[ir.Value]], ir.Operation]:
    """Build, at the insertion point inside launch body ``blk``, a
    grid-stride loop over the box ``bounds`` (trip counts ``trips``), each
    thread taking ``width`` neighbouring points along the innermost
    dimension per step (``trips[-1] % width == 0``).

    Returns ``(lanes, end)``: ``lanes[k]`` are the loop indices of the
    ``k``-th point, ``end`` the loop's terminator (put the body before it).
    """
    n = 1
    for t in trips:
        n *= t
    bx, tx, gdx, bdx = (blk.arguments[0], blk.arguments[3],
                        blk.arguments[6], blk.arguments[9])
    start = arith.AddIOp(arith.MulIOp(bx, bdx).result, tx).result
    stride = arith.MulIOp(gdx, bdx).result
    loop = scf.ForOp(start, _index(n // width), stride)
    with ir.InsertionPoint(loop.body):
        end = scf.YieldOp([]).operation
    last = len(bounds) - 1
    with ir.InsertionPoint(end):
        rest = loop.induction_variable
        base: List[ir.Value] = [None] * len(bounds)
        # Innermost dimension fastest: consecutive threads, consecutive
        # addresses. Divisors are constants, so LLVM strength-reduces
        # the div/rem to shifts or multiply-highs.
        for d in reversed(range(len(bounds))):
            ext = trips[d] // width if d == last else trips[d]
            if d > 0:
                iv = arith.RemUIOp(rest, _index(ext)).result
                rest = arith.DivUIOp(rest, _index(ext)).result
            else:
                iv = rest
            base[d] = iv
        if width > 1:
            base[last] = arith.MulIOp(base[last], _index(width)).result
        lanes = []
        for k in range(width):
            ivs = list(base)
            if k:
                ivs[last] = arith.AddIOp(ivs[last], _index(k)).result
            for d, (lb, _, st) in enumerate(bounds):
                if st != 1:
                    ivs[d] = arith.MulIOp(ivs[d], _index(st)).result
                if lb != 0:
                    ivs[d] = arith.AddIOp(ivs[d], _index(lb)).result
            lanes.append(ivs)
    return lanes, end


def _trips(bounds: Sequence[Tuple[int, int, int]]) -> List[int]:
    return [max(0, -(-(ub - lb) // st)) for lb, ub, st in bounds]


def _grid(points: int) -> int:
    return max(1, min(-(-points // BLOCK), MAX_GRID_X))


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
    trips = _trips(bounds)
    n = _count(trips)
    with ir.InsertionPoint(anchor):
        launch, blk = _launch(_grid(n), BLOCK, name)
    with ir.InsertionPoint(blk):
        lanes, end = _grid_stride_loop(blk, trips, bounds)
        with ir.InsertionPoint(end):
            body(lanes[0], end)
        gpu.TerminatorOp()
    return LaunchInfo(name, kind, n, (_grid(n), 1, 1), (BLOCK, 1, 1), True)


def _count(trips: Sequence[int]) -> int:
    n = 1
    for t in trips:
        n *= t
    return n


def _move_body(src: ir.Block, ivs: Sequence[ir.Value], end: ir.Operation) -> None:
    """Move the ops of loop body ``src`` (minus its terminator) before
    ``end``, its block arguments replaced by ``ivs``."""
    for arg, iv in zip(src.arguments, ivs):
        arg.replace_all_uses_with(iv)
    for op in list(src.operations)[:-1]:  # the last is scf.reduce
        op.operation.move_before(end)


def _map_parallel(par: ir.Operation, name: str) -> LaunchInfo:
    """One launch for an ``scf.parallel`` nest; vector lanes when
    :func:`~ferrule.runtime.cuda_vectorize.plan_vectors` allows, guarded by
    a run-time alignment test whose other branch is the scalar loop."""
    pv = par.opview
    lbs = [_const_index(v) for v in pv.lowerBound]
    ubs = [_const_index(v) for v in pv.upperBound]
    sts = [_const_index(v) for v in pv.step]
    if len(par.results):
        raise GpuMappingError("scf.parallel with reductions is not mapped to "
                              "the GPU (linalg lowers reductions to scf.for)")
    bounds = list(zip(lbs, ubs, sts))
    trips = _trips(bounds)
    n = _count(trips)
    src = par.regions[0].blocks[0]
    plan, why = plan_vectors(par, trips, bounds)
    width = plan.width if plan else 1
    grid = _grid(-(-n // width))
    with ir.InsertionPoint(par):
        launch, blk = _launch(grid, BLOCK, name)
    with ir.InsertionPoint(blk):
        if plan is None:
            lanes, end = _grid_stride_loop(blk, trips, bounds)
            _move_body(src, lanes[0], end)
        else:
            branch = scf.IfOp(emit_alignment_test(plan), [], has_else=True)
            with ir.InsertionPoint(branch.then_block):
                then_end = scf.YieldOp([]).operation
            with ir.InsertionPoint(branch.else_block):
                else_end = scf.YieldOp([]).operation
            with ir.InsertionPoint(then_end):
                lanes, end = _grid_stride_loop(blk, trips, bounds, width)
            emit_lanes(par, lanes, end, plan)
            with ir.InsertionPoint(else_end):   # misaligned: scalar fallback
                lanes, end = _grid_stride_loop(blk, trips, bounds)
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
        fv = op.opview
        try:
            bounds = tuple(_const_index(v) for v in (fv.lowerBound, fv.upperBound, fv.step))
        except GpuMappingError:
            return None
        chain.append((op, bounds))
        op = body[0].operation
    if not chain or op.name != "scf.parallel" or len(op.results):
        return None
    return chain, op


def _map_for_over_parallel(root: ir.Operation, chain, par: ir.Operation,
                           name: str) -> LaunchInfo:
    pv = par.opview
    bounds = [tuple(_const_index(v) for v in t)
              for t in zip(pv.lowerBound, pv.upperBound, pv.step)]
    src = par.regions[0].blocks[0]

    def body(ivs, end):
        for f, (lb, ub, st) in chain:     # rebuild the serial nest per thread
            with ir.InsertionPoint(end):
                loop = scf.ForOp(_index(lb), _index(ub), _index(st))
                with ir.InsertionPoint(loop.body):
                    inner_end = scf.YieldOp([]).operation
            f.opview.induction_variable.replace_all_uses_with(loop.induction_variable)
            end = inner_end
        _move_body(src, ivs, end)

    info = emit_grid_stride_launch(root, name, "parallel", bounds, body)
    root.erase()
    return info


def _map_copy(op: ir.Operation, name: str) -> LaunchInfo:
    src, dst = op.operands[0], op.operands[1]
    shape = ir.MemRefType(src.type).shape

    def body(ivs, _end):
        v = memref.LoadOp(src, ivs).result
        memref.StoreOp(v, dst, ivs)

    info = emit_grid_stride_launch(op, name, "copy",
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
        launch, blk = _launch(1, 1, name)
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

    def name():
        return f"{fname}_k{len(infos)}"

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
                infos.append(_map_for_over_parallel(op, *nest, name()))
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
