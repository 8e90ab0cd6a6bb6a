"""lower-gather: turn ``ad.gather`` and ``ad.scatter_add`` into upstream IR.

Expects: tensor-level IR once differentiation is done (``runtime/pipelines.py``
runs it in ``AD`` right after ``lower-ad``, before ``inline``: the upstream
inliner cannot move unregistered ``ad`` ops, so a function holding one
would stay a call), static shapes.
Guarantees: no ``ad.gather`` or ``ad.scatter_add`` remains.

* ``ad.gather`` (table ``P x n x Q``, indices of shape ``J``, ``axis`` =
  rank of P) becomes one ``linalg.generic`` over the result ``P x J x Q``
  that reads the index through its indexing map and the table with
  ``tensor.extract`` at ``(linalg.index of the P dims, the index, linalg.index
  of the Q dims)``::

      %r = linalg.generic {maps: idx (d_P.., d_J.., d_Q..) -> (d_J..), out identity}
             ins(%idx) outs(%empty) {
        ^bb0(%i: i64, %o: f32):
          %k = <%i as index, + n when negative, clamped to [0, n - 1]>
          %v = tensor.extract %table[linalg.index 0, .., %k, linalg.index .., ..]
          linalg.yield %v
      }

  Such a generic is not pointwise (``support/pointwise.py`` refuses bodies
  that read indices or tensors), so no fusion merges it.
* ``ad.scatter_add`` becomes an ``scf.for`` over the J index positions
  whose iteration argument is the accumulator (initially ``dest``): it
  reads index ``j``, extracts the update slice ``updates[.., j, ..]``
  and the accumulator's slice at the index, adds them (a ``linalg.generic``
  writing into the accumulator's slice) and inserts the sum back. After
  bufferization the slice is updated in place (a subview), so the loop
  costs J slice additions: repeated indices accumulate, in index order.
"""

from mlir import ir
from mlir.dialects import arith, scf, tensor

from ..dialect.ir_utils import (PARALLEL, create, element_type, empty, identity_map,
                                is_splat_zero, make_generic, projection_map, shape_of)
from .support.registry import register

_DYNAMIC = ir.ShapedType.get_dynamic_stride_or_offset()


@register("lower-gather")
def lower_gather(module_op: ir.Operation) -> None:
    _fold_adds(module_op)
    ops = []
    module_op.walk(lambda o: (ops.append(o.operation)
                              if o.operation.name in ("ad.gather", "ad.scatter_add")
                              else None, ir.WalkResult.ADVANCE)[1])
    for op in ops:
        with ir.InsertionPoint(op), op.location:
            new = _gather(op) if op.name == "ad.gather" else _scatter_add(op)
        op.results[0].replace_all_uses_with(new)
        op.erase()


def _fold_adds(module_op: ir.Operation) -> None:
    """``a + scatter_add(0, idx, u)`` -> ``scatter_add(a, idx, u)`` where the
    scatter-add has no other use: the accumulated cotangent of a table read
    by several gathers (or of a scan's const, summed over the steps) is
    scattered into directly, instead of into zeros of the table's size
    that are then added."""
    adds = []
    module_op.walk(lambda o: (adds.append(o.operation) if o.operation.name in
                              ("arith.addf", "arith.addi") else None, ir.WalkResult.ADVANCE)[1])
    for add in adds:
        if not isinstance(add.results[0].type, ir.RankedTensorType):
            continue
        for k in (1, 0):
            s = add.operands[k].owner
            if isinstance(s, ir.Block):
                continue
            s = s.operation
            if (s.name != "ad.scatter_add" or not is_splat_zero(s.operands[0], integers=True)
                    or len(list(s.results[0].uses)) != 1
                    or add.operands[1 - k].type != s.results[0].type):
                continue
            if s.parent.operation != add.parent.operation:
                continue
            s.operands[0] = add.operands[1 - k]
            s.move_before(add)     # after the new dest; its other operands precede it already
            add.results[0].replace_all_uses_with(s.results[0])
            add.erase()
            break


def _index(v: int) -> ir.Value:
    return arith.ConstantOp(ir.IndexType.get(), v).result


def _position(raw: ir.Value, n: int) -> ir.Value:
    """An index read from the indices tensor as a position in [0, n): +n
    when negative, then clamped (ad.gather's definition)."""
    idx_t = ir.IndexType.get()
    i = create("arith.index_cast", [idx_t], [raw]).result
    zero, size, last = _index(0), _index(n), _index(max(n - 1, 0))
    neg = create("arith.cmpi", [ir.IntegerType.get_signless(1)], [i, zero],
                 {"predicate": ir.IntegerAttr.get(ir.IntegerType.get_signless(64), 2)}).result
    i = create("arith.select", [idx_t], [neg, create("arith.addi", [idx_t], [i, size]).result,
                                         i]).result
    i = create("arith.maxsi", [idx_t], [i, zero]).result
    return create("arith.minsi", [idx_t], [i, last]).result


def _gather(op: ir.Operation) -> ir.Value:
    table, idx = list(op.operands)
    axis = ir.IntegerAttr(op.attributes["axis"]).value
    t_shape, i_shape = shape_of(table), shape_of(idx)
    out_shape = shape_of(op.results[0])
    k = len(i_shape)
    rank = len(out_shape)
    n = t_shape[axis]
    elt = element_type(table)
    idx_t = ir.IndexType.get()

    def loop_index(d):
        return create("linalg.index", [idx_t], [],
                      {"dim": ir.IntegerAttr.get(ir.IntegerType.get_signless(64), d)}).result

    def body(a):
        pos = _position(a[0], n)
        coords = ([loop_index(d) for d in range(axis)] + [pos]
                  + [loop_index(d) for d in range(axis + k, rank)])
        return [create("tensor.extract", [elt], [table, *coords]).result]

    return make_generic([idx], [empty(out_shape, elt)],
                        [projection_map(rank, range(axis, axis + k)), identity_map(rank)],
                        [PARALLEL] * rank, body).result


def _reassoc(groups):
    i64 = ir.IntegerType.get_signless(64)
    return ir.ArrayAttr.get([ir.ArrayAttr.get([ir.IntegerAttr.get(i64, d) for d in g])
                             for g in groups])


def _collapse(v: ir.Value, groups, to) -> ir.Value:
    t = ir.RankedTensorType.get(list(to), element_type(v))
    return create("tensor.collapse_shape", [t], [v], {"reassociation": _reassoc(groups)}).result


def _expand(v: ir.Value, groups, to) -> ir.Value:
    t = ir.RankedTensorType.get(list(to), element_type(v))
    return create("tensor.expand_shape", [t], [v], {
        "reassociation": _reassoc(groups),
        "static_output_shape": ir.DenseI64ArrayAttr.get(list(to))}).result


def _merge_axes(v: ir.Value, start: int, count: int) -> ir.Value:
    """``v`` with axes ``start .. start+count-1`` merged into one (a new
    size-1 axis at ``start`` when ``count`` is 0)."""
    shape = list(shape_of(v))
    if count == 1:
        return v
    if count > 1:
        merged = 1
        for s in shape[start:start + count]:
            merged *= s
        groups = ([[d] for d in range(start)] + [list(range(start, start + count))]
                  + [[d] for d in range(start + count, len(shape))])
        return _collapse(v, groups, shape[:start] + [merged] + shape[start + count:])
    to = shape[:start] + [1] + shape[start:]
    if not shape:
        return _expand(v, [], to)
    groups = [[d if d < start else d + 1] for d in range(len(shape))]
    if start < len(shape):
        groups[start] = [start] + groups[start]
    else:
        groups[-1] = groups[-1] + [start]
    return _expand(v, groups, to)


def _scatter_add(op: ir.Operation) -> ir.Value:
    dest, idx, updates = list(op.operands)
    axis = ir.IntegerAttr(op.attributes["axis"]).value
    d_shape = list(shape_of(dest))
    k = len(shape_of(idx))
    n = d_shape[axis]
    elt = element_type(dest)
    idx1 = _merge_axes(idx, 0, k)                 # J index positions, in order
    upd = _merge_axes(updates, axis, k)           # P x J x Q
    count = shape_of(idx1)[0]
    rank = len(d_shape)
    sizes = d_shape[:axis] + [1] + d_shape[axis + 1:]
    offs = [0] * axis + [_DYNAMIC] + [0] * (rank - axis - 1)
    strides = [1] * rank
    slice_t = ir.RankedTensorType.get(sizes, elt)
    add = "arith.addf" if isinstance(elt, (ir.F32Type, ir.F64Type)) else "arith.addi"
    loop = scf.ForOp(_index(0), _index(count), _index(1), [dest])
    with ir.InsertionPoint(loop.body):
        j = loop.induction_variable
        acc = loop.inner_iter_args[0]
        pos = _position(create("tensor.extract", [element_type(idx1)], [idx1, j]).result, n)
        u = tensor.ExtractSliceOp(slice_t, upd, [j], [], [], offs, sizes, strides).result
        s = tensor.ExtractSliceOp(slice_t, acc, [pos], [], [], offs, sizes, strides).result
        total = make_generic([u], [s], [identity_map(rank)] * 2, [PARALLEL] * rank,
                             lambda a: [create(add, [elt], [a[0], a[1]]).result]).result
        new = tensor.InsertSliceOp(total, acc, [pos], [], [], offs, sizes, strides).result
        scf.YieldOp([new])
    return loop.results[0]
