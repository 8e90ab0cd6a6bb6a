"""Building blocks of GPU launches shared by the loop mappings.

A launch is a ``gpu.launch`` with a 1-D grid of ``BLOCK``-thread blocks; a
*grid-stride loop* inside it lets any grid size cover any number of points,
innermost dimension fastest so neighbouring threads touch neighbouring
elements (coalesced). :class:`LaunchInfo` is the metadata kept per kernel.
"""

from dataclasses import dataclass
from typing import List, Sequence, Tuple

from mlir import ir
from mlir.dialects import arith, gpu, scf

BLOCK = 256
# CUDA's limit on gridDim.x. A grid-stride loop stays correct with fewer
# blocks than ceil(N / BLOCK).
MAX_GRID_X = 2**31 - 1


class GpuMappingError(Exception):
    """The function contains something the GPU mapping cannot place."""


@dataclass
class LaunchInfo:
    """What the mapping decided for one kernel (kept as launch metadata).

    ``kind``: "parallel" (a loop nest), "copy" (a memref.copy), "fill" (a
    copy of a splat constant, done by stores alone), "reduce"
    (one of a reduction's three launches) or "serial" (one thread). ``elements``: points of the iteration box (1 for serial).
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


def const_index(v: ir.Value) -> int:
    op = v.owner
    if not isinstance(op, ir.OpView) or op.operation.name != "arith.constant":
        raise GpuMappingError(
            f"loop bound {v} is not a constant; the GPU path needs static shapes")
    return ir.IntegerAttr(op.operation.attributes["value"]).value


def for_bounds(op: ir.Operation):
    """``(lower, upper, step)`` of an ``scf.for`` with constant bounds, else
    None."""
    fv = op.opview
    try:
        return tuple(const_index(v) for v in (fv.lowerBound, fv.upperBound, fv.step))
    except GpuMappingError:
        return None


def index_const(value: int) -> ir.Value:
    return arith.ConstantOp(ir.IndexType.get(), value).result


def launch(grid: int, block: int, name: str) -> Tuple[ir.Operation, ir.Block]:
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


def thread_start_and_stride(blk: ir.Block) -> Tuple[ir.Value, ir.Value]:
    """This thread's first linear index and the grid-stride step, built at
    the insertion point inside launch body ``blk``."""
    bx, tx, gdx, bdx = (blk.arguments[0], blk.arguments[3],
                        blk.arguments[6], blk.arguments[9])
    start = arith.AddIOp(arith.MulIOp(bx, bdx).result, tx).result
    stride = arith.MulIOp(gdx, bdx).result
    return start, stride


def delinearize(linear: ir.Value, trips: Sequence[int],
                bounds: Sequence[Tuple[int, int, int]], width: int = 1
                ) -> List[List[ir.Value]]:
    """Loop indices of linear point ``linear`` of the box ``bounds`` (trip
    counts ``trips``), innermost dimension fastest; with ``width`` > 1 the
    point is a group of ``width`` innermost neighbours and one index list
    per neighbour is returned (``trips[-1] % width == 0``)."""
    last = len(bounds) - 1
    rest = linear
    base: List[ir.Value] = [None] * len(bounds)
    # Divisors are constants, so LLVM strength-reduces the div/rem to
    # shifts or multiply-highs.
    for d in reversed(range(len(bounds))):
        ext = trips[d] // width if d == last else trips[d]
        if d > 0:
            iv = arith.RemUIOp(rest, index_const(ext)).result
            rest = arith.DivUIOp(rest, index_const(ext)).result
        else:
            iv = rest
        base[d] = iv
    if width > 1:
        base[last] = arith.MulIOp(base[last], index_const(width)).result
    lanes = []
    for k in range(width):
        ivs = list(base)
        if k:
            ivs[last] = arith.AddIOp(ivs[last], index_const(k)).result
        for d, (lb, _, st) in enumerate(bounds):
            if st != 1:
                ivs[d] = arith.MulIOp(ivs[d], index_const(st)).result
            if lb != 0:
                ivs[d] = arith.AddIOp(ivs[d], index_const(lb)).result
        lanes.append(ivs)
    return lanes


def grid_stride_loop(blk: ir.Block, trips: Sequence[int],
                     bounds: Sequence[Tuple[int, int, int]], width: int = 1
                     ) -> Tuple[List[List[ir.Value]], ir.Operation]:
    """Build, at the insertion point inside launch body ``blk``, a
    grid-stride loop over the box ``bounds`` (trip counts ``trips``), each
    thread taking ``width`` neighbouring points along the innermost
    dimension per step (``trips[-1] % width == 0``). Consecutive threads
    take consecutive points, so their accesses coalesce.

    Returns ``(lanes, end)``: ``lanes[k]`` are the loop indices of the
    ``k``-th point, ``end`` the loop's terminator (put the body before it).
    """
    start, stride = thread_start_and_stride(blk)
    loop = scf.ForOp(start, index_const(count(trips) // width), stride)
    with ir.InsertionPoint(loop.body):
        end = scf.YieldOp([]).operation
    with ir.InsertionPoint(end):
        lanes = delinearize(loop.induction_variable, trips, bounds, width)
    return lanes, end


def trip_counts(bounds: Sequence[Tuple[int, int, int]]) -> List[int]:
    return [max(0, -(-(ub - lb) // st)) for lb, ub, st in bounds]


def grid_for(points: int) -> int:
    return max(1, min(-(-points // BLOCK), MAX_GRID_X))


def count(trips: Sequence[int]) -> int:
    n = 1
    for t in trips:
        n *= t
    return n
