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

:func:`plan_split` picks the batch size and the arguments to cut, with the
layouts of :mod:`ferrule.runtime.cpu.row_layouts` (which refuse, with the
reason, what they cannot prove: a max over rows, a matmul mixing the row
dimension with another one, a non-linear use of a partial sum...);
:func:`chunk_module` rewrites the IR for n-row chunks: each row-split
value's dimension ``d`` becomes n, and a ``tensor.empty`` or splat
constant is cloned for each use at the shape that use needs.
"""

import itertools
import math
from typing import Dict, Optional, Tuple

from mlir import ir

from ...dialect.ir_utils import dense_i64, find_func, map_dims
from .row_layouts import FREE, WHOLE, Layouts, NotSplittable, shape_of

# --------------------------------------------------------------- rewriting

def _retyped(t: ir.RankedTensorType, d: int, rows: int) -> ir.RankedTensorType:
    shape = list(t.shape)
    shape[d] = rows
    return ir.RankedTensorType.get(shape, t.element_type, t.encoding)


def _needed(use_op, k: int, lays: Layouts) -> Optional[int]:
    """The split dimension operand ``k`` of ``use_op`` must have in a chunk,
    or None when it stays whole."""
    name = use_op.name
    if name == "linalg.generic":
        maps = [ir.AffineMapAttr(a).value for a in use_op.attributes["indexing_maps"]]
        n_in = int(ir.DenseI32ArrayAttr(use_op.attributes["operandSegmentSizes"])[0])
        loop = _split_loop(use_op, lays, maps, n_in)
        dims = map_dims(maps[k])
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


def _split_loop(op, lays: Layouts, maps, n_in):
    for k, v in enumerate(op.operands):
        lay = lays.of.get(v)
        if isinstance(lay, tuple):
            return map_dims(maps[k])[lay[1]]
    for j, r in enumerate(op.results):
        lay = lays.of.get(r)
        if isinstance(lay, tuple):
            return map_dims(maps[n_in + j])[lay[1]]
    return None


def _rewrite(fn, lays: Layouts, rows: int) -> None:
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
                sizes = dense_i64(op, "static_sizes")
                sizes[d] = rows
                op.attributes["static_sizes"] = ir.DenseI64ArrayAttr.get(sizes)
        elif op.name == "tensor.expand_shape":
            lay = lays.of.get(op.results[0])
            if isinstance(lay, tuple):
                shape = dense_i64(op, "static_output_shape")
                shape[lay[1]] = rows
                op.attributes["static_output_shape"] = ir.DenseI64ArrayAttr.get(shape)
    results = [v.type for v in list(block.operations)[-1].operation.operands]
    fn.attributes["function_type"] = ir.TypeAttr.get(
        ir.FunctionType.get([a.type for a in block.arguments], results))


def _clone_free(op, lays: Layouts, rows: int) -> None:
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
        fn = find_func(module, func_name)
        shapes = [shape_of(a) for a in fn.regions[0].blocks[0].arguments]
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
        fn = find_func(module, func_name)
        try:
            lays = Layouts(fn, plan["rows"], plan["split_args"])
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
