"""Vector (16-byte) loads and stores for GPU loop nests, where alignment allows.

A memory-bound kernel such as a fused pointwise region moves the most bytes
per instruction with ``ld.global.v4.f32`` / ``st.global.v4.f32``. This module
decides whether one ``scf.parallel`` nest can use them (:func:`plan_vectors`)
and emits its per-thread body as ``V`` *lanes* (:func:`emit_lanes`): lane
``k`` is a clone of the loop body at innermost index ``q*V + k``, so a thread
handles ``V`` neighbouring points. Every load that reads row-contiguous
memory at the innermost index becomes one ``vector.load`` of ``V`` elements
shared by the lanes; every such store becomes one ``vector.store`` after the
last lane.

Alignment is a run-time fact (a caller may pass a view of a CuPy or PyTorch
array at any offset), so the kernel tests it (:func:`emit_alignment_test`)
and keeps the scalar loop as the other branch of a uniform ``scf.if``: the
vector path runs only when every buffer it touches is aligned to
``V * itemsize`` bytes — always true for buffers from ``cuMemAlloc`` (256 B)
and PyTorch/CuPy allocations — and the result is the same either way.

Soundness, beyond alignment:

* Lanes are iterations of an ``scf.parallel``, which are independent by
  definition, so running them in any order and interleaving is allowed.
* Within one iteration, a vector load moves before earlier lanes' code and a
  vector store after later lanes' code. That is only reordering across
  iterations, *unless* an iteration reads memory it also writes; so a nest
  in which any buffer (traced through views to its allocation) is both
  loaded and stored is left scalar.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from mlir import ir
from mlir.dialects import arith, memref, vector

VECTOR_BYTES = 16      # the widest global load/store before sm_100

# Views: ops whose result aliases operand 0.
_VIEW_OPS = frozenset({"memref.subview", "memref.cast", "memref.collapse_shape",
                       "memref.expand_shape", "memref.reinterpret_cast"})


@dataclass
class VectorPlan:
    """How to vectorise one nest.

    ``width``: lanes per thread (V). ``memrefs``: buffers defined outside
    the nest that vector loads/stores touch, with the alignment in bytes
    each needs (the kernel tests these at run time). ``positions``: which
    top-level ops of the nest's body become vector loads/stores.
    """
    width: int
    memrefs: List[Tuple[ir.Value, int]]
    positions: frozenset


def _itemsize(t: ir.Type):
    """Bytes of an element, or None for ``index`` (32 or 64 bits on the GPU
    depending on the program: no alignment can be promised for it)."""
    if isinstance(t, ir.FloatType):
        return t.width // 8
    if isinstance(t, ir.IntegerType):
        return max(1, t.width // 8)
    return None


def buffer_root(v: ir.Value):
    """The allocation or argument a memref value views (through view ops)."""
    while isinstance(v.owner, ir.OpView) and v.owner.operation.name in _VIEW_OPS:
        v = v.owner.operation.operands[0]
    return v


def _walk(block: ir.Block):
    for op in block.operations:
        op = op.operation
        yield op
        for region in op.regions:
            for b in region.blocks:
                yield from _walk(b)


def _defined_inside(v: ir.Value, par: ir.Operation) -> bool:
    owner = v.owner
    op = owner.operation if isinstance(owner, ir.OpView) else owner.owner
    while op is not None:
        if op == par:
            return True
        op = op.parent
    return False


def _contiguous_rows(mt: ir.MemRefType, width: int) -> bool:
    """Innermost stride 1, and the static offset and every other stride a
    multiple of ``width`` elements: then the address of element
    ``[..., q*width]`` is ``width`` elements past an aligned one."""
    if mt.rank == 0:
        return False
    strides, offset = mt.get_strides_and_offset()
    dyn = ir.ShapedType.get_dynamic_stride_or_offset()
    if offset == dyn or any(s == dyn for s in strides):
        return False
    return (strides[-1] == 1 and offset % width == 0
            and all(s % width == 0 for s in strides[:-1]))


def _vector_access(op: ir.Operation, inner: ir.Value, par: ir.Operation,
                   width: int) -> bool:
    """True if top-level load/store ``op`` reads/writes ``width`` contiguous
    elements across the lanes (innermost index = the innermost loop index)."""
    if op.name == "memref.load":
        ref, idx = op.operands[0], list(op.operands)[1:]
    elif op.name == "memref.store":
        ref, idx = op.operands[1], list(op.operands)[2:]
    else:
        return False
    if not idx or _defined_inside(ref, par) or idx[-1] != inner:
        return False
    # The lanes share one vector access, built from lane 0's leading
    # indices: each must be the same in every lane, i.e. another loop's
    # index or a value from outside the nest -- never computed in the body
    # (it could depend on the innermost index).
    outer_ivs = list(par.regions[0].blocks[0].arguments)[:-1]
    if any(not (i in outer_ivs or not _defined_inside(i, par)) for i in idx[:-1]):
        return False
    return _contiguous_rows(ir.MemRefType(ref.type), width)


def plan_vectors(par: ir.Operation, trips: Sequence[int],
                 bounds: Sequence[Tuple[int, int, int]]) -> Tuple[Optional[VectorPlan], str]:
    """``(plan, "")`` if nest ``par`` should run ``V`` lanes per thread,
    else ``(None, reason)``.

    Vectorises when the innermost trip count is a multiple of ``V`` (16
    bytes over the widest element the nest loads or stores), the innermost
    loop starts at 0 with step 1, no buffer is both read and written, and
    at least one top-level load or store is row-contiguous.
    """
    body = par.regions[0].blocks[0]
    inner = body.arguments[len(body.arguments) - 1]
    loaded, stored, widest = set(), set(), 1
    for op in _walk(body):
        if op.name in ("memref.load", "memref.store"):
            ref = op.operands[0] if op.name == "memref.load" else op.operands[1]
            (loaded if op.name == "memref.load" else stored).add(buffer_root(ref))
            size = _itemsize(ir.MemRefType(ref.type).element_type)
            if size is None:
                return None, "a buffer of index elements"
            widest = max(widest, size)
        elif any(isinstance(v.type, ir.MemRefType) for v in op.operands):
            return None, f"{op.name} uses a buffer inside the nest"
    width = VECTOR_BYTES // widest
    if width < 2:
        return None, "elements are 16 bytes wide"
    lb, _, st = bounds[-1]
    if lb != 0 or st != 1:
        return None, "the innermost loop does not start at 0 with step 1"
    if trips[-1] % width:
        return None, f"the innermost extent {trips[-1]} is not a multiple of {width}"
    if loaded & stored:
        return None, "a buffer is both read and written"
    refs: Dict[ir.Value, int] = {}
    positions = set()
    for i, op in enumerate(body.operations):
        op = op.operation
        if _vector_access(op, inner, par, width):
            ref = op.operands[0] if op.name == "memref.load" else op.operands[1]
            refs[ref] = width * _itemsize(ir.MemRefType(ref.type).element_type)
            positions.add(i)
    if not refs:
        return None, "no load or store is contiguous along the innermost loop"
    return VectorPlan(width, list(refs.items()), frozenset(positions)), ""


def emit_alignment_test(plan: VectorPlan) -> ir.Value:
    """``i1``: every buffer of ``plan`` is aligned as its vectors need
    (built at the insertion point, inside the kernel)."""
    idx = ir.IndexType.get()
    bad = None
    for ref, align in plan.memrefs:
        p = memref.extract_aligned_pointer_as_index(ref)
        low = arith.andi(p, arith.constant(idx, align - 1))
        bad = low if bad is None else arith.ori(bad, low)
    return arith.cmpi(arith.CmpIPredicate.eq, bad, arith.constant(idx, 0))


def emit_lanes(par: ir.Operation, lanes: List[List[ir.Value]], end: ir.Operation,
               plan: VectorPlan) -> None:
    """Emit before ``end`` one clone of ``par``'s body per lane (lane ``k``'s
    loop indices are ``lanes[k]``) and fuse their contiguous loads/stores
    into vector ones on ``memref.assume_alignment`` views of the buffers.

    Must run where :func:`emit_alignment_test` held. ``par`` is left as is.
    """
    width = plan.width
    assert len(lanes) == width
    aligned = {}
    with ir.InsertionPoint(end):
        for ref, align in plan.memrefs:
            aligned[ref] = memref.assume_alignment(ref, align)
    lane_ops: List[List[ir.Operation]] = []
    for ivs in lanes:
        clone = par.clone(ip=ir.InsertionPoint(end))
        src = clone.regions[0].blocks[0]
        for arg, iv in zip(src.arguments, ivs):
            arg.replace_all_uses_with(iv)
        ops = [o.operation for o in src.operations][:-1]   # the last is scf.reduce
        for o in ops:
            o.move_before(end)
        clone.erase()
        lane_ops.append(ops)
    for i, group in enumerate(zip(*lane_ops)):
        if i not in plan.positions:
            continue
        first = group[0]
        if first.name == "memref.load":
            _fuse_loads(group, aligned[first.operands[0]], width)
        else:
            _fuse_stores(group, aligned[first.operands[1]], width)


def _fuse_loads(group, ref: ir.Value, width: int) -> None:
    first = group[0]
    elt = ir.MemRefType(ref.type).element_type
    vtype = ir.VectorType.get([width], elt)
    align = width * _itemsize(elt)
    with ir.InsertionPoint(first):
        vec = vector.load(vtype, ref, list(first.operands)[1:], alignment=align)
    for k, op in enumerate(group):
        with ir.InsertionPoint(op):
            lane = vector.extract(vec, [], [k])
        op.results[0].replace_all_uses_with(lane)
        op.erase()


def _fuse_stores(group, ref: ir.Value, width: int) -> None:
    first, last = group[0], group[-1]
    elt = ir.MemRefType(ref.type).element_type
    vtype = ir.VectorType.get([width], elt)
    align = width * _itemsize(elt)
    with ir.InsertionPoint(last):
        vec = vector.from_elements(vtype, [op.operands[0] for op in group])
        vector.store(vec, ref, list(first.operands)[2:], alignment=align)
    for op in group:
        op.erase()
