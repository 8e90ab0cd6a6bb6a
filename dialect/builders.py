"""Typed Python builders for the `ad` ops.

Each builder creates the op at the current insertion point and location and
returns the ``ir.Operation``. Operand segment sizes and attribute types are
filled in here so callers cannot get them wrong.
"""

from typing import Sequence

from mlir import ir

AD_OPS = ("ad.jvp", "ad.vjp", "ad.frule_via_ad", "ad.custom_rrule", "ad.custom_frule",
          "ad.scan", "ad.gather", "ad.scatter_add", "ad.stop_gradient", "ad.pure_callback")


def _i64(v: int) -> ir.Attribute:
    return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), int(v))


def _sym(name: str) -> ir.Attribute:
    return ir.FlatSymbolRefAttr.get(name)


def _segments(*sizes: int) -> ir.Attribute:
    return ir.DenseI32ArrayAttr.get([int(s) for s in sizes])


def _tangent_op(name, callee, primals, tangents, result_types, num_directions):
    if len(tangents) != len(primals) * num_directions:
        raise ValueError(
            f"{name}: expected {len(primals) * num_directions} tangents "
            f"({len(primals)} primals x {num_directions} directions), "
            f"got {len(tangents)}")
    return ir.Operation.create(
        name, results=list(result_types), operands=[*primals, *tangents],
        attributes={"callee": _sym(callee),
                    "num_directions": _i64(num_directions),
                    "operandSegmentSizes": _segments(len(primals), len(tangents))})


def jvp(callee: str, primals: Sequence[ir.Value], tangents: Sequence[ir.Value],
        result_types: Sequence[ir.Type], num_directions: int = 1) -> ir.Operation:
    """``ad.jvp``: results are callee outputs, then K tangents per output."""
    return _tangent_op("ad.jvp", callee, primals, tangents, result_types,
                       num_directions)


def frule_via_ad(callee: str, primals: Sequence[ir.Value],
                 tangents: Sequence[ir.Value], result_types: Sequence[ir.Type],
                 num_directions: int = 1) -> ir.Operation:
    """``ad.frule_via_ad``: the rules API's request for forward mode."""
    return _tangent_op("ad.frule_via_ad", callee, primals, tangents,
                       result_types, num_directions)


def vjp(callee: str, primals: Sequence[ir.Value], cotangents: Sequence[ir.Value],
        result_types: Sequence[ir.Type]) -> ir.Operation:
    """``ad.vjp``: results are callee outputs, then one cotangent per primal."""
    return ir.Operation.create(
        "ad.vjp", results=list(result_types), operands=[*primals, *cotangents],
        attributes={"callee": _sym(callee),
                    "operandSegmentSizes": _segments(len(primals), len(cotangents))})


def custom_rrule(callee: str, forward: str, pullback: str, rule: str,
                 args: Sequence[ir.Value], result_types: Sequence[ir.Type],
                 num_residuals: int) -> ir.Operation:
    """``ad.custom_rrule``: a call of ``callee`` differentiated by a user rule.

    ``forward`` returns (outputs..., residuals...); ``pullback`` takes
    (residuals..., output cotangents...) and returns one cotangent per arg.
    """
    return ir.Operation.create(
        "ad.custom_rrule", results=list(result_types), operands=list(args),
        attributes={"callee": _sym(callee), "forward": _sym(forward),
                    "pullback": _sym(pullback), "rule": ir.StringAttr.get(rule),
                    "num_residuals": _i64(num_residuals)})


def custom_frule(callee: str, frule: str, rule: str, args: Sequence[ir.Value],
                 result_types: Sequence[ir.Type]) -> ir.Operation:
    """``ad.custom_frule``: a call of ``callee`` whose forward rule is ``frule``
    (``frule(args..., tangents...) -> (outputs..., output tangents...)``)."""
    return ir.Operation.create(
        "ad.custom_frule", results=list(result_types), operands=list(args),
        attributes={"callee": _sym(callee), "frule": _sym(frule),
                    "rule": ir.StringAttr.get(rule)})


def scan(callee: str, init: Sequence[ir.Value], xs: Sequence[ir.Value],
         consts: Sequence[ir.Value], result_types: Sequence[ir.Type], length: int,
         reverse: bool = False, remat: bool = False) -> ir.Operation:
    """``ad.scan``: ``length`` steps of ``callee(carries, x_t, consts) ->
    (carries, y_t)``; results are the final carries, then the stacked ys.
    ``remat``: reverse mode recomputes each step instead of storing its
    residuals."""
    return ir.Operation.create(
        "ad.scan", results=list(result_types), operands=[*init, *xs, *consts],
        attributes={"callee": _sym(callee), "length": _i64(length),
                    "reverse": _i64(1 if reverse else 0), "remat": _i64(1 if remat else 0),
                    "operandSegmentSizes": _segments(len(init), len(xs), len(consts))})


def gather_type(table_type: ir.Type, indices_type: ir.Type, axis: int) -> ir.Type:
    """The result type of ``ad.gather`` of ``table`` at ``indices`` along ``axis``."""
    t, i = ir.RankedTensorType(table_type), ir.RankedTensorType(indices_type)
    shape = list(t.shape)
    return ir.RankedTensorType.get(shape[:axis] + list(i.shape) + shape[axis + 1:],
                                   t.element_type)


def gather(table: ir.Value, indices: ir.Value, axis: int) -> ir.Operation:
    """``ad.gather``: ``out[p, j, q] = table[p, indices[j], q]`` (``p`` has
    ``axis`` dims; indices wrapped when negative, then clamped)."""
    return ir.Operation.create(
        "ad.gather", results=[gather_type(table.type, indices.type, axis)],
        operands=[table, indices], attributes={"axis": _i64(axis)})


def scatter_add(dest: ir.Value, indices: ir.Value, updates: ir.Value,
                axis: int) -> ir.Operation:
    """``ad.scatter_add``: ``dest`` with ``updates[p, j, q]`` added at
    ``[p, indices[j], q]`` (the transpose of :func:`gather`)."""
    return ir.Operation.create(
        "ad.scatter_add", results=[dest.type], operands=[dest, indices, updates],
        attributes={"axis": _i64(axis)})


def stop_gradient(x: ir.Value) -> ir.Operation:
    """``ad.stop_gradient``: the identity, with a zero derivative."""
    return ir.Operation.create("ad.stop_gradient", results=[x.type], operands=[x])
# The external function compiled code calls for host callback number n (the
# passes declare it, the CPU runtime binds it to the Python function).
CALLBACK_PREFIX = "__ferrule_callback_"


def callback_symbol(number: int) -> str:
    return f"{CALLBACK_PREFIX}{number}"


def pure_callback(callback: int, name: str, args: Sequence[ir.Value],
                  result_types: Sequence[ir.Type]) -> ir.Operation:
    """``ad.pure_callback``: host function number ``callback`` (``name`` for
    messages) on ``args``."""
    return ir.Operation.create(
        "ad.pure_callback", results=list(result_types), operands=list(args),
        attributes={"callback": _i64(callback), "name": ir.StringAttr.get(name)})


def call_func(callee: str, args: Sequence[ir.Value],
              result_types: Sequence[ir.Type]) -> ir.Operation:
    """``func.call @callee(args)``."""
    return ir.Operation.create("func.call", results=list(result_types), operands=list(args),
                               attributes={"callee": _sym(callee)})
