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
  exactly one kernel.
* ``memref.copy`` -> the same kind of launch with a load/store body.
* maximal runs of other top-level ops (serial loops, 0-d stores) -> one
  launch of a single thread. Correct, not fast: they only occur for
  reductions to a scalar.
"""

from typing import Callable, List, Sequence, Tuple

from mlir import ir
from mlir.dialects import arith, gpu, memref, scf

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


def _const_index(v: ir.Value) -> int:
    op = v.owner
    if not isinstance(op, ir.OpView) or op.operation.name != "arith.constant":
        raise GpuMappingError(
            f"loop bound {v} is not a constant; the GPU path needs static shapes")
    return ir.IntegerAttr(op.operation.attributes["value"]).value


def _index(value: int) -> ir.Value:
    return arith.ConstantOp(ir.IndexType.get(), value).result


def _launch(grid: int, block: int) -> Tuple[ir.Operation, ir.Block]:
    """Create ``gpu.launch`` with a 1-D grid and block at the insertion point."""
    # The extended builder adds the entry block with the 12 index arguments
    # (block ids, thread ids, grid sizes, block sizes).
    op = gpu.LaunchOp((grid, 1, 1), (block, 1, 1))
    return op, op.regions[0].blocks[0]


def emit_grid_stride_launch(anchor: ir.Operation,
                            bounds: Sequence[Tuple[int, int, int]],
                            body: Callable[[List[ir.Value], ir.Operation], None]
                            ) -> ir.Operation:
    """Insert before ``anchor`` a launch running ``body`` for every point of
    the box ``bounds`` = [(lower, upper, step), ...].

    ``body(ivs, end)`` is called once, with the insertion point inside the
    loop, and builds the per-point code from the index values ``ivs``; ops
    moved in from elsewhere go before ``end`` (the loop's terminator).
    """
    trips = [max(0, -(-(ub - lb) // st)) for lb, ub, st in bounds]
    n = 1
    for t in trips:
        n *= t
    grid = max(1, min(-(-n // BLOCK), MAX_GRID_X))
    with ir.InsertionPoint(anchor):
        launch, blk = _launch(grid, BLOCK)
    with ir.InsertionPoint(blk):
        bx, tx, gdx, bdx = (blk.arguments[0], blk.arguments[3],
                            blk.arguments[6], blk.arguments[9])
        start = arith.AddIOp(arith.MulIOp(bx, bdx).result, tx).result
        stride = arith.MulIOp(gdx, bdx).result
        loop = scf.ForOp(start, _index(n), stride)
        with ir.InsertionPoint(loop.body):
            end = scf.YieldOp([]).operation
        with ir.InsertionPoint(end):
            rest = loop.induction_variable
            ivs: List[ir.Value] = [None] * len(bounds)
            # Innermost dimension fastest: consecutive threads, consecutive
            # addresses. Divisors are constants, so LLVM strength-reduces
            # the div/rem to shifts or multiply-highs.
            for d in reversed(range(len(bounds))):
                lb, _, st = bounds[d]
                if d > 0:
                    ext = _index(trips[d])
                    iv = arith.RemUIOp(rest, ext).result
                    rest = arith.DivUIOp(rest, ext).result
                else:
                    iv = rest
                if st != 1:
                    iv = arith.MulIOp(iv, _index(st)).result
                if lb != 0:
                    iv = arith.AddIOp(iv, _index(lb)).result
                ivs[d] = iv
            body(ivs, end)
        gpu.TerminatorOp()
    return launch.operation


def _map_parallel(par: ir.Operation) -> None:
    pv = par.opview
    lbs = [_const_index(v) for v in pv.lowerBound]
    ubs = [_const_index(v) for v in pv.upperBound]
    sts = [_const_index(v) for v in pv.step]
    if len(par.results):
        raise GpuMappingError("scf.parallel with reductions is not mapped to "
                              "the GPU (linalg lowers reductions to scf.for)")
    src = par.regions[0].blocks[0]

    def body(ivs, end):
        for arg, iv in zip(src.arguments, ivs):
            arg.replace_all_uses_with(iv)
        for op in list(src.operations)[:-1]:  # the last is scf.reduce
            op.operation.move_before(end)

    emit_grid_stride_launch(par, list(zip(lbs, ubs, sts)), body)
    par.erase()


def _map_copy(op: ir.Operation) -> None:
    src, dst = op.operands[0], op.operands[1]
    shape = ir.MemRefType(src.type).shape

    def body(ivs, _end):
        v = memref.LoadOp(src, ivs).result
        memref.StoreOp(v, dst, ivs)

    emit_grid_stride_launch(op, [(0, s, 1) for s in shape], body)
    op.erase()


def _map_serial(run: List[ir.Operation]) -> None:
    """Move a run of serial top-level ops into a one-thread launch."""
    inside = {id(o) for o in run}
    for o in run:
        for r in o.results:
            for use in r.uses:
                if id(_top_level_ancestor(use.owner, run[0].parent)) not in inside:
                    raise GpuMappingError(
                        f"serial op {o.name} defines a value used on the host; "
                        f"cannot move it to the GPU")
    with ir.InsertionPoint(run[0]):
        launch, blk = _launch(1, 1)
    with ir.InsertionPoint(blk):
        term = gpu.TerminatorOp().operation
    for o in run:
        o.move_before(term)


def _top_level_ancestor(op, func_op) -> ir.Operation:
    op = op.operation if hasattr(op, "operation") else op
    while op.parent is not None and op.parent != func_op:
        op = op.parent
    return op


def map_function_to_gpu(func_op: ir.Operation) -> int:
    """Rewrite the top level of ``func_op`` in place; returns #launches made."""
    count = 0
    block = func_op.regions[0].blocks[0]
    for op in list(block.operations):
        op = op.operation
        if op.name == "scf.parallel":
            _map_parallel(op)
            count += 1
        elif op.name == "memref.copy":
            _map_copy(op)
            count += 1
    run: List[ir.Operation] = []
    for op in list(block.operations):
        op = op.operation
        if op.name in HOST_OPS:
            if run:
                _map_serial(run)
                count += 1
                run = []
        else:
            run.append(op)
    if run:
        _map_serial(run)
        count += 1
    return count


def map_module_to_gpu(module: ir.Module) -> int:
    """Apply :func:`map_function_to_gpu` to every ``func.func`` with a body."""
    total = 0
    for op in module.body.operations:
        op = op.operation
        if op.name == "func.func" and len(op.regions[0].blocks):
            total += map_function_to_gpu(op)
    return total
