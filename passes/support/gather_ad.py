"""Derivative rules of ``ad.gather``, ``ad.scatter_add`` and
``ad.stop_gradient``, for the forward and reverse passes.

* ``gather(table, idx)`` is linear in ``table``: its tangent is the gather
  of the table's tangent; its pullback scatter-adds the cotangent into
  zeros of the table's shape. The indices are integers: no derivative.
* ``scatter_add(dest, idx, updates)`` is linear in ``(dest, updates)``: its
  tangent is the scatter-add of the tangents; its pullback gives ``dest``
  the cotangent and ``updates`` the gather of it. Both rules emit only
  ``ad.gather`` / ``ad.scatter_add`` (and zeros), which have rules: the
  derivative can be differentiated again (second order).
* ``stop_gradient(x)``: no tangent, no cotangent.
"""

from mlir import ir

from . import ad_common as ad
from ...dialect import builders

OPS = ("ad.gather", "ad.scatter_add", "ad.stop_gradient")


def _axis(op: ir.Operation) -> int:
    return ad.int_attr(op, "axis")


def gather(table: ir.Value, idx: ir.Value, axis: int) -> ir.Value:
    return builders.gather(table, idx, axis).result


def scatter_add(dest: ir.Value, idx: ir.Value, updates: ir.Value, axis: int) -> ir.Value:
    return builders.scatter_add(dest, idx, updates, axis).result


def jvp(op: ir.Operation, env, tan, K: int) -> None:
    """Forward rule: ``tan[v][d]`` (None: a zero tangent) of the result."""
    new = ad.clone_into(op, env)
    res = op.results[0]
    if op.name == "ad.stop_gradient":
        tan[res] = [None] * K
        return
    ins = list(op.operands)
    idx = env[ins[1]]
    axis = _axis(op)
    out = []
    for d in range(K):
        if op.name == "ad.gather":
            t = tan.get(ins[0], [None] * K)[d]
            out.append(None if t is None else gather(t, idx, axis))
            continue
        td, tu = tan.get(ins[0], [None] * K)[d], tan.get(ins[2], [None] * K)[d]
        if tu is None:
            out.append(td)     # scattering zeros: the identity on dest
        else:
            out.append(scatter_add(td if td is not None else ad.zeros_like(new.results[0]),
                                   idx, tu, axis))
    tan[res] = out


def backward(op: ir.Operation, env, cts, active) -> None:
    """Reverse rule: add the operands' cotangents to ``cts``."""
    if op.name == "ad.stop_gradient":
        return
    g = cts.get(op.results[0], env[op.results[0]])
    if g is None:
        return
    ins = list(op.operands)
    idx = env[ins[1]]
    axis = _axis(op)
    if op.name == "ad.gather":
        if ins[0] in active:
            cts.add(ins[0], scatter_add(ad.zeros_like(env[ins[0]]), idx, g, axis))
        return
    if ins[0] in active:
        cts.add(ins[0], g)
    if ins[2] in active:
        cts.add(ins[2], gather(g, idx, axis))
