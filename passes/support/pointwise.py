"""What counts as pointwise, and how to read an op as a scalar function.

A *pointwise op* is either
  * an elementwise ``arith``/``math`` op on ranked tensors of one shape, or
  * a splat ``arith.constant`` of tensor type, or
  * a ``linalg.generic`` whose iterators are all parallel, whose output maps
    are identities and whose input maps are projected permutations
    (identity or broadcast reads).
Its *domain* is the shape of its result(s): pointwise ops of one domain can
share one loop nest.
"""

from typing import List

from mlir import ir

from ...dialect.ir_utils import (PARALLEL, generic_iterators, generic_maps,
                       generic_num_inputs, identity_map, is_identity, map_dims,
                       shape_of)

ELEMENTWISE_DIALECTS = ("arith", "math")


def is_splat_constant(op: ir.Operation) -> bool:
    if op.name != "arith.constant" or len(op.results) != 1:
        return False
    t = op.results[0].type
    if not isinstance(t, ir.RankedTensorType):
        return False
    attr = op.attributes["value"]
    return isinstance(attr, ir.DenseElementsAttr) and ir.DenseElementsAttr(attr).is_splat


def splat_scalar_attr(op: ir.Operation) -> ir.Attribute:
    return ir.DenseElementsAttr(op.attributes["value"]).get_splat_value()


def is_elementwise_tensor_op(op: ir.Operation) -> bool:
    dialect = op.name.split(".", 1)[0]
    if dialect not in ELEMENTWISE_DIALECTS or op.name == "arith.constant":
        return False
    if len(op.results) != 1 or len(op.regions):
        return False
    vals = [*op.operands, *op.results]
    if not all(isinstance(v.type, ir.RankedTensorType) for v in vals):
        return False
    shape = shape_of(op.results[0])
    return all(shape_of(v) == shape for v in vals)


def is_pointwise_generic(op: ir.Operation) -> bool:
    if op.name != "linalg.generic":
        return False
    if any(it != PARALLEL for it in generic_iterators(op)):
        return False
    maps = generic_maps(op)
    n_in = generic_num_inputs(op)
    if not all(is_identity(m) for m in maps[n_in:]):
        return False
    if not all(map_dims(m) is not None and len(set(map_dims(m))) == len(map_dims(m))
               for m in maps[:n_in]):
        return False
    # A body that reads its output-init arguments is an accumulation, not a
    # pure function of its inputs.
    args = list(op.regions[0].blocks[0].arguments)[n_in:]
    if any(list(a.uses) for a in args):
        return False
    # A body that reads anything but its scalar arguments — its loop
    # indices (linalg.index), a tensor (tensor.extract: a gather) — is not
    # a function of the elements at one position: fusing it would be wrong.
    return all(o.operation.name.split(".", 1)[0] in ELEMENTWISE_DIALECTS
               or o.operation.name == "linalg.yield"
               for o in op.regions[0].blocks[0].operations)


def is_pointwise(op: ir.Operation) -> bool:
    return (is_elementwise_tensor_op(op) or is_splat_constant(op)
            or is_pointwise_generic(op))


def domain(op: ir.Operation) -> tuple:
    return shape_of(op.results[0])


def input_maps(op: ir.Operation) -> List[ir.AffineMap]:
    """The indexing map of each input operand of a pointwise op."""
    if op.name == "linalg.generic":
        return generic_maps(op)[:generic_num_inputs(op)]
    rank = len(domain(op))
    return [identity_map(rank) for _ in op.operands]


def pointwise_inputs(op: ir.Operation) -> List[ir.Value]:
    if op.name == "linalg.generic":
        return list(op.operands)[:generic_num_inputs(op)]
    if is_splat_constant(op):
        return []
    return list(op.operands)
