"""Row layouts: how each value of a function relates to its batch rows.

For :mod:`ferrule.runtime.cpu.rowsplit`. Given the batch size N and which
arguments are cut into row chunks, :class:`Layouts` gives every tensor value
of the function one layout:

* ``(SPLIT, d)`` — a chunk holds rows lo:hi of dimension ``d``;
* ``SUM`` — a chunk holds a partial sum over its rows (the value is the sum
  over chunks);
* ``WHOLE`` — the same in every chunk (computed from whole values only);
* ``FREE`` — shape only (``tensor.empty``, a splat constant): whatever shape
  a use needs.

Each op kind has one rule; what no rule covers raises :class:`NotSplittable`
with the reason. Soundness in one line per rule: an op that never combines
two rows of the split dimension computes each chunk's rows from that
chunk's rows alone; a sum over the split dimension starting from zero, and
any linear function of such sums, is the sum over chunks of the same
computation on each chunk; a value computed only from whole values is the
same in every chunk.
"""

from typing import Dict, List, Optional

from mlir import ir

from ...dialect.builders import CALLBACK_PREFIX
from ...dialect.ir_utils import defining_op, dense_i64, is_splat_zero, map_dims

SPLIT, SUM, WHOLE, FREE = "split", "sum", "whole", "free"
# FREE: tensor.empty / splat constants — no content that depends on rows,
# so any shape a use needs (cloned per use).


class NotSplittable(Exception):
    """Why a function cannot be split over row chunks."""


def shape_of(v) -> Optional[List[int]]:
    t = v.type
    return list(t.shape) if isinstance(t, ir.RankedTensorType) else None


class Layouts:
    """Layout of every tensor value of one function for batch size N."""

    def __init__(self, fn, N: int, split_args: List[bool]):
        self.N = N
        self.of: Dict[ir.Value, object] = {}
        block = fn.regions[0].blocks[0]
        for a, s in zip(block.arguments, split_args):
            self.of[a] = (SPLIT, 0) if s else WHOLE
        for op in block.operations:
            op = op.operation
            if op.name == "func.return":
                self.results = [self.get(v) for v in op.operands]
                for k, lay in enumerate(self.results):
                    if lay == FREE:    # a constant result: same in every chunk
                        self.results[k] = WHOLE
                continue
            self._op(op)

    def get(self, v):
        if v in self.of:
            return self.of[v]
        if not isinstance(v.type, ir.RankedTensorType):
            return WHOLE               # scalars come from outside any chunking
        raise NotSplittable(f"no layout for {v}")

    # -- rules ---------------------------------------------------------------
    def _op(self, op):
        name = op.name
        if name == "tensor.empty":
            self.of[op.results[0]] = FREE
        elif name == "arith.constant":
            v = op.attributes["value"]
            tensor = isinstance(op.results[0].type, ir.RankedTensorType)
            splat = isinstance(v, ir.DenseElementsAttr) and v.is_splat
            self.of[op.results[0]] = FREE if tensor and splat else WHOLE
        elif name == "linalg.generic":
            self._generic(op)
        elif name in ("linalg.matmul", "linalg.batch_matmul"):
            self._matmul(op)
        elif name == "tensor.extract_slice":
            self._extract(op)
        elif name == "tensor.insert_slice":
            self._insert(op)
        elif name in ("tensor.collapse_shape", "tensor.expand_shape"):
            self._reshape(op)
        elif name == "func.call" and ir.FlatSymbolRefAttr(
                op.attributes["callee"]).value.startswith(CALLBACK_PREFIX):
            raise NotSplittable("a host callback (pure_callback) sees whole arrays")
        else:
            for r in op.results:
                if isinstance(r.type, ir.RankedTensorType):
                    raise NotSplittable(f"'{name}' is not known to keep rows apart")

    def _generic(self, op):
        if any(o.operation.name == "linalg.index"
               for o in op.regions[0].blocks[0].operations):
            raise NotSplittable("a region reads its loop indices (linalg.index)")
        if any(o.operation.name == "tensor.extract"
               for o in op.regions[0].blocks[0].operations):
            raise NotSplittable("a region reads a tensor at computed positions (a gather)")
        maps = [ir.AffineMapAttr(a).value for a in op.attributes["indexing_maps"]]
        dims = [map_dims(m) for m in maps]
        if any(d is None for d in dims):
            raise NotSplittable("a region with non-permutation indexing maps")
        iters = [str(a) for a in op.attributes["iterator_types"]]
        n_in = int(ir.DenseI32ArrayAttr(op.attributes["operandSegmentSizes"])[0])
        operands = list(op.operands)
        lays = [self.get(v) for v in operands]
        # The loop the split rows run along: fixed by every split operand.
        loops = {dims[k][lay[1]] for k, lay in enumerate(lays) if isinstance(lay, tuple)}
        if len(loops) > 1:
            raise NotSplittable("a region combines rows of different dimensions")
        has_sum = any(lay == SUM for lay in lays[:n_in])
        if not loops and not has_sum:
            loop = self._broadcast_loop(op, dims, lays, n_in)
            if loop is None:
                for r in op.results:
                    self.of[r] = WHOLE
                return
            loops = {loop}
        if has_sum:
            self._linear(op, lays, n_in, loops)
            return
        (loop,) = loops
        for k, lay in enumerate(lays):
            if lay == WHOLE and loop in dims[k]:
                raise NotSplittable("a region reads a whole array along the split rows")
        reduced = "reduction" in iters[loop]
        for j, r in enumerate(op.results):
            init, init_dims = operands[n_in + j], dims[n_in + j]
            if not reduced:
                if loop not in init_dims or lays[n_in + j] == SUM:
                    raise NotSplittable("a region's result does not keep the split rows")
                self.of[r] = (SPLIT, init_dims.index(loop))
                continue
            body = op.regions[0].blocks[0]
            if not _sums_into(body, n_in + j, j):
                raise NotSplittable("a reduction over the split rows that is not a sum")
            if not (is_splat_zero(init) or lays[n_in + j] == SUM):
                raise NotSplittable("a sum over the split rows onto a non-zero start")
            self.of[r] = SUM

    def _broadcast_loop(self, op, dims, lays, n_in):
        """A loop along which the output has N elements that no input reads
        (a bias broadcast to the batch shape): split along it, else None."""
        out_dims = dims[n_in]
        out_shape = shape_of(op.results[0])
        read = {d for k in range(n_in) for d in dims[k] if lays[k] != FREE}
        cands = [out_dims[p] for p, s in enumerate(out_shape)
                 if s == self.N and out_dims[p] not in read]
        if len(cands) != 1 or len(op.results) != 1:
            return None
        return cands[0]

    def _linear(self, op, lays, n_in, loops):
        """A pointwise region over partial sums (and splat constants) that
        is linear in the sums — a mean's scaling, a sum of gradients —
        gives a partial sum."""
        if loops or any(lay not in (SUM, FREE) for lay in lays):
            raise NotSplittable("a partial sum is combined with row data")
        iters = [str(a) for a in op.attributes["iterator_types"]]
        if any("reduction" in it for it in iters):
            raise NotSplittable("a reduction of a partial sum")
        body = op.regions[0].blocks[0]
        n_out = len(op.results)
        if any(list(body.arguments[n_in + j].uses) for j in range(n_out)):
            raise NotSplittable("a region over a partial sum reads its init")
        # Every value not computed from a sum is a constant: the other
        # inputs are splats, and constants combine into constants. A value
        # computed from sums must be linear in them.
        linear = {body.arguments[k] for k in range(n_in) if lays[k] == SUM}
        for o in body.operations:
            o = o.operation
            lin = [v in linear for v in o.operands]
            if o.name == "linalg.yield":
                for r, is_sum in zip(op.results, lin):
                    self.of[r] = SUM if is_sum else WHOLE
                continue
            if not any(lin):
                continue
            if (o.name in ("arith.addf", "arith.subf") and all(lin)
                    or o.name in ("arith.negf", "arith.truncf", "arith.extf")
                    or o.name == "arith.mulf" and sum(lin) == 1
                    or o.name == "arith.divf" and lin == [True, False]):
                linear.add(o.results[0])
            else:
                raise NotSplittable(f"a partial sum goes through '{o.name}'")

    def _matmul(self, op):
        a, b, c = (self.get(v) for v in op.operands)
        if op.name == "linalg.batch_matmul":
            if a == WHOLE and b == WHOLE and c in (WHOLE, FREE):
                self.of[op.results[0]] = WHOLE
                return
            raise NotSplittable("a batched matmul of split rows")
        if a == (SPLIT, 0) and b == WHOLE:
            out = (SPLIT, 0)
        elif a == WHOLE and b == (SPLIT, 1):
            out = (SPLIT, 1)
        elif a == (SPLIT, 1) and b == (SPLIT, 0):
            out = SUM
        elif a == WHOLE and b == WHOLE:
            out = WHOLE
        else:
            raise NotSplittable("a matmul mixing the split rows with another dimension")
        if out == SUM:
            ok = c == SUM or (c == FREE and is_splat_zero(op.operands[2]))
        elif out == WHOLE:
            ok = c in (WHOLE, FREE)
        else:
            ok = c in (FREE, out)
        if not ok:
            raise NotSplittable("a matmul accumulating onto an array laid out differently")
        self.of[op.results[0]] = out

    def _extract(self, op):
        src = self.get(op.operands[0])
        if not isinstance(src, tuple):
            if src == SUM:
                raise NotSplittable("a slice of a partial sum")
            self.of[op.results[0]] = WHOLE
            return
        d = src[1]
        offs, sizes, strides = (dense_i64(op, k) for k in ("static_offsets", "static_sizes",
                                                         "static_strides"))
        if offs[d] != 0 or sizes[d] != self.N or strides[d] != 1:
            raise NotSplittable("a slice selects some of the split rows")
        out_rank = len(shape_of(op.results[0]))
        dropped = [k for k, s in enumerate(sizes) if s == 1] if out_rank < len(sizes) else []
        self.of[op.results[0]] = (SPLIT, d - sum(1 for k in dropped if k < d))

    def _insert(self, op):
        src, dest = self.get(op.operands[0]), self.get(op.operands[1])
        if SUM in (src, dest):
            raise NotSplittable("a partial sum inserted into an array")
        sd = src[1] if isinstance(src, tuple) else None
        dd = dest[1] if isinstance(dest, tuple) else None
        if sd is None and dd is None:
            self.of[op.results[0]] = WHOLE if WHOLE in (src, dest) else FREE
            return
        if WHOLE in (src, dest):
            raise NotSplittable("split rows inserted into (or with) a whole array")
        if len(shape_of(op.operands[0])) != len(shape_of(op.operands[1])):
            raise NotSplittable("a rank-changing insert of split rows")
        d = dd if dd is not None else sd
        if sd is not None and sd != d:
            raise NotSplittable("an insert moves the split rows to another dimension")
        offs, sizes, strides = (dense_i64(op, k) for k in ("static_offsets", "static_sizes",
                                                         "static_strides"))
        if offs[d] != 0 or sizes[d] != self.N or strides[d] != 1:
            raise NotSplittable("an insert into some of the split rows")
        self.of[op.results[0]] = (SPLIT, d)

    def _reshape(self, op):
        src = self.get(op.operands[0])
        if not isinstance(src, tuple):
            self.of[op.results[0]] = WHOLE if src == FREE else src
            return
        groups = [[ir.IntegerAttr(x).value for x in g] for g in op.attributes["reassociation"]]
        d = src[1]
        src_shape, out_shape = shape_of(op.operands[0]), shape_of(op.results[0])
        # The split rows may share a group only with unit dimensions.
        if op.name == "tensor.collapse_shape":
            (g,) = [k for k, grp in enumerate(groups) if d in grp]
            if any(src_shape[k] != 1 for k in groups[g] if k != d):
                raise NotSplittable("a reshape merges the split rows with another dimension")
            self.of[op.results[0]] = (SPLIT, g)
        else:
            big = [k for k in groups[d] if out_shape[k] != 1]
            if len(big) != 1:
                raise NotSplittable("a reshape splits the split rows")
            self.of[op.results[0]] = (SPLIT, big[0])


def _sums_into(body: ir.Block, out_arg: int, j: int) -> bool:
    """The region yields ``addf(out_j, v)`` for result ``j`` and reads
    ``out_j`` nowhere else."""
    out = body.arguments[out_arg]
    ops = [o.operation for o in body.operations]
    v = ops[-1].operands[j]
    add = defining_op(v)
    if add is None or add.name != "arith.addf" or out not in list(add.operands):
        return False
    return len(list(out.uses)) == 1
