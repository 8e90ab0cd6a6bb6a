"""tile-matmul: ``linalg.matmul`` on buffers becomes a register-tiled,
vectorised loop nest (the CPU's matmul).

Expects: bufferized IR (``linalg.matmul`` on static 2-D ``memref``s of
``f32``/``f64``, or ``linalg.batch_matmul`` on 3-D ones; default indexing
maps), before ``convert-linalg-to-loops``.
Guarantees: no such op remains. ``C += A·B`` (per matrix of a batch, in a
loop over the batch) is computed as

* blocks of ``MR`` rows × ``NR = 2·lanes`` columns of C held in ``2·MR``
  vector registers across the whole K loop: per ``k``, two vector loads of
  B's row, ``MR`` broadcasts of A's elements, ``2·MR`` multiply-adds
  (``vector.fma`` -> ``llvm.fmuladd``: fused where the CPU has FMA) — the
  BLAS micro-kernel shape. Column blocks are the outer loop, so a
  ``K × NR`` panel of B stays in cache while every row block uses it; when
  ``K >= 16`` and at least two row blocks use it, the panel is first
  copied into a contiguous buffer (B's rows may be kilobytes apart and
  would fall into one cache set);
* the ``M mod MR`` rows below the last full row block: one block with a
  tile that many rows high (same panel, same loop over column blocks);
* the columns right of the last full column block (all of C when N < NR,
  e.g. a matrix-vector product): ``i, j, k`` loops with one accumulator
  and ``reassoc`` adds, which LLVM vectorises along ``k``.

``pack-scan-weights``' packed matmul (a ``linalg.generic`` marked
``ferrule.packed_matmul = NR``, reading B's K × NR panels from a buffer
``Bp[N/NR, K, NR]`` packed before a scan's loop) runs the same kernel on
``Bp``'s panels, packing nothing; one whose NR is not this kernel's tile
width is left to ``convert-linalg-to-loops`` (correct, slow).

A matmul whose B or C rows are not contiguous (innermost stride ≠ 1), or
with non-default indexing maps, is left to ``convert-linalg-to-loops``.

Option ``lanes-bytes``: the vector register width in bytes (32 for AVX2,
64 for AVX-512; the CPU pipeline picks the host's). ``rows``: ``MR``.
``threads`` (default 1): with 2 or more, a register-tiled part of at least
:data:`PARALLEL_MIN_FMAS` multiply-adds and two column blocks becomes a
*team function* (:mod:`.support.parallel`) — a private function that
computes the column blocks of thread ``tid`` of ``nt`` — called once with
``tid = 0, nt = 1`` (so the IR still means the serial product), which
``parallel-calls`` later runs on a team of ``threads`` threads. Its B
panels are allocated by the caller, one per thread: the team function
allocates nothing (an allocation failure on a worker thread could not
unwind to the caller). Identical products (same types) share one team
function. Splitting columns leaves every element's sum unchanged, so the
result is bitwise the serial one.

Why: ``convert-linalg-to-loops`` gives ``i, j, k`` loops with a strided B
and a serial float dependency chain: 0.3 GFLOP/s, 400× slower than numpy's
BLAS on a 1024³ product.

Rounding: the tiled kernel's multiply-adds may be fused (one rounding per
term), the remainders multiply and add separately; each dot product is
summed in order of ``k`` except in the ``reassoc`` remainder.
"""

from typing import List

from mlir import ir
from mlir.dialects import arith, memref, scf, vector

from ..dialect.ir_utils import function_body_ops
from .support.matmul import PACKED_MATMUL, plain_matmul_on_buffers
from .support.parallel import TeamFunctions
from .support.registry import register

_REASSOC = "#arith.fastmath<reassoc,contract>"


@register("tile-matmul")
def tile_matmul(module_op: ir.Operation, lanes_bytes: str = "32", rows: str = "4",
                threads: str = "1") -> None:
    vbytes, mr, nthreads = int(lanes_bytes), int(rows), int(threads)
    if vbytes not in (16, 32, 64) or not 1 <= mr <= 8 or not 1 <= nthreads <= 256:
        raise ValueError(f"tile-matmul: lanes-bytes must be 16, 32 or 64, rows 1..8 and "
                         f"threads 1..256, got {lanes_bytes!r}, {rows!r}, {threads!r}")
    team = TeamFunctions(module_op, "mm", nthreads) if nthreads > 1 else None
    for op in function_body_ops(module_op):
        if op.name == "linalg.matmul" and plain_matmul_on_buffers(op, 2, True):
            with ir.InsertionPoint(op), op.location:
                _emit(*op.operands, vbytes, mr, team)
            op.erase()
        elif op.name == "linalg.batch_matmul" and plain_matmul_on_buffers(op, 3, True):
            with ir.InsertionPoint(op), op.location:
                _emit_batched(op, vbytes, mr, team)
            op.erase()
        elif op.name == "linalg.generic" and _packed_on_buffers(op, vbytes):
            with ir.InsertionPoint(op), op.location:
                _emit_prepacked(*op.operands, vbytes, mr, team)
            op.erase()


def _packed_on_buffers(op: ir.Operation, vbytes: int) -> bool:
    """``op`` is ``pack-scan-weights``' packed matmul on static memrefs of one
    float type, its panels as wide as this kernel's tile, C's rows and the
    panels contiguous."""
    if PACKED_MATMUL not in op.attributes or len(op.operands) != 3 or len(op.results):
        return False
    types = [v.type for v in op.operands]
    if not all(isinstance(t, ir.MemRefType) and t.has_static_shape for t in types):
        return False
    a, bp, c = (ir.MemRefType(t) for t in types)
    elt = a.element_type
    if not (a.rank == 2 and bp.rank == 3 and c.rank == 2 and isinstance(elt, (ir.F32Type, ir.F64Type))
            and bp.element_type == elt and c.element_type == elt):
        return False
    nr = 2 * vbytes // (elt.width // 8)
    nb, k, w = bp.shape
    return (w == nr and ir.IntegerAttr(op.attributes[PACKED_MATMUL]).value == nr
            and a.shape == [c.shape[0], k] and c.shape[1] == nb * nr
            and c.get_strides_and_offset()[0][-1] == 1
            and bp.get_strides_and_offset()[0] == [k * nr, nr, 1])


def _emit_prepacked(a, bp, c, vbytes: int, mr: int, team=None) -> None:
    """C += A·B from B's panels already packed (``bp``: N/NR × K × NR)."""
    m, k = ir.MemRefType(a.type).shape
    nb, _, nr = ir.MemRefType(bp.type).shape
    elt = ir.MemRefType(a.type).element_type
    lanes = nr // 2
    if m and nb:
        if team is not None and nb >= 2 and m * nb * nr * k >= PARALLEL_MIN_FMAS:
            _tiled_on_team(team, a, bp, c, m, nb * nr, k, mr, lanes, elt, prepacked=True)
        else:
            _tiled(a, bp, c, m, _c(0), _c(nb * nr), k, mr, lanes, elt, prepacked=True)


def _c(v: int) -> ir.Value:
    return arith.constant(ir.IndexType.get(), v)


def _matrix(v: ir.Value, i: ir.Value) -> ir.Value:
    """Matrix ``i`` of a 3-D buffer, as a rank-reduced 2-D view."""
    t = ir.MemRefType(v.type)
    strides, _ = t.get_strides_and_offset()
    layout = ir.StridedLayoutAttr.get(ir.ShapedType.get_dynamic_stride_or_offset(), strides[1:])
    view = ir.MemRefType.get(t.shape[1:], t.element_type, layout)
    return memref.subview(v, [i, 0, 0], [1, *t.shape[1:]], [1, 1, 1], result_type=view)


def _emit_batched(op: ir.Operation, vbytes: int, mr: int, team) -> None:
    """``linalg.batch_matmul``: the 2-D kernel on each matrix of the batch."""
    a, b, c = op.operands
    batch = scf.ForOp(_c(0), _c(ir.MemRefType(a.type).shape[0]), _c(1))
    with ir.InsertionPoint(batch.body):
        i = batch.induction_variable
        _emit(_matrix(a, i), _matrix(b, i), _matrix(c, i), vbytes, mr, team)
        scf.YieldOp([])


# A product is run on a team of threads only from this many multiply-adds
# in its register-tiled part (about 25 us on one AVX2 core): a team's
# start and join cost a few microseconds (libgomp, measured 3-5 us with
# the call from Python included).
PARALLEL_MIN_FMAS = 1 << 20


def _emit(a: ir.Value, b: ir.Value, c: ir.Value, vbytes: int, mr: int, team=None) -> None:
    m, k = ir.MemRefType(a.type).shape
    n = ir.MemRefType(b.type).shape[1]
    elt = ir.MemRefType(a.type).element_type
    lanes = vbytes // (elt.width // 8)
    nr = 2 * lanes
    n_full = n - n % nr
    if m and n_full:
        if (team is not None and n_full // nr >= 2
                and m * n_full * k >= PARALLEL_MIN_FMAS):
            _tiled_on_team(team, a, b, c, m, n_full, k, mr, lanes, elt)
        else:
            _tiled(a, b, c, m, _c(0), _c(n_full), k, mr, lanes, elt)
    if n_full < n:
        _ijk(a, b, c, (0, m), (n_full, n), k)


# Pack B's K x NR panel into a contiguous buffer when the panel is tall and
# reused by several row blocks: B's rows are N elements apart, and at
# N = 1024 (4 KiB) every row of the panel falls into the same L1 cache set.
# Measured (AVX-512, one thread, loaded machine): 256x1024x1024 float32 33 ->
# 10.5 ms, 64x1024x1024 10.6 -> 2.3 ms: on par with single-threaded OpenBLAS
# (0.9-1.2x) on every GEMM shape of the char-LSTM step.
PACK_MIN_K = 16
PACK_MIN_ROW_BLOCKS = 2


def _packs(b, m, k, mr, lanes) -> bool:
    return k >= PACK_MIN_K and m >= PACK_MIN_ROW_BLOCKS * mr and \
        ir.MemRefType(b.type).shape[1] > 2 * lanes


def _tiled_on_team(team, a, b, c, m, n_full, k, mr, lanes, elt, prepacked=False) -> None:
    """C[0:m, 0:n_full] += A·B as a call of a team function over the
    ``n_full / 2·lanes`` column blocks (see the module docstring);
    ``prepacked``: ``b`` holds B's panels (:func:`_emit_prepacked`)."""
    nr = 2 * lanes
    pack = not prepacked and _packs(b, m, k, mr, lanes)
    panels_t = ir.MemRefType.get([team.threads, k, nr], elt)
    operands = [a, b, c] + ([memref.alloc(panels_t, [], [])] if pack else [])
    key = (str(a.type), str(b.type), str(c.type), m, n_full, k, mr, lanes, prepacked)

    def body(args, tid, nt):
        blocks = _c(n_full // nr)
        lo = arith.muli(arith.divui(arith.muli(blocks, tid), nt), _c(nr))
        hi = arith.muli(arith.divui(arith.muli(blocks, arith.addi(tid, _c(1))), nt), _c(nr))
        panel = None
        if pack:
            view = ir.MemRefType.get([k, nr], elt, ir.StridedLayoutAttr.get(
                ir.ShapedType.get_dynamic_stride_or_offset(), [nr, 1]))
            panel = memref.subview(args[3], [tid, 0, 0], [1, k, nr], [1, 1, 1],
                                   result_type=view)
        _tiled(args[0], args[1], args[2], m, lo, hi, k, mr, lanes, elt, panel, prepacked)

    team.call(key, operands, body)
    if pack:
        memref.dealloc(operands[3])


# Rows of A per pass over B's column blocks: each pass re-reads its rows of
# A once per column block, so they should stay in L2 (256 KiB of A; Zen 2
# has 512 KiB). Larger M is cut into such passes, each packing B's panels
# again (B is read M / MC times instead of A N / NR times) — only when a
# pass has at least MIN_PASS_ROWS rows (K <= 512 in float32): with fewer,
# packing B again costs more than it saves (without blocking K too, as
# BLAS does). Measured on one Zen 2 core: 1024x256x4096 float32 29.4 ->
# 26.8 ms (OpenBLAS 22.6); with passes of 64 rows, 1024^3 went from 22.9
# to 28.8 ms and 256x1024x4096 from 28 to 36.
A_BLOCK_BYTES = 256 * 1024
MIN_PASS_ROWS = 128


def _tiled(a, b, c, m, j_lo, j_hi, k, mr, lanes, elt, panel=None, prepacked=False) -> None:
    """C[0:m, j_lo:j_hi] += A·B with an ``mr`` × ``2·lanes`` register tile
    (``j_lo``, ``j_hi``: index values, multiples of ``2·lanes``), and one
    block of the ``m % mr`` rows left with a tile that many rows high, in
    passes of :data:`A_BLOCK_BYTES` of A's rows. B's panels are packed
    into ``panel`` when given, else into a buffer of their own when worth
    it (:func:`_packs`); with ``prepacked``, ``b`` holds them already
    (N/NR × K × NR) and nothing is packed."""
    pack = not prepacked and _packs(b, m, k, mr, lanes)
    owned = pack and panel is None
    if owned:
        panel = memref.alloc(ir.MemRefType.get([k, 2 * lanes], elt), [], [])
    rows_per_pass = max(mr, A_BLOCK_BYTES // (k * (elt.width // 8)) // mr * mr)
    passes = (m // rows_per_pass
              if m > rows_per_pass and (prepacked or rows_per_pass >= MIN_PASS_ROWS) else 0)
    if passes:
        ploop = scf.ForOp(_c(0), _c(passes * rows_per_pass), _c(rows_per_pass))
        with ir.InsertionPoint(ploop.body):
            _pass(a, b, c, ploop.induction_variable, rows_per_pass, j_lo, j_hi, k, mr,
                  lanes, elt, panel if pack else None, prepacked)
            scf.YieldOp([])
    tail = m - passes * rows_per_pass
    if tail:
        _pass(a, b, c, passes * rows_per_pass, tail, j_lo, j_hi, k, mr, lanes, elt,
              panel if pack else None, prepacked)
    if owned:
        memref.dealloc(panel)


def _pass(a, b, c, i_lo, rows, j_lo, j_hi, k, mr, lanes, elt, panel, prepacked=False) -> None:
    """C[i_lo:i_lo+rows, j_lo:j_hi] += A·B: over B's column blocks (each
    packed into ``panel`` first, unless None), the register-tiled row
    blocks of those ``rows`` (a static count; ``i_lo`` an index value or a
    Python int)."""
    vt = ir.VectorType.get([lanes], elt)
    full = rows - rows % mr

    def row(n):     # i_lo + n, folded when i_lo is static
        if isinstance(i_lo, int):
            return _c(i_lo + n)
        return i_lo if n == 0 else arith.addi(i_lo, _c(n))
    jloop = scf.ForOp(j_lo, j_hi, _c(2 * lanes))
    with ir.InsertionPoint(jloop.body):
        j0 = jloop.induction_variable
        j1 = arith.addi(j0, _c(lanes))
        if panel is not None:    # panel[k, :] = B[k, j0:j0 + NR]
            kloop = scf.ForOp(_c(0), _c(k), _c(1))
            with ir.InsertionPoint(kloop.body):
                kk = kloop.induction_variable
                for col, off in ((j0, 0), (j1, lanes)):
                    vector.store(vector.load(vt, b, [kk, col]), panel, [kk, _c(off)])
                scf.YieldOp([])
        if prepacked:   # panel j0 / NR of b
            view = ir.MemRefType.get([k, 2 * lanes], elt, ir.StridedLayoutAttr.get(
                ir.ShapedType.get_dynamic_stride_or_offset(), [2 * lanes, 1]))
            panel = memref.subview(b, [arith.divui(j0, _c(2 * lanes)), 0, 0],
                                   [1, k, 2 * lanes], [1, 1, 1], result_type=view)
        bsrc = (panel, (_c(0), _c(lanes))) if panel is not None else (b, (j0, j1))
        if full:
            iloop = scf.ForOp(row(0), row(full), _c(mr))
            with ir.InsertionPoint(iloop.body):
                _block(a, bsrc, c, iloop.induction_variable, mr, (j0, j1), k, vt)
                scf.YieldOp([])
        if rows > full:
            _block(a, bsrc, c, row(full), rows - full, (j0, j1), k, vt)
        scf.YieldOp([])


def _block(a, bsrc, c, i0, height, cols, k, vt) -> None:
    """C[i0:i0+height, cols] += A·B in ``2·height`` vector registers: per
    ``k``, two vector loads of B's row (``bsrc``: the buffer, and the two
    column indices to read it at), ``height`` broadcasts of A's elements,
    ``2·height`` multiply-adds."""
    bbuf, bcols = bsrc
    rows = [i0] + [arith.addi(i0, _c(r)) for r in range(1, height)]
    accs = [vector.load(vt, c, [row, col]) for row in rows for col in cols]
    kloop = scf.ForOp(_c(0), _c(k), _c(1), accs)
    with ir.InsertionPoint(kloop.body):
        kk = kloop.induction_variable
        bs = [vector.load(vt, bbuf, [kk, col]) for col in bcols]
        out: List[ir.Value] = []
        it = iter(kloop.inner_iter_args)
        for row in rows:
            av = vector.broadcast(vt, memref.load(a, [row, kk]))
            for bv in bs:
                out.append(vector.fma(av, bv, next(it)))
        scf.YieldOp(out)
    res = iter(kloop.results)
    for row in rows:
        for col in cols:
            vector.store(next(res), c, [row, col])


def _ijk(a, b, c, rows, cols, k) -> None:
    """C[rows, cols] += A·B as i, j, k loops with one reassociable
    accumulator per element (LLVM vectorises the k loop)."""
    fm = ir.Attribute.parse(_REASSOC)
    iloop = scf.ForOp(_c(rows[0]), _c(rows[1]), _c(1))
    with ir.InsertionPoint(iloop.body):
        i = iloop.induction_variable
        jloop = scf.ForOp(_c(cols[0]), _c(cols[1]), _c(1))
        with ir.InsertionPoint(jloop.body):
            j = jloop.induction_variable
            kloop = scf.ForOp(_c(0), _c(k), _c(1), [memref.load(c, [i, j])])
            with ir.InsertionPoint(kloop.body):
                kk = kloop.induction_variable
                prod = arith.mulf(memref.load(a, [i, kk]), memref.load(b, [kk, j]), fastmath=fm)
                scf.YieldOp([arith.addf(kloop.inner_iter_args[0], prod, fastmath=fm)])
            memref.store(kloop.results[0], c, [i, j])
            scf.YieldOp([])
        scf.YieldOp([])
