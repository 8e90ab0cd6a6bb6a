"""Machinery shared by the forward and reverse passes.

* preparing a callee for differentiation: a private copy with nested ``ad``
  ops lowered, calls inlined and pointwise code fused;
* zero tensors, symbolic-zero detection, new functions, calls;
* "unbroadcast": summing a domain-shaped value back to an input's shape.
"""

from typing import List, Optional, Sequence

from mlir import ir

from ...dialect.ir_utils import (PARALLEL, REDUCTION, block_ops, clone_with_remap, cmpf,
                                 create, element_type, empty, find_func, float_const,
                                 func_body, func_name, func_type, funcs_of, make_generic,
                                 map_dims, projection_map, replace_by_call, select, shape_of,
                                 splat_zeros, OEQ)
from .registry import PassError

AD_TANGENT_OPS = ("ad.jvp", "ad.frule_via_ad")


def callee_of(op: ir.Operation) -> str:
    return ir.FlatSymbolRefAttr(op.attributes["callee"]).value


def segment_sizes(op: ir.Operation) -> List[int]:
    return list(ir.DenseI32ArrayAttr(op.attributes["operandSegmentSizes"]))


def int_attr(op: ir.Operation, name: str) -> int:
    return ir.IntegerAttr(op.attributes[name]).value


def zeros_like(v: ir.Value) -> ir.Value:
    """A symbolic zero (splat 0.0 constant) of ``v``'s tensor type."""
    return splat_zeros(shape_of(v), element_type(v))


def add(a: Optional[ir.Value], b: ir.Value) -> ir.Value:
    return b if a is None else create("arith.addf", [b.type], [a, b]).result


def new_func(module_op: ir.Operation, name: str, arg_types: Sequence[ir.Type],
             loc: ir.Location) -> ir.Operation:
    """A new private ``func.func`` with an entry block, at the module's end."""
    body = module_op.regions[0].blocks[0]
    used = {func_name(f) for f in funcs_of(module_op)}
    base, k = name, 1
    while name in used:
        name, k = f"{base}_{k}", k + 1
    with ir.InsertionPoint(body), loc:
        fn = create("func.func", [], [], {
            "sym_name": ir.StringAttr.get(name),
            "function_type": ir.TypeAttr.get(ir.FunctionType.get(list(arg_types), [])),
            "sym_visibility": ir.StringAttr.get("private")}, regions=1)
        fn.regions[0].blocks.append(*arg_types, arg_locs=[loc] * len(arg_types))
    return fn


def finish_func(fn: ir.Operation, results: Sequence[ir.Value]) -> None:
    block = func_body(fn)
    with ir.InsertionPoint(block), fn.location:
        create("func.return", [], list(results))
    ftype = ir.FunctionType.get([a.type for a in block.arguments], [r.type for r in results])
    fn.attributes["function_type"] = ir.TypeAttr.get(ftype)


def call(fn: ir.Operation, args: Sequence[ir.Value]) -> List[ir.Value]:
    op = create("func.call", list(func_type(fn).results), list(args),
                {"callee": ir.FlatSymbolRefAttr.get(func_name(fn))})
    return list(op.results)


def inline_calls(module_op: ir.Operation, fn: ir.Operation) -> None:
    """Inline every ``func.call`` in ``fn``'s body (single-block callees)."""
    changed = True
    while changed:
        changed = False
        for op in block_ops(func_body(fn)):
            if op.name != "func.call":
                continue
            callee = find_func(module_op, ir.FlatSymbolRefAttr(op.attributes["callee"]).value)
            src = func_body(callee)
            env = {a: v for a, v in zip(src.arguments, op.operands)}
            with ir.InsertionPoint(op):
                results = None
                for inner in block_ops(src):
                    if inner.name == "func.return":
                        results = [env.get(v, v) for v in inner.operands]
                        break
                    clone_with_remap(inner, env)
            for old, new in zip(op.results, results):
                old.replace_all_uses_with(new)
            op.erase()
            changed = True
            break


def prepared_copy(module_op: ir.Operation, callee: str, lower_nested,
                  mode: str) -> ir.Operation:
    """A private copy of ``@callee`` ready to differentiate in ``mode``.

    ``lower_nested(fn)`` lowers ``ad`` ops inside the copy (nested
    differentiation, innermost first). Custom rules of the other mode become
    calls of their primal (``mode="forward"`` keeps ``ad.custom_frule``,
    ``"reverse"`` keeps ``ad.custom_rrule``); calls are then inlined —
    repeatedly, so a primal's own custom ops surface — and pointwise code
    fused. The caller erases the copy when done.
    """
    from ..fuse_pointwise import fuse_block
    try:
        src = find_func(module_op, callee)
    except KeyError:
        raise PassError("ad", f"callee @{callee} not found in the module") from None
    if not len(src.regions[0].blocks):
        raise PassError("ad", f"cannot differentiate @{callee}: it has no body "
                        f"(an external declaration)", src.location)
    with ir.InsertionPoint(module_op.regions[0].blocks[0]):
        copy = src.clone(ir.InsertionPoint.current)
    copy.attributes["sym_name"] = ir.StringAttr.get(callee + "__ad_tmp")
    copy.attributes["sym_visibility"] = ir.StringAttr.get("private")
    lower_nested(copy)
    other = "ad.custom_rrule" if mode == "forward" else "ad.custom_frule"
    while True:
        for op in [op for op in block_ops(func_body(copy)) if op.name == other]:
            replace_by_call(op, op.attributes["callee"])
        inline_calls(module_op, copy)
        if not any(op.name == other for op in block_ops(func_body(copy))):
            break
    fuse_block(func_body(copy))
    return copy


def reduce_to(value: ir.Value, m: ir.AffineMap, shape) -> ir.Value:
    """Sum a domain-shaped ``value`` to the operand read through map ``m``.

    ``m`` is a projected permutation from the domain to the operand; domain
    dims absent from ``m`` are summed over (a broadcast's adjoint), present
    ones are permuted (a transpose's adjoint).
    """
    dims = map_dims(m)
    rank = m.n_dims
    elt = element_type(value)
    if len(dims) == rank:  # pure permutation: a pointwise generic
        inv = [dims.index(j) for j in range(rank)]
        init = empty(shape, elt)
        return make_generic([value], [init], [projection_map(rank, inv),
                                              projection_map(rank, range(rank))],
                            [PARALLEL] * rank, lambda a: [a[0]]).result
    init = splat_zeros(shape, elt)
    iters = [PARALLEL if d in dims else REDUCTION for d in range(rank)]
    return make_generic(
        [value], [init], [projection_map(rank, range(rank)), m], iters,
        lambda a: [create("arith.addf", [elt], [a[0], a[1]]).result]).result


def transpose2d(v: ir.Value) -> ir.Value:
    s = shape_of(v)
    init = empty((s[1], s[0]), element_type(v))
    return make_generic([v], [init], [projection_map(2, [1, 0]), projection_map(2, [0, 1])],
                        [PARALLEL, PARALLEL], lambda a: [a[0]]).result


def transpose_matrices(v: ir.Value) -> ir.Value:
    """Swap the last two dims of a 2-D or 3-D (batch of matrices) tensor."""
    s = shape_of(v)
    if len(s) == 2:
        return transpose2d(v)
    init = empty((s[0], s[2], s[1]), element_type(v))
    return make_generic([v], [init], [projection_map(3, [0, 2, 1]), projection_map(3, [0, 1, 2])],
                        [PARALLEL] * 3, lambda a: [a[0]]).result


def matmul_like(op: ir.Operation, a: ir.Value, b: ir.Value, acc: ir.Value) -> ir.Value:
    """``op``'s kind of product (``linalg.matmul`` or ``linalg.batch_matmul``)
    of ``a`` and ``b`` accumulated onto ``acc``."""
    from mlir.dialects import linalg
    build = linalg.batch_matmul if op.name == "linalg.batch_matmul" else linalg.matmul
    return build(a, b, outs=[acc])


def reduction_kind(op: ir.Operation) -> Optional[str]:
    """"sum" or "max" for a generic reducing with addf/maximumf into its init."""
    if op.name != "linalg.generic" or len(op.results) != 1:
        return None
    from ...dialect.ir_utils import body_block, generic_num_inputs
    if generic_num_inputs(op) != 1:
        return None
    b = body_block(op)
    ops = block_ops(b)
    if len(ops) != 2 or ops[1].name != "linalg.yield":
        return None
    body, args = ops[0], list(b.arguments)
    if set(body.operands) != {args[0], args[1]} or ops[1].operands[0] != body.results[0]:
        return None
    return {"arith.addf": "sum", "arith.maximumf": "max"}.get(body.name)


def tie_count(x: ir.Value, y: ir.Value, maps, iters) -> ir.Value:
    """How many elements of ``x`` equal the max ``y`` they reduce to (per
    output element): max's derivative splits the cotangent among ties."""
    elt = element_type(y)

    def body(a):
        hit = select(cmpf(OEQ, a[0], a[1]), float_const(elt, 1.0), float_const(elt, 0.0))
        return [create("arith.addf", [elt], [hit, a[2]]).result]
    return make_generic([x, y], [zeros_like(y)], [maps[0], maps[1], maps[1]], iters,
                        body).result
