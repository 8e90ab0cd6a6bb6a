"""Row splitting: run a function over chunks of its batch rows on threads.

The arguments whose leading dimension is the batch size N are cut into
row chunks; every other argument (weights, biases) is passed whole to each
chunk. The same program compiled for n-row chunks then runs once per chunk
(the compiled code releases the GIL), and the caller assembles each result
according to its *layout*:

* ``("split", d)`` — the chunk computes rows lo:hi of dimension ``d``
  (activations, their cotangents, ``x @ w``, ``dx``);
* ``"sum"`` — the chunk computes a partial sum over its rows (a weight
  gradient ``x.T @ dy``, a bias gradient ``sum(dy, axis=0)``, a ``mean``
  loss): the caller adds the chunks' results in chunk order;
* ``"whole"`` — the value does not depend on the rows; chunk 0's is kept.

:func:`chunk_module` infers every value's layout from its producer
(``_Layouts``), refuses what it cannot prove (a max over rows, a matmul
mixing the row dimension with another one, a non-linear use of a partial
sum, a region that reads across rows…) with the reason, and rewrites the IR
for n-row chunks: each row-split value's dimension ``d`` becomes n; a
``tensor.empty`` or splat constant is cloned for each use at the shape that
use needs.

Soundness in one line per rule: an op that never combines two rows of the
split dimension computes each chunk's rows from that chunk's rows alone; a
sum over the split dimension starting from zero, and any linear function
of such sums, is the sum over chunks of the same computation on each chunk;
a value computed only from whole values is the same in every chunk.
"""

import itertools
import math
from typing import Dict, List, Optional, Tuple

from mlir import ir

SPLIT, SUM, WHOLE, FREE = "split", "sum", "whole", "free"
# FREE: tensor.empty / splat constants — no content that depends on rows,
# so any shape a use needs (cloned per use).


class NotSplittable(Exception):
    """Why a function cannot be split over row chunks."""


def _shape(v) -> Optional[List[int]]:
    t = v.type
    return list(t.shape) if isinstance(t, ir.RankedTensorType) else None


def _find(module, name):
    for op in module.body.operations:
        op = op.operation
        if op.name == "func.func" and ir.StringAttr(op.attributes["sym_name"]).value == name:
            return op
    raise KeyError(name)


def _dense(op, name):
    return list(ir.DenseI64ArrayAttr(op.attributes[name]))


def _map_dims(m: ir.AffineMap) -> Optional[List[int]]:
    dims = []
    for e in m.results:
        if not isinstance(e, ir.AffineDimExpr):
            return None
        dims.append(ir.AffineDimExpr(e).position)
    return dims


def _is_splat_zero(op) -> bool:
    if op is None or op.name != "arith.constant":
        return False
    v = op.attributes["value"]
    if not isinstance(v, ir.DenseElementsAttr) or not v.is_splat:
        return False
    s = v.get_splat_value()
    return isinstance(s, ir.FloatAttr) and ir.FloatAttr(s).value == 0.0


def _owner(v: ir.Value):
    o = v.owner
    return o.operation if isinstance(o, ir.OpView) else None


class _Layouts:
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
        else:
            for r in op.results:
                if isinstance(r.type, ir.RankedTensorType):
                    raise NotSplittable(f"'{name}' is not known to keep rows apart")

    def _generic(self, op):
        if any(o.operation.name == "linalg.index"
               for o in op.regions[0].blocks[0].operations):
            raise NotSplittable("a region reads its loop indices (linalg.index)")
        maps = [ir.AffineMapAttr(a).value for a in op.attributes["indexing_maps"]]
        dims = [_map_dims(m) for m in maps]
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
            if not (_is_splat_zero(_owner(init)) or lays[n_in + j] == SUM):
                raise NotSplittable("a sum over the split rows onto a non-zero start")
            self.of[r] = SUM

    def _broadcast_loop(self, op, dims, lays, n_in):
        """A loop along which the output has N elements that no input reads
        (a bias broadcast to the batch shape): split along it, else None."""
        out_dims = dims[n_in]
        out_shape = _shape(op.results[0])
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
            ok = c == SUM or (c == FREE and _is_splat_zero(_owner(op.operands[2])))
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
        offs, sizes, strides = (_dense(op, k) for k in ("static_offsets", "static_sizes",
                                                         "static_strides"))
        if offs[d] != 0 or sizes[d] != self.N or strides[d] != 1:
            raise NotSplittable("a slice selects some of the split rows")
        out_rank = len(_shape(op.results[0]))
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
        if len(_shape(op.operands[0])) != len(_shape(op.operands[1])):
            raise NotSplittable("a rank-changing insert of split rows")
        d = dd if dd is not None else sd
        if sd is not None and sd != d:
            raise NotSplittable("an insert moves the split rows to another dimension")
        offs, sizes, strides = (_dense(op, k) for k in ("static_offsets", "static_sizes",
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
        src_shape, out_shape = _shape(op.operands[0]), _shape(op.results[0])
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
    add = _owner(v)
    if add is None or add.name != "arith.addf" or out not in list(add.operands):
        return False
    return len(list(out.uses)) == 1


# --------------------------------------------------------------- rewriting

def _retyped(t: ir.RankedTensorType, d: int, rows: int) -> ir.RankedTensorType:
    shape = list(t.shape)
    shape[d] = rows
    return ir.RankedTensorType.get(shape, t.element_type, t.encoding)


def _needed(use_op, k: int, lays: _Layouts) -> Optional[int]:
    """The split dimension operand ``k`` of ``use_op`` must have in a chunk,
    or None when it stays whole."""
    name = use_op.name
    if name == "linalg.generic":
        maps = [ir.AffineMapAttr(a).value for a in use_op.attributes["indexing_maps"]]
        n_in = int(ir.DenseI32ArrayAttr(use_op.attributes["operandSegmentSizes"])[0])
        loop = _split_loop(use_op, lays, maps, n_in)
        dims = _map_dims(maps[k])
        return dims.index(loop) if loop is not None and loop in dims else None
    if name in ("linalg.matmul", "linalg.batch_matmul"):
        out = lays.get(use_op.results[0])
        if k == 2:
            return out[1] if isinstance(out, tuple) else None
        a, b = lays.get(use_op.operands[0]), lays.get(use_op.operands[1])
        lay = a if k == 0 else b
        return lay[1] if isinstance(lay, tuple) else None
    if name == "tensor.insert_slice":
        out = lays.get(use_op.results[0])
        return out[1] if isinstance(out, tuple) else None
    if name == "func.return":
        return None
    return None


def _split_loop(op, lays: _Layouts, maps, n_in):
    for k, v in enumerate(op.operands):
        lay = lays.of.get(v)
        if isinstance(lay, tuple):
            return _map_dims(maps[k])[lay[1]]
    for j, r in enumerate(op.results):
        lay = lays.of.get(r)
        if isinstance(lay, tuple):
            return _map_dims(maps[n_in + j])[lay[1]]
    return None


def _rewrite(fn, lays: _Layouts, rows: int) -> None:
    block = fn.regions[0].blocks[0]
    for a in block.arguments:
        lay = lays.of[a]
        if isinstance(lay, tuple):
            a.set_type(_retyped(a.type, lay[1], rows))
    for op in list(block.operations):
        op = op.operation
        if op.name in ("tensor.empty", "arith.constant") and lays.of.get(op.results[0]) == FREE:
            _clone_free(op, lays, rows)
            continue
        for r in op.results:
            lay = lays.of.get(r)
            if isinstance(lay, tuple):
                r.set_type(_retyped(r.type, lay[1], rows))
        if op.name in ("tensor.extract_slice", "tensor.insert_slice"):
            lay = lays.of.get(op.results[0])
            if isinstance(lay, tuple):
                src_lay = lays.of.get(op.operands[0]) if op.name == "tensor.extract_slice" \
                    else lay
                d = src_lay[1]
                sizes = _dense(op, "static_sizes")
                sizes[d] = rows
                op.attributes["static_sizes"] = ir.DenseI64ArrayAttr.get(sizes)
        elif op.name == "tensor.expand_shape":
            lay = lays.of.get(op.results[0])
            if isinstance(lay, tuple):
                shape = _dense(op, "static_output_shape")
                shape[lay[1]] = rows
                op.attributes["static_output_shape"] = ir.DenseI64ArrayAttr.get(shape)
    results = [v.type for v in list(block.operations)[-1].operation.operands]
    fn.attributes["function_type"] = ir.TypeAttr.get(
        ir.FunctionType.get([a.type for a in block.arguments], results))


def _clone_free(op, lays: _Layouts, rows: int) -> None:
    """Give every use of a shape-only value (empty tensor, splat constant)
    its own copy at the shape that use needs."""
    r = op.results[0]
    for use in list(r.uses):
        user, k = use.owner, use.operand_number
        user = user.operation if isinstance(user, ir.OpView) else user
        d = _needed(user, k, lays)
        if d is None:
            continue
        t = _retyped(r.type, d, rows)
        with ir.InsertionPoint(op), op.location:
            if op.name == "tensor.empty":
                new = ir.Operation.create("tensor.empty", results=[t])
            else:
                splat = ir.DenseElementsAttr(op.attributes["value"]).get_splat_value()
                new = ir.Operation.create("arith.constant", results=[t], attributes={
                    "value": ir.DenseElementsAttr.get_splat(t, splat)})
        user.operands[k] = new.results[0]
    if not list(r.uses):
        op.erase()


# --------------------------------------------------------------- entry point

def plan_split(module_text: str, func_name: str, ctx: ir.Context
               ) -> Tuple[Optional[dict], str]:
    """``(plan, "")`` or ``(None, reason)``.

    ``plan``: ``{"rows": N, "split_args": [bool per argument], "results":
    [("split", d) | "sum" | "whole" per result]}``. The batch size N is the
    leading dimension of some arguments; candidates are tried from the one
    covering the most argument elements, each checked by rewriting the
    function for 2-row chunks and verifying it.
    """
    with ctx, ir.Location.unknown():
        module = ir.Module.parse(module_text)
        fn = _find(module, func_name)
        shapes = [_shape(a) for a in fn.regions[0].blocks[0].arguments]
    weight: Dict[int, int] = {}
    for s in shapes:
        if s:
            n = 1
            for x in s:
                n *= x
            weight[s[0]] = weight.get(s[0], 0) + n
    reasons = []
    for N in sorted(weight, key=lambda n: -weight[n]):
        if N < 2:
            continue
        first_why = None
        for chosen in _candidate_sets(shapes, N):
            plan = {"rows": N, "split_args": [k in chosen for k in range(len(shapes))]}
            text, why, results = _chunk(module_text, func_name, ctx, 2, plan)
            if text is not None:
                plan["results"] = results
                return plan, ""
            first_why = first_why or why
        reasons.append(f"{N} rows: {first_why}")
    return None, "; ".join(reasons) or "no argument has a leading dimension to split"


def _candidate_sets(shapes, N: int, limit: int = 64):
    """Sets of argument indices to cut into rows, all with leading
    dimension N: every such argument first, then smaller sets, by the
    number of elements they cover. (A weight or bias whose first dimension
    happens to equal the batch size must be passed whole.)"""
    idx = [k for k, s in enumerate(shapes) if s and s[0] == N]
    size = {k: math.prod(shapes[k]) for k in idx}
    sets = []
    for r in range(len(idx), 0, -1):
        for c in itertools.combinations(idx, r):
            sets.append(set(c))
            if len(sets) >= 4 * limit:
                break
    sets.sort(key=lambda c: (-sum(size[k] for k in c), -len(c)))
    return sets[:limit]


def chunk_module(module_text: str, func_name: str, ctx: ir.Context, rows: int,
                 plan: dict) -> str:
    """The module for ``rows``-row chunks under ``plan`` (from
    :func:`plan_split`)."""
    text, why, _ = _chunk(module_text, func_name, ctx, rows, plan)
    if text is None:
        raise NotSplittable(why)
    return text


def _chunk(module_text, func_name, ctx, rows, plan):
    with ctx, ir.Location.unknown():
        module = ir.Module.parse(module_text)
        fn = _find(module, func_name)
        try:
            lays = _Layouts(fn, plan["rows"], plan["split_args"])
            if all(lay == WHOLE for lay in lays.results):
                raise NotSplittable("no result depends on the split rows")
            _rewrite(fn, lays, rows)
            try:
                module.operation.verify()
            except ir.MLIRError as e:
                raise NotSplittable(f"the chunk program did not verify: {e}") from None
        except NotSplittable as e:
            return None, str(e), None
        return str(module), "", lays.results
