"""Small helpers over the MLIR Python bindings used by several passes.

They hide the bindings' rough edges (generic-op construction, attribute
plumbing) behind functions with stated contracts, so the passes read as
rewrites rather than as API calls.
"""

from typing import Callable, Dict, List, Optional, Sequence

from mlir import ir

PARALLEL = "#linalg.iterator_type<parallel>"
REDUCTION = "#linalg.iterator_type<reduction>"


def tensor_type(shape: Sequence[int], elt: ir.Type) -> ir.RankedTensorType:
    return ir.RankedTensorType.get(list(shape), elt)


def shape_of(value_or_type) -> tuple:
    t = value_or_type.type if isinstance(value_or_type, ir.Value) else value_or_type
    return tuple(ir.RankedTensorType(t).shape)


def element_type(value_or_type) -> ir.Type:
    t = value_or_type.type if isinstance(value_or_type, ir.Value) else value_or_type
    if isinstance(t, ir.RankedTensorType):
        return ir.RankedTensorType(t).element_type
    return t


def is_ranked_tensor(value: ir.Value) -> bool:
    return isinstance(value.type, ir.RankedTensorType)


def attrs_of(op: ir.Operation) -> Dict[str, ir.Attribute]:
    return {name: op.attributes[name] for name in op.attributes}


def create(name: str, result_types: Sequence[ir.Type], operands: Sequence[ir.Value],
           attributes: Optional[Dict[str, ir.Attribute]] = None,
           regions: int = 0, loc: Optional[ir.Location] = None) -> ir.Operation:
    """Create an op by name at the current insertion point."""
    return ir.Operation.create(name, results=list(result_types),
                               operands=list(operands),
                               attributes=attributes or {}, regions=regions,
                               loc=loc)


def empty(shape: Sequence[int], elt: ir.Type) -> ir.Value:
    """``tensor.empty`` of a static shape."""
    return create("tensor.empty", [tensor_type(shape, elt)], []).result


def identity_map(rank: int) -> ir.AffineMap:
    return ir.AffineMap.get_identity(rank)


def projection_map(rank: int, dims: Sequence[int]) -> ir.AffineMap:
    """``(d0..d{rank-1}) -> (d{dims[0]}, d{dims[1]}, ...)``."""
    return ir.AffineMap.get(rank, 0, [ir.AffineDimExpr.get(d) for d in dims])


def map_dims(m: ir.AffineMap) -> Optional[List[int]]:
    """The result dims of a projected permutation map, or None if it is not one."""
    dims = []
    for e in m.results:
        if not isinstance(e, ir.AffineDimExpr):
            return None
        dims.append(ir.AffineDimExpr(e).position)
    return dims


def is_identity(m: ir.AffineMap) -> bool:
    return map_dims(m) == list(range(m.n_dims)) and m.n_dims == len(m.results)


def make_generic(inputs: Sequence[ir.Value], inits: Sequence[ir.Value],
                 maps: Sequence[ir.AffineMap], iterators: Sequence[str],
                 body: Callable[[List[ir.Value]], Sequence[ir.Value]],
                 loc: Optional[ir.Location] = None,
                 extra_attrs: Optional[Dict[str, ir.Attribute]] = None) -> ir.Operation:
    """Build a ``linalg.generic`` at the current insertion point.

    ``body(args)`` is called with the block arguments (one scalar per input,
    then one per init) inside the body block and returns the values to yield.
    Result types are the init tensors' types.
    """
    attrs = {
        "indexing_maps": ir.ArrayAttr.get([ir.AffineMapAttr.get(m) for m in maps]),
        "iterator_types": ir.ArrayAttr.get([ir.Attribute.parse(i) for i in iterators]),
        "operandSegmentSizes": ir.DenseI32ArrayAttr.get([len(inputs), len(inits)]),
    }
    if extra_attrs:
        attrs.update(extra_attrs)
    op = create("linalg.generic", [v.type for v in inits], [*inputs, *inits],
                attrs, regions=1, loc=loc)
    arg_types = [element_type(v) for v in (*inputs, *inits)]
    loc = loc or ir.Location.current
    block = op.regions[0].blocks.append(*arg_types, arg_locs=[loc] * len(arg_types))
    with ir.InsertionPoint(block):
        results = body(list(block.arguments))
        create("linalg.yield", [], list(results))
    return op


def generic_maps(op: ir.Operation) -> List[ir.AffineMap]:
    return [ir.AffineMapAttr(a).value for a in op.attributes["indexing_maps"]]


def generic_iterators(op: ir.Operation) -> List[str]:
    return [str(a) for a in op.attributes["iterator_types"]]


def generic_num_inputs(op: ir.Operation) -> int:
    return int(ir.DenseI32ArrayAttr(op.attributes["operandSegmentSizes"])[0])


def body_block(op: ir.Operation) -> ir.Block:
    return op.regions[0].blocks[0]


def defining_op(value: ir.Value) -> Optional[ir.Operation]:
    owner = value.owner
    if isinstance(owner, ir.Block):
        return None
    return owner.operation if hasattr(owner, "operation") else owner


def funcs_of(module_op: ir.Operation) -> List[ir.Operation]:
    """The ``func.func`` ops directly inside a module."""
    region = module_op.regions[0]
    return [op.operation for op in region.blocks[0].operations
            if op.operation.name == "func.func"]


def func_name(fn: ir.Operation) -> str:
    return ir.StringAttr(fn.attributes["sym_name"]).value


def func_body(fn: ir.Operation) -> ir.Block:
    return fn.regions[0].blocks[0]


def block_ops(block: ir.Block) -> List[ir.Operation]:
    return [op.operation for op in block.operations]


def values_used(op: ir.Operation) -> List[ir.Value]:
    """Operands of ``op`` and values its nested regions capture from outside."""
    used = list(op.operands)
    if len(op.regions):
        inner_defined = set()

        def visit(o):
            o = o.operation
            for r in o.results:
                inner_defined.add(_key(r))
            for region in o.regions:
                for b in region.blocks:
                    for a in b.arguments:
                        inner_defined.add(_key(a))
            return ir.WalkResult.ADVANCE

        for region in op.regions:
            for b in region.blocks:
                for a in b.arguments:
                    inner_defined.add(_key(a))
                for inner in b.operations:
                    inner.operation.walk(visit)
        for region in op.regions:
            for b in region.blocks:
                for inner in b.operations:
                    def collect(o):
                        for v in o.operation.operands:
                            if _key(v) not in inner_defined:
                                used.append(v)
                        return ir.WalkResult.ADVANCE
                    inner.operation.walk(collect)
    return used


def _key(v: ir.Value):
    return v  # ir.Value is hashable and compares by identity of the SSA value


def producer_indices(ops: List[ir.Operation]) -> List[set]:
    """For each op of ``ops`` (one block, in order), the indices of the ops in
    ``ops`` whose results it uses (nested regions' captures included)."""
    index = {o: i for i, o in enumerate(ops)}
    producers = []
    for o in ops:
        ps = set()
        for v in values_used(o):
            d = defining_op(v)
            if d is not None and d in index:
                ps.add(index[d])
        producers.append(ps)
    return producers


def topo_sort_block(block: ir.Block) -> None:
    """Reorder the ops of ``block`` so every value is defined before use.

    Stable: among ops whose inputs are ready, the earlier one in the current
    order goes first. The terminator stays last.
    """
    import heapq
    ops = block_ops(block)
    term = ops[-1]
    body = ops[:-1]
    producers = producer_indices(body)
    users = [[] for _ in body]
    indeg = [0] * len(body)
    for i, ps in enumerate(producers):
        for p in ps:
            users[p].append(i)
        indeg[i] = len(ps)
    ready = [i for i in range(len(body)) if indeg[i] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            indeg[u] -= 1
            if indeg[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(body):
        raise RuntimeError("topo_sort_block: the block has a dependence cycle")
    for i in order:
        body[i].move_before(term)


def loc_where(loc: ir.Location) -> str:
    """``file.py:LINE`` of the first file location in ``loc`` (fused or not),
    or ``<unknown>``."""
    import re
    m = re.search(r'"([^"]+)":(\d+)', str(loc))
    if not m:
        return "<unknown>"
    return f"{m.group(1).rsplit('/', 1)[-1]}:{m.group(2)}"
