"""IR helpers over the MLIR Python bindings, shared by every layer above.

The frontend builds IR with them, the passes rewrite it with them, the
runtime reads it with them; each helper is written once, here. They hide
the bindings' rough edges (generic-op construction, attribute plumbing,
symbol lookup, the ``arith.cmpf`` predicate numbers) behind functions with
stated contracts, so callers read as rewrites rather than as API calls.
"""

import heapq
import re
from typing import Callable, Dict, List, Optional, Sequence, Union

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


def drop_unused_inputs(op: ir.Operation) -> ir.Operation:
    """``op`` (a ``linalg.generic`` whose inits span its loop domain, with a
    body of side-effect-free scalar ops) without the inputs its body never
    reads once its dead ops are erased: a new op at ``op``'s place, its
    results replacing ``op``'s, which is erased. Returns ``op`` itself
    (dead body ops erased) if every input is read."""
    n_in = generic_num_inputs(op)
    block = op.regions[0].blocks[0]
    for o in reversed(list(block.operations)[:-1]):
        if not any(True for r in o.results for _ in r.uses):
            o.erase()
    args = list(block.arguments)
    used = set()
    for o in block.operations:
        used.update(values_used(o))
    keep = [i for i in range(n_in) if args[i] in used]
    if len(keep) == n_in:
        return op
    operands = list(op.operands)
    maps = generic_maps(op)
    body_ops = list(block.operations)
    with ir.InsertionPoint(op), op.location:
        def body(new_args):
            env = dict(zip([args[i] for i in keep] + args[n_in:], new_args))
            for o in body_ops[:-1]:
                clone_with_remap(o, env)
            return [env.get(v, v) for v in body_ops[-1].operands]
        new = make_generic([operands[i] for i in keep], operands[n_in:],
                           [maps[i] for i in keep] + maps[n_in:], generic_iterators(op), body)
    for r, nr in zip(op.results, new.results):
        r.replace_all_uses_with(nr)
    op.erase()
    return new


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


# -- symbols ---------------------------------------------------------------------

def _module_op(module: Union[ir.Module, ir.Operation]) -> ir.Operation:
    return module.operation


def funcs_of(module_op: Union[ir.Module, ir.Operation]) -> List[ir.Operation]:
    """The ``func.func`` ops directly inside a module."""
    region = _module_op(module_op).regions[0]
    return [op.operation for op in region.blocks[0].operations
            if op.operation.name == "func.func"]


def func_name(fn: ir.Operation) -> str:
    return ir.StringAttr(fn.attributes["sym_name"]).value


def func_body(fn: ir.Operation) -> ir.Block:
    return fn.regions[0].blocks[0]


def func_type(fn: ir.Operation) -> ir.FunctionType:
    return ir.FunctionType(ir.TypeAttr(fn.attributes["function_type"]).value)


def find_symbol(module: Union[ir.Module, ir.Operation], name: str,
                op_name: str = "func.func") -> Optional[ir.Operation]:
    """The ``op_name`` op with ``sym_name`` ``name`` directly inside
    ``module`` (a module or ``gpu.module`` op, or an ``ir.Module``), or None."""
    for op in _module_op(module).regions[0].blocks[0].operations:
        op = op.operation
        if (op.name == op_name and "sym_name" in op.attributes
                and ir.StringAttr(op.attributes["sym_name"]).value == name):
            return op
    return None


def find_func(module: Union[ir.Module, ir.Operation], name: str) -> ir.Operation:
    """The ``func.func @name`` of ``module``; ``KeyError`` when there is none."""
    fn = find_symbol(module, name)
    if fn is None:
        raise KeyError(f"no func.func @{name} in the module")
    return fn


def block_ops(block: ir.Block) -> List[ir.Operation]:
    return [op.operation for op in block.operations]


def function_body_ops(module_op: Union[ir.Module, ir.Operation]):
    """The top-level ops of each ``func.func`` with a body in the module,
    function by function; the functions (and each body's ops) are listed
    before they are visited, so a caller may add functions or replace ops."""
    for fn in funcs_of(module_op):
        if len(fn.regions[0].blocks):
            yield from block_ops(func_body(fn))


# -- constants and comparisons ------------------------------------------------------

def float_const(t: ir.Type, v: float) -> ir.Value:
    """A scalar float ``arith.constant`` of type ``t``."""
    return create("arith.constant", [t], [], {"value": ir.FloatAttr.get(t, v)}).result


def splat_zeros(shape: Sequence[int], elt: ir.Type) -> ir.Value:
    """A splat zero tensor constant (0.0, or 0 / false for an integer or bool
    ``elt``): the passes' symbolic zero (for integers: the zero tangent of a
    value that has none)."""
    t = tensor_type(shape, elt)
    zero = (ir.IntegerAttr.get(elt, 0) if isinstance(elt, ir.IntegerType)
            else ir.FloatAttr.get(elt, 0.0))
    attr = ir.DenseElementsAttr.get_splat(t, zero)
    return create("arith.constant", [t], [], {"value": attr}).result


def is_splat_zero(v: Union[ir.Value, ir.Operation, None], integers: bool = False) -> bool:
    """True for a splat 0.0 tensor ``arith.constant`` (or its result): a
    symbolic zero to the passes, a zero start to a reduction. With
    ``integers``, a splat integer 0 counts too (the symbolic zero cotangent
    of an integer value, a zero start of an integer sum)."""
    op = defining_op(v) if isinstance(v, ir.Value) else v
    if op is None or op.name != "arith.constant" or len(op.results) != 1:
        return False
    if not isinstance(op.results[0].type, ir.RankedTensorType):
        return False
    attr = op.attributes["value"]
    if not isinstance(attr, ir.DenseElementsAttr) or not attr.is_splat:
        return False
    s = attr.get_splat_value()
    if integers and isinstance(s, ir.IntegerAttr):
        return ir.IntegerAttr(s).value == 0
    return isinstance(s, ir.FloatAttr) and ir.FloatAttr(s).value == 0.0


# ``arith.cmpf`` predicates by name (the enum of the arith dialect); numpy's
# comparisons are ordered (false on NaN) except ``!=``, which is ``une``.
CMPF_PREDICATES = {"false": 0, "oeq": 1, "ogt": 2, "oge": 3, "olt": 4, "ole": 5,
                   "one": 6, "ord": 7, "ueq": 8, "ugt": 9, "uge": 10, "ult": 11,
                   "ule": 12, "une": 13, "uno": 14, "true": 15}
OEQ, OGT, OGE, OLT, OLE = "oeq", "ogt", "oge", "olt", "ole"


def cmpf_attrs(pred: str) -> Dict[str, ir.Attribute]:
    """The attributes of an ``arith.cmpf`` with predicate ``pred`` (a name of
    :data:`CMPF_PREDICATES`)."""
    return {"predicate": ir.IntegerAttr.get(ir.IntegerType.get_signless(64),
                                            CMPF_PREDICATES[pred])}


def cmpf(pred: str, a: ir.Value, b: ir.Value, result_type: Optional[ir.Type] = None) -> ir.Value:
    """``arith.cmpf pred, a, b``; the result is ``i1`` unless ``result_type``
    (e.g. a tensor or vector of ``i1``) is given."""
    t = result_type if result_type is not None else ir.IntegerType.get_signless(1)
    return create("arith.cmpf", [t], [a, b], cmpf_attrs(pred)).result


def select(cond: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
    """``arith.select cond, a, b``."""
    return create("arith.select", [a.type], [cond, a, b]).result


# -- cloning -----------------------------------------------------------------------

def clone_with_remap(op: ir.Operation, env: Dict[ir.Value, ir.Value]) -> ir.Operation:
    """Clone ``op`` at the current insertion point, its operands — and the
    outer values its nested regions capture — replaced through ``env``;
    ``env`` then maps ``op``'s results to the clone's. Returns the clone."""
    new = op.clone(ir.InsertionPoint.current)
    for k, v in enumerate(op.operands):
        if v in env:
            new.operands[k] = env[v]
    if len(new.regions):
        def visit(o):
            o = o.operation
            for k, v in enumerate(o.operands):
                if v in env:
                    o.operands[k] = env[v]
            return ir.WalkResult.ADVANCE
        for region in new.regions:
            for b in region.blocks:
                for inner in b.operations:
                    inner.operation.walk(visit)
    for a, b in zip(op.results, new.results):
        env[a] = b
    return new


def clone_block_body(src: ir.Block, env: Dict[ir.Value, ir.Value]) -> List[ir.Value]:
    """Clone the ops of ``src`` but its terminator at the current insertion
    point (``env`` maps ``src``'s arguments and outer values in, and is
    extended); return the terminator's operands, mapped through ``env``."""
    ops = block_ops(src)
    for inner in ops[:-1]:
        clone_with_remap(inner, env)
    return [env.get(v, v) for v in ops[-1].operands]


def replace_by_call(op: ir.Operation, callee: ir.Attribute) -> ir.Operation:
    """Replace ``op`` by ``func.call`` of ``callee`` (a symbol reference) on
    the same operands and with the same result types; returns the call."""
    with ir.InsertionPoint(op), op.location:
        call = create("func.call", [r.type for r in op.results], list(op.operands),
                      {"callee": callee})
    for old, new in zip(op.results, call.results):
        old.replace_all_uses_with(new)
    op.erase()
    return call


# -- static slices -------------------------------------------------------------------

def _i64s(vals: Sequence[int]) -> ir.Attribute:
    return ir.DenseI64ArrayAttr.get([int(v) for v in vals])


def dense_i64(op: ir.Operation, name: str) -> List[int]:
    """An op's ``DenseI64ArrayAttr`` attribute as a list (a slice's
    ``static_sizes``, an expand's ``static_output_shape``...)."""
    return list(ir.DenseI64ArrayAttr(op.attributes[name]))


def extract_slice(src: ir.Value, result_type: ir.Type, offsets: Sequence[int],
                  sizes: Sequence[int], strides: Sequence[int]) -> ir.Value:
    """``tensor.extract_slice`` with static offsets, sizes and strides."""
    return create("tensor.extract_slice", [result_type], [src], {
        "static_offsets": _i64s(offsets), "static_sizes": _i64s(sizes),
        "static_strides": _i64s(strides),
        "operandSegmentSizes": ir.DenseI32ArrayAttr.get([1, 0, 0, 0])}).result


def insert_slice(src: ir.Value, dest: ir.Value, offsets: Sequence[int],
                 sizes: Sequence[int], strides: Sequence[int]) -> ir.Value:
    """``tensor.insert_slice`` of ``src`` into ``dest``, static positions."""
    return create("tensor.insert_slice", [dest.type], [src, dest], {
        "static_offsets": _i64s(offsets), "static_sizes": _i64s(sizes),
        "static_strides": _i64s(strides),
        "operandSegmentSizes": ir.DenseI32ArrayAttr.get([1, 1, 0, 0, 0])}).result


def slice_position(op: ir.Operation):
    """``(offsets, sizes, strides)`` of a static slice op, for the builders."""
    return tuple(dense_i64(op, k) for k in ("static_offsets", "static_sizes",
                                               "static_strides"))


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
    m = re.search(r'"([^"]+)":(\d+)', str(loc))
    if not m:
        return "<unknown>"
    return f"{m.group(1).rsplit('/', 1)[-1]}:{m.group(2)}"
