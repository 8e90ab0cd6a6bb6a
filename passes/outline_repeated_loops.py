"""outline-repeated-loops: a loop nest that occurs several times becomes one function, called.

Expects: buffer-level IR after the CPU loop lowering (``convert-linalg-to-loops``):
functions whose bodies hold top-level loop nests (``scf.for``,
``scf.parallel``, ``affine.for``, ``affine.parallel``) on memrefs.
Guarantees: every top-level loop nest without results whose *outlined
form* — the nest as the body of a function of the values it reads from
outside, constants (``arith.constant``, ``memref.get_global``) cloned in —
is identical, text for text, to another one's (in any function of the
module) is replaced by ``func.call`` of one private function holding that
form, marked ``passthrough = ["noinline"]``. A memref argument with a
static offset that the nest only loads from and stores to is passed with
the offset dynamic (``memref.cast`` at the call), so that slices of one
buffer at different offsets (step t of an unrolled loop) share a function.
Nests that occur once are left where they are, and so are the nests of
team functions (``.support.parallel``: they may call nothing). Semantics are unchanged:
the same ops run on the same buffers, in the same order.

Why: a loop written out in Python (an LSTM unrolled over T=32 steps) gives
T copies of each step's kernels — the fused pointwise nests, the tiled
matmuls, forward and backward — in one function, and LLVM optimises each
copy: compile time grows with the repetitions (issue 11: 23x the
``ferrule.scan`` version). Outlined, LLVM optimises one copy and the rest
are calls; ``noinline`` keeps its inliner from copying them back.
"""

from typing import Dict, List, Tuple

from mlir import ir

from ..dialect.ir_utils import (block_ops, clone_with_remap, create, defining_op, func_body,
                                func_name, funcs_of)
from .support.parallel import is_team_function
from .support.registry import register

_LOOPS = ("scf.for", "scf.parallel", "affine.for", "affine.parallel")
# Operand-free ops a nest's function clones rather than takes as arguments
# (constant loop bounds and scalars stay constants for LLVM).
_CLONED = ("arith.constant", "memref.get_global")
# Ops whose result types do not depend on a memref operand's layout: a
# memref used only by these may be passed with a dynamic offset.
_LAYOUT_FREE = ("memref.load", "memref.store", "vector.load", "vector.store",
                "vector.transfer_read", "vector.transfer_write", "vector.maskedload",
                "vector.maskedstore", "affine.load", "affine.store", "affine.vector_load",
                "affine.vector_store")
_DYNAMIC = ir.ShapedType.get_dynamic_stride_or_offset()
_TMP = "__ferrule_outline_candidate"


@register("outline-repeated-loops")
def outline_repeated_loops(module_op: ir.Operation) -> None:
    module_block = module_op.regions[0].blocks[0]
    taken = {func_name(f) for f in funcs_of(module_op)}
    groups: Dict[str, List[Tuple]] = {}
    for fn in funcs_of(module_op):
        if not len(fn.regions[0].blocks):
            continue                                     # a declaration
        if is_team_function(func_name(fn)):
            continue        # its loops run on worker threads: no calls there
        for op in block_ops(func_body(fn)):
            if op.name in _LOOPS and len(op.results) == 0:
                cand = _candidate(op, module_block)
                # Generic form, unverified: the same text for the same
                # structure whatever else the module holds meanwhile.
                text = cand[1].operation.get_asm(print_generic_op_form=True, use_local_scope=True,
                                                 assume_verified=True)
                groups.setdefault(text, []).append((func_name(fn), *cand))
    k = 0
    for members in groups.values():
        if len(members) < 2:
            members[0][2].operation.erase()
            continue
        parent, _, keep, _, _ = members[0]
        while f"{parent}_loop{k}" in taken:
            k += 1
        name = f"{parent}_loop{k}"
        taken.add(name)
        keep.operation.attributes["sym_name"] = ir.StringAttr.get(name)
        keep.operation.attributes["passthrough"] = ir.ArrayAttr.get(
            [ir.StringAttr.get("noinline")])
        callee = ir.FlatSymbolRefAttr.get(name)
        for _, op, fn, args, types in members:
            with ir.InsertionPoint(op), op.location:
                operands = [v if v.type == t else
                            create("memref.cast", [t], [v]).result
                            for v, t in zip(args, types)]
                create("func.call", [], operands, {"callee": callee})
            op.erase()
            if fn is not keep:
                fn.operation.erase()


def _captured(op: ir.Operation):
    """The values ``op`` (and its regions) read from outside, in order of
    first use, each with the names of the ops that read it."""
    inner = set()

    def define(o):
        o = o.operation
        inner.update(o.results)
        for region in o.regions:
            for b in region.blocks:
                inner.update(b.arguments)
        return ir.WalkResult.ADVANCE
    for region in op.regions:
        for b in region.blocks:
            inner.update(b.arguments)
            for o in b.operations:
                o.operation.walk(define, ir.WalkOrder.PRE_ORDER)
    users: Dict[ir.Value, set] = {}
    order: List[ir.Value] = []

    def read(o):
        o = o.operation
        for v in o.operands:
            if v not in inner:
                if v not in users:
                    users[v] = set()
                    order.append(v)
                users[v].add(o.name)
        return ir.WalkResult.ADVANCE
    op.walk(read, ir.WalkOrder.PRE_ORDER)
    return order, users


def _arg_type(v: ir.Value, readers: set) -> ir.Type:
    """``v``'s type, with a static offset made dynamic when only
    layout-free ops read it."""
    t = v.type
    if not isinstance(t, ir.MemRefType) or not readers <= set(_LAYOUT_FREE):
        return t
    t = ir.MemRefType(t)
    if not isinstance(t.layout, ir.StridedLayoutAttr):
        return t
    layout = ir.StridedLayoutAttr(t.layout)
    if layout.offset == _DYNAMIC:
        return t
    return ir.MemRefType.get(t.shape, t.element_type,
                             ir.StridedLayoutAttr.get(_DYNAMIC, layout.strides),
                             t.memory_space)


def _candidate(op: ir.Operation, module_block: ir.Block):
    """``(op, function, arguments, argument types)``: a private function
    (appended to the module) holding ``op`` as its outlined form."""
    order, users = _captured(op)
    consts, args = [], []
    for v in order:
        d = defining_op(v)
        (consts if d is not None and d.name in _CLONED else args).append(v)
    types = [_arg_type(v, users[v]) for v in args]
    with ir.InsertionPoint(module_block), op.location:
        fn = create("func.func", [], [], {
            "sym_name": ir.StringAttr.get(_TMP),
            "sym_visibility": ir.StringAttr.get("private"),
            "function_type": ir.TypeAttr.get(ir.FunctionType.get(types, []))}, regions=1)
        entry = fn.regions[0].blocks.append(*types, arg_locs=[op.location] * len(types))
    env = dict(zip(args, entry.arguments))
    with ir.InsertionPoint(entry), op.location:
        for v in consts:
            clone_with_remap(defining_op(v), env)
        clone_with_remap(op, env)
        create("func.return", [], [])
    return op, fn, args, types
