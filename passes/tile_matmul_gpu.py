"""tile-matmul-gpu: ``linalg.matmul``/``linalg.batch_matmul`` on buffers
become parallel loops over register tiles (the GPU's matmul).

Expects: bufferized IR on static ``memref``s of ``f32``/``f64`` with default
indexing maps, before ``convert-linalg-to-parallel-loops`` (the GPU mapping
then gives each tile to a thread, column tiles fastest).
Guarantees: no such op remains. C += A·B is computed as

* an ``scf.parallel`` over (batch,) ``⌊M/rows⌋ × ⌊N/cols⌋`` tiles; each point
  keeps its ``rows × cols`` block of C in registers through the K loop,
  loading ``rows`` elements of A and ``cols`` of B per ``k`` for
  ``rows·cols`` multiply-adds (a thread per element would load two values
  per multiply-add). Neighbouring threads take neighbouring column tiles,
  so B's loads coalesce and A's are shared across a warp;
* the rows below the last full row tile and the columns right of the last
  full column tile: ``scf.parallel`` over their elements, one K loop each.

Options ``rows``, ``cols``: the tile (default 4 × 4: 16 accumulators).
"""

from typing import List

from mlir import ir
from mlir.dialects import arith, memref, scf

from ..dialect.ir_utils import function_body_ops
from .support.matmul import plain_matmul_on_buffers
from .support.registry import register


@register("tile-matmul-gpu")
def tile_matmul_gpu(module_op: ir.Operation, rows: str = "4", cols: str = "4") -> None:
    tm, tn = int(rows), int(cols)
    if not (1 <= tm <= 8 and 1 <= tn <= 8):
        raise ValueError(f"tile-matmul-gpu: rows and cols must be 1..8, got {rows!r}, {cols!r}")
    for op in function_body_ops(module_op):
        rank = {"linalg.matmul": 2, "linalg.batch_matmul": 3}.get(op.name)
        if rank is not None and plain_matmul_on_buffers(op, rank, False):
            with ir.InsertionPoint(op), op.location:
                _emit(op, rank, tm, tn)
            op.erase()


def _c(v: int) -> ir.Value:
    return arith.constant(ir.IndexType.get(), v)


def _parallel(bounds):
    """``scf.parallel`` over ``[(lower, upper, step), ...]`` at the insertion
    point; returns (its body block, its induction variables). The body
    must end with ``scf.reduce``."""
    par = scf.ParallelOp([], [_c(b[0]) for b in bounds], [_c(b[1]) for b in bounds],
                         [_c(b[2]) for b in bounds], [])
    block = par.regions[0].blocks.append(*([ir.IndexType.get()] * len(bounds)))
    return block, list(block.arguments)


def _emit(op: ir.Operation, rank: int, tm: int, tn: int) -> None:
    a, b, c = op.operands
    shape_a, shape_b = ir.MemRefType(a.type).shape, ir.MemRefType(b.type).shape
    batch = [(0, shape_a[0], 1)] if rank == 3 else []
    m, k = shape_a[-2:]
    n = shape_b[-1]
    m_full, n_full = m - m % tm, n - n % tn
    if m_full and n_full:
        body, ivs = _parallel(batch + [(0, m_full, tm), (0, n_full, tn)])
        with ir.InsertionPoint(body):
            pre = ivs[:-2]
            i0, j0 = ivs[-2:]
            rows = [i0] + [arith.addi(i0, _c(r)) for r in range(1, tm)]
            cols = [j0] + [arith.addi(j0, _c(q)) for q in range(1, tn)]
            accs = [memref.load(c, pre + [i, j]) for i in rows for j in cols]
            kloop = scf.ForOp(_c(0), _c(k), _c(1), accs)
            with ir.InsertionPoint(kloop.body):
                kk = kloop.induction_variable
                av = [memref.load(a, pre + [i, kk]) for i in rows]
                bv = [memref.load(b, pre + [kk, j]) for j in cols]
                it = iter(kloop.inner_iter_args)
                out: List[ir.Value] = [arith.addf(next(it), arith.mulf(x, y))
                                       for x in av for y in bv]
                scf.YieldOp(out)
            res = iter(kloop.results)
            for i in rows:
                for j in cols:
                    memref.store(next(res), c, pre + [i, j])
            scf.ReduceOp([], 0)
        _elementwise(a, b, c, batch, (0, m_full), (n_full, n), k)
        _elementwise(a, b, c, batch, (m_full, m), (0, n), k)
    else:
        _elementwise(a, b, c, batch, (0, m), (0, n), k)


def _elementwise(a, b, c, batch, rows, cols, k) -> None:
    """C[rows, cols] += A·B with one point (and one K loop) per element."""
    if rows[0] >= rows[1] or cols[0] >= cols[1]:
        return
    body, ivs = _parallel(batch + [(rows[0], rows[1], 1), (cols[0], cols[1], 1)])
    with ir.InsertionPoint(body):
        pre, (i, j) = ivs[:-2], ivs[-2:]
        kloop = scf.ForOp(_c(0), _c(k), _c(1), [memref.load(c, pre + [i, j])])
        with ir.InsertionPoint(kloop.body):
            kk = kloop.induction_variable
            prod = arith.mulf(memref.load(a, pre + [i, kk]), memref.load(b, pre + [kk, j]))
            scf.YieldOp([arith.addf(kloop.inner_iter_args[0], prod)])
        memref.store(kloop.results[0], c, pre + [i, j])
        scf.ReduceOp([], 0)
