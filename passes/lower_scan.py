"""lower-scan: turn ``ad.scan`` into an ``scf.for`` that calls its step.

Expects: tensor-level IR after the AD pipeline (``ad.scan`` is the only
``ad`` op left), static shapes.
Guarantees: no ``ad.scan`` remains. Each becomes

    %ys0 = tensor.empty() : tensor<Lx...>            (one per stacked y)
    %r:... = scf.for %i = 0 to L step 1 iter_args(%c = init..., %ys = %ys0...) {
      %t = %i                     (or L - 1 - %i with reverse = 1)
      %x_t = tensor.extract_slice %xs[%t, 0, ...] [1, ...]   (rank-reducing)
      %o:... = func.call @step(%c..., %x_t..., consts...)
      %ys' = tensor.insert_slice %o#y into %ys[%t, 0, ...]
      scf.yield %o#carries..., %ys'...
    }

The step stays a function of its own (called, not inlined): every
tensor-level pass after this one sees it as an ordinary function body, and
it is compiled once whatever L is.
"""

from mlir import ir
from mlir.dialects import arith, func, scf, tensor

from ..dialect.ir_utils import shape_of
from .support.registry import register

_DYNAMIC = ir.ShapedType.get_dynamic_stride_or_offset()


@register("lower-scan")
def lower_scan(module_op: ir.Operation) -> None:
    ops = []
    module_op.walk(lambda o: (ops.append(o.operation) if o.operation.name == "ad.scan"
                              else None, ir.WalkResult.ADVANCE)[1])
    for op in ops:
        _lower(op)


def _index(v: int) -> ir.Value:
    return arith.ConstantOp(ir.IndexType.get(), v).result


def _slice_attrs(full_shape):
    """Offsets [t, 0, ...], sizes [1, d1, ...], strides 1 of one step's slice."""
    rank = len(full_shape)
    return ([_DYNAMIC] + [0] * (rank - 1), [1, *full_shape[1:]], [1] * rank)


def _lower(op: ir.Operation) -> None:
    n_c, n_x, _ = list(ir.DenseI32ArrayAttr(op.attributes["operandSegmentSizes"]))
    length = ir.IntegerAttr(op.attributes["length"]).value
    reverse = ir.IntegerAttr(op.attributes["reverse"]).value != 0
    callee = ir.FlatSymbolRefAttr(op.attributes["callee"]).value
    operands = list(op.operands)
    init, xs, consts = operands[:n_c], operands[n_c:n_c + n_x], operands[n_c + n_x:]
    results = list(op.results)
    ys_types = [r.type for r in results[n_c:]]
    step_out_types = ([r.type for r in results[:n_c]]
                      + [ir.RankedTensorType.get(list(shape_of(t))[1:],
                                                 ir.RankedTensorType(t).element_type)
                         for t in ys_types])
    with ir.InsertionPoint(op), op.location:
        lo, hi, one = _index(0), _index(length), _index(1)
        last = _index(length - 1) if reverse else None
        ys0 = [tensor.EmptyOp(list(shape_of(t)), ir.RankedTensorType(t).element_type).result
               for t in ys_types]
        loop = scf.ForOp(lo, hi, one, [*init, *ys0])
        with ir.InsertionPoint(loop.body):
            i = loop.induction_variable
            t = arith.SubIOp(last, i).result if reverse else i
            args = list(loop.inner_iter_args)
            carries, accs = args[:n_c], args[n_c:]
            x_ts = []
            for x in xs:
                full = list(shape_of(x))
                offs, sizes, strides = _slice_attrs(full)
                slice_t = ir.RankedTensorType.get(full[1:], ir.RankedTensorType(x.type).element_type)
                x_ts.append(tensor.ExtractSliceOp(slice_t, x, [t], [], [], offs, sizes,
                                                  strides).result)
            call = func.CallOp(step_out_types, ir.FlatSymbolRefAttr.get(callee),
                               [*carries, *x_ts, *consts])
            outs = list(call.results)
            new_accs = []
            for y, acc in zip(outs[n_c:], accs):
                offs, sizes, strides = _slice_attrs(list(shape_of(acc)))
                new_accs.append(tensor.InsertSliceOp(y, acc, [t], [], [], offs, sizes,
                                                     strides).result)
            scf.YieldOp([*outs[:n_c], *new_accs])
    for old, new in zip(results, loop.results):
        old.replace_all_uses_with(new)
    op.erase()
