"""Machinery shared by the forward and reverse passes.

* preparing a callee for differentiation: a private copy with nested ``ad``
  ops lowered (through :func:`lower_nested`) and calls inlined;
* zero tensors, new functions, calls;
* "unbroadcast": summing a domain-shaped value back to an input's shape.

The per-op derivative rules are in :mod:`.op_rules`, the scalar ones in
:mod:`.scalar_rules`.
"""

from typing import Callable, Dict, List, Optional, Sequence

from mlir import ir

from ...dialect.ir_utils import (PARALLEL, REDUCTION, block_ops, clone_block_body, create,
                                 element_type, empty, find_func, func_body, func_name,
                                 func_type, funcs_of, loc_where, make_generic, map_dims,
                                 projection_map, replace_by_call, shape_of, splat_zeros)
from .registry import PassError

AD_TANGENT_OPS = ("ad.jvp", "ad.frule_via_ad")

# Nested differentiation (grad of jvp, jvp of vjp, ...): a callee may hold ad
# ops of either mode, lowered in its copy before that is differentiated. The
# forward and reverse passes register their lowerings here by mode name (as
# pipelines name passes), so each reaches the other without importing it.
_LOWERINGS: Dict[str, Callable[[ir.Operation, ir.Operation], None]] = {}


def register_lowering(mode: str, lower_in: Callable[[ir.Operation, ir.Operation], None]) -> None:
    """``lower_in(module_op, scope)`` lowers the ``mode`` ad ops inside ``scope``."""
    _LOWERINGS[mode] = lower_in


# The function builders of the passes (``"vjp"``: the reverse pass's
# ``vjp_function``, ``"jvp"``: the forward pass's ``jvp_function``), for
# what needs one mode's derivative inside the other (transposing a rule:
# support/transpose.py) without importing a pass.
_BUILDERS: Dict[str, Callable] = {}


def register_builder(kind: str, build: Callable) -> None:
    _BUILDERS[kind] = build


def builder(kind: str) -> Callable:
    return _BUILDERS[kind]


def record_rule(module_op: ir.Operation, op: ir.Operation, mode: str, how: str) -> None:
    """Append to the module's ``ferrule.rules`` report which rule served
    ``mode`` at the call site of the custom-rule ``op`` and how
    (``explain()`` shows it per call site)."""
    line = (f"{loc_where(op.location)} | @{callee_of(op)} | {mode} | "
            f"{ir.StringAttr(op.attributes['rule']).value} | {how}")
    attrs = module_op.attributes
    lines = ([ir.StringAttr(a).value for a in attrs["ferrule.rules"]]
             if "ferrule.rules" in attrs else [])
    if line not in lines:
        lines.append(line)
        attrs["ferrule.rules"] = ir.ArrayAttr.get([ir.StringAttr.get(l) for l in lines])


_DIFF_OPS = ("ad.jvp", "ad.frule_via_ad", "ad.vjp")


def lower_nested(module_op: ir.Operation, fn: ir.Operation) -> None:
    """Lower every ``ad`` op inside ``fn``: forward-mode ones first, then
    reverse-mode ones (each innermost first, recursively)."""
    _LOWERINGS["forward"](module_op, fn)
    _LOWERINGS["reverse"](module_op, fn)


_MAX_ROUNDS = 8


def _holds_diff_ops(fn: ir.Operation) -> bool:
    found = []
    fn.walk(lambda o: (found.append(1) if o.operation.name in _DIFF_OPS else None,
                       ir.WalkResult.ADVANCE)[1])
    return bool(found)


def record(module_op: ir.Operation, line: str) -> None:
    """Append a line to the module's ``ferrule.pullbacks`` report (what the
    reverse pass chose; shown by ``as_text("ad")`` and ``explain()``)."""
    attrs = module_op.attributes
    lines = ([ir.StringAttr(a).value for a in attrs["ferrule.pullbacks"]]
             if "ferrule.pullbacks" in attrs else [])
    lines.append(line)
    attrs["ferrule.pullbacks"] = ir.ArrayAttr.get([ir.StringAttr.get(l) for l in lines])


def callee_of(op: ir.Operation) -> str:
    return ir.FlatSymbolRefAttr(op.attributes["callee"]).value


def callee_refs(module_op: ir.Operation) -> dict:
    """How many ops refer to each function by a ``callee`` attribute."""
    refs: dict = {}

    def visit(o):
        o = o.operation
        if "callee" in o.attributes:
            name = ir.FlatSymbolRefAttr(o.attributes["callee"]).value
            refs[name] = refs.get(name, 0) + 1
        return ir.WalkResult.ADVANCE
    module_op.walk(visit)
    return refs


def segment_sizes(op: ir.Operation) -> List[int]:
    return list(ir.DenseI32ArrayAttr(op.attributes["operandSegmentSizes"]))


def int_attr(op: ir.Operation, name: str) -> int:
    return ir.IntegerAttr(op.attributes[name]).value


def zeros_like(v: ir.Value) -> ir.Value:
    """A symbolic zero (splat 0.0 constant, 0 for integers) of ``v``'s tensor type."""
    return splat_zeros(shape_of(v), element_type(v))


def is_float(v) -> bool:
    """True for a float tensor (or scalar): the values AD differentiates.
    Integer and bool values are never active and never get a tangent."""
    return isinstance(element_type(v), (ir.F32Type, ir.F64Type, ir.F16Type, ir.BF16Type))


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
                results = clone_block_body(src, env)
            for old, new in zip(op.results, results):
                old.replace_all_uses_with(new)
            op.erase()
            changed = True
            break


def prepared_copy(module_op: ir.Operation, callee: str, mode: str) -> ir.Operation:
    """A private copy of ``@callee`` ready to differentiate in ``mode``.

    ``ad`` ops inside the copy are lowered first (:func:`lower_nested`).
    Custom rule ops stay, for the pass to use the rule (transposed when it
    is of the other mode: support/transpose.py), except in forward mode an
    ``ad.custom_rrule`` whose primal carries an frule
    (``ad.custom_frule``), which becomes a call of that primal: the frule
    serves forward mode. Calls are then inlined — repeatedly, so a primal's
    own custom ops surface. The caller fuses the pointwise code (the
    ``fuse-pointwise`` pass's ``fuse_block``) and erases the copy when done.
    """
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
    lower_nested(module_op, copy)

    def yields_to_frule(op):
        return (mode == "forward" and op.name == "ad.custom_rrule"
                and any(o.name == "ad.custom_frule"
                        for o in block_ops(func_body(find_func(module_op, callee_of(op))))))
    for _ in range(_MAX_ROUNDS):
        for op in [op for op in block_ops(func_body(copy)) if yields_to_frule(op)]:
            replace_by_call(op, op.attributes["callee"])
        inline_calls(module_op, copy)
        # Inlined callees may hold ad ops of their own (a custom rrule's
        # pullback calling frule_via_ad): lowered before differentiating.
        if _holds_diff_ops(copy):
            lower_nested(module_op, copy)
            continue
        if not any(yields_to_frule(op) for op in block_ops(func_body(copy))):
            return copy
    raise PassError("ad", f"preparing @{callee} for {mode} mode did not settle after "
                    f"{_MAX_ROUNDS} rounds of inlining and lowering", src.location)


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
