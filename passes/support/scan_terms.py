"""A scan const's cotangent, summed over the steps after the loop.

Reverse mode of ``ad.scan`` (:mod:`.scan_ad`) sums each const's per-step
cotangent over the steps. The terms of that sum that are a matmul or a
batch reduction of per-step values (``dW = Σ_t h_tᵀ·dG_t``, a bias's
``Σ_t sum(dG_t, 0)``) are not summed in the loop: :func:`_stackable_terms`
finds them, and after the backward loop :func:`_stacked_matmul` /
:func:`_stacked_sum` compute each as one operation on the stacked per-step
operands (one large GEMM instead of one small one and a weight-sized add per
step: cuDNN's trick).
"""

from typing import List, Optional

import numpy as np
from mlir import ir
from mlir.dialects import linalg

from . import ad_common as ad
from ...dialect.ir_utils import (PARALLEL, block_ops, body_block, create, defining_op,
                                 element_type, empty, generic_maps, generic_num_inputs,
                                 identity_map, is_identity, is_splat_zero, make_generic,
                                 map_dims, projection_map, shape_of, splat_zeros, tensor_type)
from .matmul import plain_matmul_on_tensors


def _transposed(v: ir.Value) -> Optional[ir.Value]:
    """``p`` when ``v`` is a 2-D transpose ``linalg.generic`` of ``p``."""
    o = defining_op(v)
    if (o is None or o.name != "linalg.generic" or len(o.results) != 1
            or generic_num_inputs(o) != 1 or len(shape_of(v)) != 2):
        return None
    maps = generic_maps(o)
    body = block_ops(body_block(o))
    if (map_dims(maps[0]) != [1, 0] or not is_identity(maps[1]) or len(body) != 1
            or body[0].operands[0] != body_block(o).arguments[0]):
        return None
    return o.operands[0]


def _stackable_terms(v: ir.Value, per_step) -> tuple:
    """Split a const's per-step cotangent ``v`` into ``(terms, rest)``.

    ``v`` is a sum (``arith.addf`` on tensors, or a matmul's accumulator)
    of *terms* that a sum over steps can compute after the loop, from the
    stacked per-step operands, and of other values (``rest``), which stay
    running sums carried through the backward loop:

    * ``("mm", a, a_t, b)``: ``linalg.matmul`` of per-step ``a`` (``a_t``:
      ``a`` is the transpose of that value) and ``b`` — summed over the
      steps it is one matmul of the stacked operands (``dW = Hᵀ·dG``);
    * ``("sum", u, dims)``: a sum-reduction of per-step ``u`` from zeros
      keeping ``dims`` (a bias cotangent) — the same reduction over the
      stacked ``u``, plus its leading axis.
    Splat zeros are dropped.
    """
    terms, rest = [], []

    def walk(w):
        o = defining_op(w)
        if o is None:
            rest.append(w)
        elif is_splat_zero(o):
            return
        elif o.name == "arith.addf" and isinstance(w.type, ir.RankedTensorType):
            walk(o.operands[0])
            walk(o.operands[1])
        elif (o.name == "linalg.matmul" and plain_matmul_on_tensors(o)
              and per_step(o.operands[0]) and per_step(o.operands[1])):
            a = o.operands[0]
            p = _transposed(a)
            if p is not None and per_step(p):
                terms.append(("mm", p, True, o.operands[1]))
            else:
                terms.append(("mm", a, False, o.operands[1]))
            walk(o.operands[2])
        elif (o.name == "linalg.generic" and len(o.results) == 1
              and generic_num_inputs(o) == 1 and is_splat_zero(o.operands[1])
              and _is_sum(o) and is_identity(generic_maps(o)[0])
              and map_dims(generic_maps(o)[1]) is not None and per_step(o.operands[0])):
            terms.append(("sum", o.operands[0], map_dims(generic_maps(o)[1])))
        else:
            rest.append(w)
    walk(v)
    return terms, rest


def _is_sum(o: ir.Operation) -> bool:
    b = body_block(o)
    ops = block_ops(b)
    return (len(ops) == 2 and ops[0].name == "arith.addf"
            and set(ops[0].operands) == set(b.arguments)
            and ops[1].operands[0] == ops[0].results[0])


def _collapse(v: ir.Value, groups: List[List[int]]) -> ir.Value:
    s = shape_of(v)
    shape = [int(np.prod([s[d] for d in g])) for g in groups]
    return create("tensor.collapse_shape", [tensor_type(shape, element_type(v))], [v],
                  {"reassociation": ir.Attribute.parse(str(groups))}).result


def _permute(v: ir.Value, perm: List[int]) -> ir.Value:
    """``out[i...] = v[i[perm[0]], ...]``-style permutation: out dim ``d`` is
    ``v``'s dim ``perm[d]``."""
    s = shape_of(v)
    rank = len(s)
    inv = [perm.index(d) for d in range(rank)]
    init = empty([s[p] for p in perm], element_type(v))
    return make_generic([v], [init], [projection_map(rank, inv), identity_map(rank)],
                        [PARALLEL] * rank, lambda a: [a[0]]).result


def _stacked_matmul(sa: ir.Value, a_t: bool, sb: ir.Value) -> ir.Value:
    """``sum_t A_t · B_t`` from the stacked ``sa`` (``A_t``, or ``A_tᵀ`` when
    ``a_t``) and ``sb`` (``B_t``): ``[A_0 .. A_T-1] · [B_0; ..; B_T-1]``."""
    if a_t:     # sa: [T, K, M] -> [T*K, M] -> [M, T*K]
        a = _permute(_collapse(sa, [[0, 1], [2]]), [1, 0])
    else:       # sa: [T, M, K] -> [M, T, K] -> [M, T*K]
        a = _collapse(_permute(sa, [1, 0, 2]), [[0], [1, 2]])
    b = _collapse(sb, [[0, 1], [2]])   # [T, K, N] -> [T*K, N]
    m, n = shape_of(a)[0], shape_of(b)[1]
    return linalg.matmul(a, b, outs=[splat_zeros((m, n), element_type(sa))])


def _stacked_sum(su: ir.Value, dims: List[int], shape) -> ir.Value:
    """``sum_t reduce(u_t)`` (``reduce`` keeps ``dims`` of ``u_t``) from the
    stacked ``su``: the reduction with the leading axis summed too."""
    rank = len(shape_of(su))
    return ad.reduce_to(su, projection_map(rank, [1 + d for d in dims]), shape)
