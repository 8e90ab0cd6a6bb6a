"""What the matmul lowerings (``tile-matmul``, ``tile-matmul-gpu``) accept."""

from mlir import ir

# The attribute of pack-scan-weights' packed matmul (a linalg.generic reading
# B's panels packed before a scan's loop; its value: the panel width NR).
# tile-matmul computes it; passes that rewrite reductions leave it alone.
PACKED_MATMUL = "ferrule.packed_matmul"

# Default indexing maps of linalg.matmul (rank 2) and linalg.batch_matmul (3).
DEFAULT_MAPS = {
    2: "[affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, "
       "affine_map<(d0, d1, d2) -> (d0, d1)>]",
    3: "[affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>, affine_map<(d0, d1, d2, d3) -> "
       "(d0, d3, d2)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>]",
}


def plain_matmul_on_buffers(op: ir.Operation, rank: int, unit_stride_rows: bool) -> bool:
    """``op`` (``linalg.matmul`` for rank 2, ``linalg.batch_matmul`` for 3)
    has default indexing maps and static ``f32``/``f64`` memref operands of
    one element type; with ``unit_stride_rows``, B's and C's rows are also
    contiguous (innermost stride 1, as vector loads need)."""
    if len(op.operands) != 3 or len(op.results):
        return False
    if ("indexing_maps" in op.attributes
            and op.attributes["indexing_maps"] != ir.Attribute.parse(DEFAULT_MAPS[rank])):
        return False
    types = [v.type for v in op.operands]
    if not all(isinstance(t, ir.MemRefType) and t.rank == rank and t.has_static_shape
               for t in types):
        return False
    elt = types[0].element_type
    if not all(t.element_type == elt for t in types) or not isinstance(
            elt, (ir.F32Type, ir.F64Type)):
        return False
    return not unit_stride_rows or all(
        ir.MemRefType(t).get_strides_and_offset()[0][-1] == 1 for t in types[1:])


def plain_matmul_on_tensors(op: ir.Operation) -> bool:
    """``op`` is a 2-D ``linalg.matmul`` on static ranked float tensors of
    one element type, with default indexing maps."""
    if len(op.operands) != 3 or len(op.results) != 1:
        return False
    if ("indexing_maps" in op.attributes
            and op.attributes["indexing_maps"] != ir.Attribute.parse(DEFAULT_MAPS[2])):
        return False
    types = [v.type for v in op.operands]
    if not all(isinstance(t, ir.RankedTensorType) and t.rank == 2 and t.has_static_shape
               for t in types):
        return False
    elt = types[0].element_type
    return all(t.element_type == elt for t in types) and isinstance(
        elt, (ir.F32Type, ir.F64Type))
