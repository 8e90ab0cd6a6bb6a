"""Row splitting: run a row-separable function on several threads.

A function is *row-separable* when every argument and result has the same
leading dimension N and every op maps row r of its operands to row r of its
results: pointwise or reducing generics whose maps all start with ``d0`` (and
use ``d0`` nowhere else, iterator 0 parallel), slices and inserts that keep
all N rows, reshapes that keep dim 0 alone, splat constants and empty
tensors. Then the same program on an n-row chunk computes those n rows, and
the caller runs chunks on threads (the compiled code releases the GIL).

:func:`chunk_module` checks that and rewrites the IR for n rows; it returns
None with the reason when the function is not row-separable (matmul,
reductions over rows, broadcasts of non-row data, ...).
"""

from typing import Optional, Tuple

from mlir import ir


def _lead(t) -> Optional[int]:
    if isinstance(t, ir.RankedTensorType) and t.rank >= 1:
        return t.shape[0]
    return None


def _find(module, name):
    for op in module.body.operations:
        op = op.operation
        if op.name == "func.func" and ir.StringAttr(op.attributes["sym_name"]).value == name:
            return op
    raise KeyError(name)


def _dense(op, name):
    return list(ir.DenseI64ArrayAttr(op.attributes[name]))


def _why_not(fn, N: int) -> Optional[str]:
    """None when ``fn`` is row-separable over N rows, else the reason."""
    block = fn.regions[0].blocks[0]
    ftype = ir.FunctionType(ir.TypeAttr(fn.attributes["function_type"]).value)
    for t in [*ftype.inputs, *ftype.results]:
        if _lead(t) != N:
            return f"an argument or result of type {t} does not have {N} rows"
    for op in block.operations:
        op = op.operation
        name = op.name
        if name == "func.return":
            continue
        for r in op.results:
            if isinstance(r.type, ir.RankedTensorType) and _lead(r.type) != N:
                return f"'{name}' produces {r.type}"
        if name == "tensor.empty":
            continue
        if name == "arith.constant":
            v = op.attributes["value"]
            if isinstance(op.results[0].type, ir.RankedTensorType) and not (
                    isinstance(v, ir.DenseElementsAttr) and v.is_splat):
                return "a non-splat constant array"
            continue
        if name == "linalg.generic":
            if str(op.attributes["iterator_types"][0]) != "#linalg.iterator_type<parallel>":
                return "a reduction over rows"
            for m in op.attributes["indexing_maps"]:
                res = list(ir.AffineMapAttr(m).value.results)
                if not res or str(res[0]) != "d0" or any("d0" in str(e) for e in res[1:]):
                    return "a region that reads across rows (broadcast or transpose of dim 0)"
            continue
        if name in ("tensor.extract_slice", "tensor.insert_slice"):
            if (_dense(op, "static_offsets")[0] != 0 or _dense(op, "static_sizes")[0] != N
                    or _dense(op, "static_strides")[0] != 1):
                return f"'{name}' selects rows"
            continue
        if name in ("tensor.collapse_shape", "tensor.expand_shape"):
            first = [ir.IntegerAttr(d).value for d in op.attributes["reassociation"][0]]
            if first != [0]:
                return f"'{name}' merges or splits dim 0"
            continue
        return f"'{name}' is not known to be row-local"
    return None


def chunk_module(module_text: str, func_name: str, ctx: ir.Context,
                 rows: int) -> Tuple[Optional[str], str]:
    """(module text for ``rows``-row chunks, "") or (None, reason)."""
    with ctx, ir.Location.unknown():
        module = ir.Module.parse(module_text)
        fn = _find(module, func_name)
        block = fn.regions[0].blocks[0]
        ftype = ir.FunctionType(ir.TypeAttr(fn.attributes["function_type"]).value)
        if not ftype.inputs or _lead(ftype.inputs[0]) is None:
            return None, "no leading dimension to split"
        N = _lead(ftype.inputs[0])
        why = _why_not(fn, N)
        if why:
            return None, why

        def retype(v):
            t = v.type
            if isinstance(t, ir.RankedTensorType) and _lead(t) == N:
                v.set_type(ir.RankedTensorType.get([rows, *t.shape[1:]], t.element_type))

        for a in block.arguments:
            retype(a)
        for op in block.operations:
            op = op.operation
            for r in op.results:
                retype(r)
            if op.name in ("tensor.extract_slice", "tensor.insert_slice"):
                op.attributes["static_sizes"] = ir.DenseI64ArrayAttr.get(
                    [rows, *_dense(op, "static_sizes")[1:]])
            elif op.name == "tensor.expand_shape":
                op.attributes["static_output_shape"] = ir.DenseI64ArrayAttr.get(
                    [rows, *_dense(op, "static_output_shape")[1:]])
            elif op.name == "arith.constant" and isinstance(op.results[0].type, ir.RankedTensorType):
                splat = ir.DenseElementsAttr(op.attributes["value"]).get_splat_value()
                op.attributes["value"] = ir.DenseElementsAttr.get_splat(op.results[0].type, splat)
        results = [o.type for o in list(block.operations)[-1].operation.operands]
        fn.attributes["function_type"] = ir.TypeAttr.get(
            ir.FunctionType.get([a.type for a in block.arguments], results))
        module.operation.verify()
        return str(module), ""
