"""forward-copies: let a region write its result where it is copied to.

Expects: bufferized IR (memrefs), before ``copy-to-linalg``.
Guarantees: for ``memref.copy %tmp, %dst`` where ``%tmp`` is a
``memref.alloc`` written only as one output of one ``linalg.generic`` (and
otherwise only copied once and deallocated), and nothing but other copies,
subviews and deallocs stands between that generic and the copy, the generic
writes into ``%dst`` directly and the temporary, the copy and the dealloc
disappear. ``%dst``'s defining subview (pure, of values defined earlier) is
moved above the generic.

Why: a backward region that produces several slices of one cotangent (the
LSTM's dG gate by gate) can write only one of them in place through
upstream empty-tensor elimination; the others would go through a
temporary and a copy, i.e. extra memory traffic.
"""

from mlir import ir

from ..dialect.ir_utils import defining_op
from .support.registry import register

# Ops whose memory effects are their memref operands (nothing hidden).
_HARMLESS = {"memref.copy", "memref.subview", "memref.dealloc", "linalg.generic"}


@register("forward-copies")
def forward_copies(module_op: ir.Operation) -> None:
    copies = []
    module_op.walk(lambda o: (copies.append(o.operation) if o.operation.name == "memref.copy"
                              else None, ir.WalkResult.ADVANCE)[1])
    for copy in copies:
        _try_forward(copy)


def _try_forward(copy: ir.Operation) -> bool:
    tmp, dst = copy.operands
    alloc = defining_op(tmp)
    if alloc is None or alloc.name != "memref.alloc":
        return False
    users = [u.owner.operation for u in tmp.uses]
    writers = [u for u in users if u.name == "linalg.generic"]
    others = [u for u in users if u.name not in ("linalg.generic",)]
    if len(writers) != 1 or any(u.name not in ("memref.copy", "memref.dealloc") for u in others):
        return False
    if sum(1 for u in others if u.name == "memref.copy") != 1:
        return False
    gen = writers[0]
    n_in = int(ir.DenseI32ArrayAttr(gen.attributes["operandSegmentSizes"])[0])
    slots = [k for k, v in enumerate(gen.operands) if v == tmp]
    if len(slots) != 1 or slots[0] < n_in:
        return False
    if gen.block != copy.block:
        return False
    # The generic may not touch dst's memory through another operand (a
    # second output written to the same slice, an input read from it).
    if any(k != slots[0] and _may_overlap(v, dst) for k, v in enumerate(gen.operands)):
        return False
    # Between the generic and the copy, nothing may read or write dst's
    # memory: after the rewrite dst holds the new values from the generic on,
    # where before it held its old ones until the copy.
    node = _next(gen)
    while node is not None and node != copy:
        if node.name not in _HARMLESS:
            return False
        if node.name != "memref.subview" and any(
                _may_overlap(v, dst) for v in node.operands):
            return False
        node = _next(node)
    if node is None:
        return False
    sub = defining_op(dst)
    if sub is not None and not _dominates(sub, gen):
        if sub.name != "memref.subview" or sub.block != gen.block or any(
                (d := defining_op(v)) is not None and not _dominates(d, gen)
                for v in sub.operands):
            return False
        sub.move_before(gen)
    gen.operands[slots[0]] = dst
    copy.erase()
    for u in [u.owner.operation for u in tmp.uses]:
        u.erase()
    alloc.erase()
    return True


# Ops whose result is a view of (the same memory as) their first operand.
_VIEWS = {"memref.subview", "memref.collapse_shape", "memref.expand_shape",
          "memref.cast", "memref.reinterpret_cast", "memref.transpose"}


def _base(v: ir.Value):
    """The buffer ``v`` is a view of: an allocation or a function argument.
    Distinct bases never share memory (the runtime never passes aliasing
    arguments)."""
    d = defining_op(v)
    while d is not None and d.name in _VIEWS:
        v = d.operands[0]
        d = defining_op(v)
    return v


def _may_overlap(a: ir.Value, b: ir.Value) -> bool:
    """False only when memrefs ``a`` and ``b`` provably share no element."""
    if not isinstance(a.type, ir.MemRefType) or not isinstance(b.type, ir.MemRefType):
        return False
    return _base(a) == _base(b) and not _disjoint(a, b)


def _dominates(d: ir.Operation, op: ir.Operation) -> bool:
    """True when ``d`` comes before ``op`` in its block, or is in a block
    enclosing ``op``'s (structured control flow: it then dominates ``op``)."""
    if d.block == op.block:
        return d.is_before_in_block(op)
    parent = op.parent
    while parent is not None and parent.name != "builtin.module":
        if parent.block == d.block:
            return d.is_before_in_block(parent)
        parent = parent.parent
    return False


def _next(op: ir.Operation):
    """The op after ``op`` in its block, or None."""
    found = False
    for o in _block_ops(op):
        if found:
            return o
        if o == op:
            found = True
    return None


def _block_ops(op):
    return [o.operation for o in op.block.operations]


def _box(v: ir.Value):
    """Static (offset, size) per dim of a subview of a base buffer, or None."""
    d = defining_op(v)
    if d is None or d.name != "memref.subview" or len(d.operands) != 1:
        return None
    a = d.attributes
    offs = list(ir.DenseI64ArrayAttr(a["static_offsets"]))
    sizes = list(ir.DenseI64ArrayAttr(a["static_sizes"]))
    strides = list(ir.DenseI64ArrayAttr(a["static_strides"]))
    if any(s != 1 for s in strides):
        return None
    return list(zip(offs, sizes))


def _disjoint(a: ir.Value, b: ir.Value) -> bool:
    ba, bb = _box(a), _box(b)
    if ba is None or bb is None or len(ba) != len(bb):
        return False
    return any(x0 + xs <= y0 or y0 + ys <= x0 for (x0, xs), (y0, ys) in zip(ba, bb))
