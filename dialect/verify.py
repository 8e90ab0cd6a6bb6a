"""Verifying `ad` ops against ad.irdl.mlir and their callees' signatures."""

from typing import List

from mlir import ir

from .context import ad_op_specs
from .ir_utils import find_symbol, func_type

_REGISTERED_PREFIXES = ("ad.",)


class VerificationError(Exception):
    """An `ad` op (or an unknown op) is malformed; ``location`` says where."""

    def __init__(self, message: str, location):
        self.message = message
        self.location = location
        super().__init__(f"{location}: {message}")


def _func_types(module_op, name):
    fn = find_symbol(module_op, name)
    if fn is None:
        return None
    ft = func_type(fn)
    return list(ft.inputs), list(ft.results)


def _scan_types(op, ins, outs, callee, sizes):
    """The operand and result types ``ad.scan`` needs for a step @callee of
    type (carries, x slices, consts) -> (carries, y slices)."""
    n_c, n_x, n_k = sizes
    length = ir.IntegerAttr(op.attributes["length"]).value
    if length < 0:
        raise VerificationError(f"'ad.scan' length must be >= 0, got {length}", op.location)
    if len(ins) != n_c + n_x + n_k or len(outs) < n_c:
        raise VerificationError(
            f"'ad.scan' with {n_c} carries, {n_x} xs and {n_k} consts cannot call "
            f"@{callee}, which takes {len(ins)} arguments and returns {len(outs)} results",
            op.location)

    def stacked(t):
        t = ir.RankedTensorType(t)
        return ir.RankedTensorType.get([length, *t.shape], t.element_type)
    want_ops = ins[:n_c] + [stacked(t) for t in ins[n_c:n_c + n_x]] + ins[n_c + n_x:]
    want_res = outs[:n_c] + [stacked(t) for t in outs[n_c:]]
    return want_ops, want_res


def verify_module(module: ir.Module) -> None:
    """Raise :class:`VerificationError` for the first malformed op.

    Checks: the module verifies upstream; every op of an unregistered dialect
    is an `ad` op named in the IRDL file; its attributes are present with the
    right kinds; segment sizes add up; and operand/result types agree with the
    callee's signature.
    """
    module.operation.verify()
    specs = ad_op_specs()
    bad: List = []

    def visit(o):
        o = o.operation
        if not bad and not o.context.is_registered_operation(o.name):
            bad.append(o)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    if bad and bad[0].name not in specs:
        raise VerificationError(f"unregistered operation '{bad[0].name}'", bad[0].location)
    ops = []
    module.operation.walk(lambda o: (ops.append(o.operation) if o.operation.name in specs
                                     else None, ir.WalkResult.ADVANCE)[1])
    for op in ops:
        _verify_ad_op(module.operation, op, specs[op.name])


def _verify_ad_op(module_op, op, spec):
    segments, attrs = spec
    for name, base in attrs.items():
        if name not in op.attributes:
            raise VerificationError(f"'{op.name}' requires attribute '{name}'", op.location)
        a = op.attributes[name]
        ok = {"#builtin.symbol_ref": isinstance(a, ir.FlatSymbolRefAttr),
              "#builtin.integer": isinstance(a, ir.IntegerAttr),
              "#builtin.string": isinstance(a, ir.StringAttr)}.get(base, True)
        if not ok:
            raise VerificationError(f"'{op.name}' attribute '{name}' must be {base}", op.location)
    if "callee" not in attrs and op.name != "ad.pure_callback":
        # ad.gather, ad.scatter_add, ad.stop_gradient
        _verify_data_op(op, segments)
        return
    sizes = [len(op.operands)]
    if len(segments) > 1:
        if "operandSegmentSizes" not in op.attributes:
            raise VerificationError(f"'{op.name}' requires operandSegmentSizes", op.location)
        sizes = list(ir.DenseI32ArrayAttr(op.attributes["operandSegmentSizes"]))
        if len(sizes) != len(segments) or sum(sizes) != len(op.operands):
            raise VerificationError(
                f"'{op.name}' operandSegmentSizes {sizes} do not match its "
                f"{len(op.operands)} operands in segments {segments}", op.location)
    if op.name == "ad.pure_callback":   # no callee: a host function
        for v in [*op.operands, *op.results]:
            if not isinstance(v.type, ir.RankedTensorType):
                raise VerificationError(f"'ad.pure_callback' takes and returns ranked "
                                        f"tensors, not {v.type}", op.location)
        return
    callee = ir.FlatSymbolRefAttr(op.attributes["callee"]).value
    sig = _func_types(module_op, callee)
    if sig is None:
        raise VerificationError(f"'{op.name}' refers to unknown function @{callee}", op.location)
    ins, outs = sig
    operands = [v.type for v in op.operands]
    results = [v.type for v in op.results]
    if op.name in ("ad.jvp", "ad.frule_via_ad"):
        k = ir.IntegerAttr(op.attributes["num_directions"]).value
        want_ops, want_res = ins + ins * k, outs + outs * k
    elif op.name == "ad.vjp":
        want_ops, want_res = ins + outs, outs + ins
    elif op.name == "ad.scan":
        want_ops, want_res = _scan_types(op, ins, outs, callee, sizes)
    else:  # ad.custom_rrule, ad.custom_frule
        want_ops, want_res = ins, outs
    if [str(t) for t in operands] != [str(t) for t in want_ops]:
        raise VerificationError(
            f"'{op.name}' operand types ({', '.join(map(str, operands))}) do not match "
            f"@{callee}'s signature, which needs ({', '.join(map(str, want_ops))})", op.location)
    if [str(t) for t in results] != [str(t) for t in want_res]:
        raise VerificationError(
            f"'{op.name}' result types ({', '.join(map(str, results))}) do not match "
            f"@{callee}'s signature, which gives ({', '.join(map(str, want_res))})", op.location)


def _ranked(v, what, op):
    t = v.type
    if not isinstance(t, ir.RankedTensorType):
        raise VerificationError(f"'{op.name}' {what} must be a ranked tensor, got {t}",
                                op.location)
    return ir.RankedTensorType(t)


def _verify_data_op(op, segments) -> None:
    """``ad.gather``, ``ad.scatter_add``, ``ad.stop_gradient``: one operand
    per segment, and the types their definitions in ad.irdl.mlir imply."""
    if len(op.operands) != len(segments) or len(op.results) != 1:
        raise VerificationError(
            f"'{op.name}' takes {len(segments)} operand(s) ({', '.join(segments)}) and gives "
            f"one result; got {len(op.operands)} and {len(op.results)}", op.location)
    res = op.results[0].type
    if op.name == "ad.stop_gradient":
        if str(res) != str(op.operands[0].type):
            raise VerificationError(f"'ad.stop_gradient' result type {res} differs from its "
                                    f"operand's {op.operands[0].type}", op.location)
        return
    table = _ranked(op.operands[0], "table" if op.name == "ad.gather" else "dest", op)
    idx = _ranked(op.operands[1], "indices", op)
    axis = ir.IntegerAttr(op.attributes["axis"]).value
    if not 0 <= axis < table.rank:
        raise VerificationError(f"'{op.name}' axis {axis} is out of range for a tensor of rank "
                                f"{table.rank}", op.location)
    elt = idx.element_type
    if not (isinstance(elt, ir.IntegerType) and ir.IntegerType(elt).width in (32, 64)):
        raise VerificationError(f"'{op.name}' indices must be i32 or i64, got {elt}", op.location)
    shape = list(table.shape)
    gathered = ir.RankedTensorType.get(shape[:axis] + list(idx.shape) + shape[axis + 1:],
                                       table.element_type)
    if op.name == "ad.gather":
        if str(res) != str(gathered):
            raise VerificationError(f"'ad.gather' result type {res} does not match: gathering "
                                    f"{table} at {idx} along axis {axis} gives {gathered}",
                                    op.location)
        return
    upd = op.operands[2].type
    if str(upd) != str(gathered):
        raise VerificationError(f"'ad.scatter_add' updates type {upd} does not match: "
                                f"scattering into {table} at {idx} along axis {axis} needs "
                                f"{gathered}", op.location)
    if str(res) != str(table):
        raise VerificationError(f"'ad.scatter_add' result type {res} differs from dest's "
                                f"{table}", op.location)
