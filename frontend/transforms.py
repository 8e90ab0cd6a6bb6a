"""``grad``, ``value_and_grad``, ``vjp``, ``jvp``: they trace, the passes differentiate.

Inside a trace, each transform traces the function into its own private
``func.func`` and emits one ``ad`` op (``ad.vjp`` / ``ad.jvp``) that refers to
it by symbol; the ``forward`` and ``reverse`` passes lower those ops. Called
with concrete arrays, a transform compiles itself with ``jit`` first, so
``grad(f)(x)`` and ``jit(grad(f))(x)`` are the same program.
"""

import functools
from typing import Sequence, Tuple, Union

import numpy as np
from mlir import ir

from .api import jit
from .core import asarray_traced, astype, constant, trace_into, zeros_value
from .dialect import builders
from .errors import ShapeError, TracingError
from .pytree import flatten, unflatten
from .tracing import Tracer, current_trace, numpy_dtype, user_location, where_str


def _traced_leaves(tree, what):
    leaves, struct = flatten(tree)
    out = []
    for l in leaves:
        t = asarray_traced(l)
        if t.dtype == np.bool_:
            raise TracingError(f"{where_str()}: {what}: cannot differentiate with respect "
                               f"to a bool array")
        out.append(t)
    return out, struct


def _trace_callee(f, primal_tree, name):
    """Trace ``f(*primal_tree)`` into a private func of the current module.

    Returns ``(name, out_struct, out_types, captured)``: ``captured`` are the
    current trace's values the function closed over, passed as extra primals
    (constants of the differentiation: their derivatives are dropped).
    """
    tr = current_trace()
    leaves, struct = flatten(primal_tree)
    types = unflatten(struct, [l.value.type for l in leaves])
    res = trace_into(tr.module, f, tuple(types), name, private=True)
    fname, out_struct, out_types = res
    return fname, out_struct, out_types, [c.value for c in res.captures]


def _emit_vjp(f, primals: Tuple, cotangent_fn, name):
    """Emit ``ad.vjp``; ``cotangent_fn(out_leaves_types) -> list of cotangent values``."""
    tr = current_trace()
    p_leaves, p_struct = _traced_leaves(primals, name)
    fname, out_struct, out_types, captured = _trace_callee(
        f, unflatten(p_struct, p_leaves), f"{_name(f)}")
    cts = cotangent_fn(out_types, out_struct)
    primals = [l.value for l in p_leaves] + captured
    with ir.InsertionPoint(tr.block), user_location():
        op = builders.vjp(fname, primals, cts, out_types + [v.type for v in primals])
    res = [Tracer(r, tr) for r in op.results]
    n = len(out_types)
    return res[:n], out_struct, res[n:n + len(p_leaves)], p_struct


def _name(f):
    return getattr(f, "__name__", "fn").replace("<", "").replace(">", "")


def vjp(f, *primals, has_aux=False):
    """``(outputs, pullback)``; ``pullback(cotangents)`` returns a tuple with one
    cotangent per primal (same structure as the primals)."""
    if current_trace() is None:
        outs = jit(f)(*primals)
        def pullback_eager(cts):
            g = jit(lambda ps, c: vjp(f, *ps)[1](c))
            return g(tuple(primals), cts)
        return outs, pullback_eager
    outs = f(*primals)

    def pullback(cts):
        ct_leaves, _ = flatten(cts)

        def cot(out_types, out_struct):
            if len(ct_leaves) != len(out_types):
                raise ShapeError(f"{where_str()}: pullback got {len(ct_leaves)} cotangents "
                                 f"for {len(out_types)} outputs")
            vals = []
            for c, t in zip(ct_leaves, out_types):
                ct = asarray_traced(c)
                if tuple(ct.shape) != tuple(ir.RankedTensorType(t).shape):
                    raise ShapeError(f"{where_str()}: cotangent of shape {ct.shape} for an "
                                     f"output of type {t}")
                vals.append(astype(ct, numpy_dtype(ir.RankedTensorType(t).element_type)).value)
            return vals
        _, _, in_cts, p_struct = _emit_vjp(f, tuple(primals), cot, "vjp")
        return tuple(unflatten(p_struct, in_cts))
    return outs, pullback


def value_and_grad(f, argnums: Union[int, Sequence[int]] = 0, has_aux=False):
    """``(f(*args), ∂f/∂args[argnums])`` for scalar-valued ``f``."""
    multi = not isinstance(argnums, int)
    nums = tuple(argnums) if multi else (argnums,)

    @functools.wraps(f)
    def vg(*args):
        if current_trace() is None:
            return jit(vg)(*args)
        for k in nums:
            if not -len(args) <= k < len(args):
                raise TracingError(f"{where_str()}: argnums {k} out of range for "
                                   f"{len(args)} arguments")

        def cot(out_types, out_struct):
            t0 = ir.RankedTensorType(out_types[0])
            if tuple(t0.shape) != ():
                raise ShapeError(
                    f"ferrule.grad: output must be a scalar; got shape {tuple(t0.shape)} "
                    f"from {_name(f)}() at {where_str()}. Use vjp for non-scalar outputs.")
            vals = [constant(1.0, (), numpy_dtype(t0.element_type)).value]
            # aux outputs: symbolic zero cotangents
            vals += [zeros_value(t) for t in out_types[1:]]
            return vals

        def g(*a):
            out = f(*a)
            if has_aux:
                if not isinstance(out, tuple) or len(out) != 2:
                    raise TracingError(f"{where_str()}: has_aux=True needs f to return "
                                       f"(value, aux)")
                return out
            return out
        g.__name__ = _name(f)

        outs, out_struct, in_cts, p_struct = _emit_vjp(g, tuple(args), cot, "grad")
        out_tree = unflatten(out_struct, outs)
        grads = unflatten(p_struct, in_cts)
        picked = tuple(grads[k] for k in nums)
        picked = picked if multi else picked[0]
        if has_aux:
            return (out_tree[0], out_tree[1]), picked
        return out_tree, picked
    return vg


def grad(f, argnums: Union[int, Sequence[int]] = 0, has_aux=False):
    """The gradient of scalar-valued ``f`` with respect to ``args[argnums]``."""
    vg = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def g(*args):
        if current_trace() is None:
            return jit(g)(*args)
        (val, grads) = vg(*args)
        if has_aux:
            return grads, val[1]
        return grads
    return g


def jvp(f, primals: Tuple, tangents: Tuple):
    """``(outputs, output tangents)`` of ``f`` at ``primals`` along ``tangents``."""
    if current_trace() is None:
        return jit(lambda p, t: jvp(f, p, t))(tuple(primals), tuple(tangents))
    tr = current_trace()
    p_leaves, p_struct = _traced_leaves(tuple(primals), "jvp")
    t_leaves, t_struct = flatten(tuple(tangents))
    if len(t_leaves) != len(p_leaves):
        raise ShapeError(f"{where_str()}: jvp got {len(t_leaves)} tangents for "
                         f"{len(p_leaves)} primals")
    tv = []
    for p, t in zip(p_leaves, t_leaves):
        t = astype(asarray_traced(t), p.dtype)
        if t.shape != p.shape:
            raise ShapeError(f"{where_str()}: tangent shape {t.shape} does not match "
                             f"primal shape {p.shape}")
        tv.append(t.value)
    fname, out_struct, out_types, captured = _trace_callee(
        f, unflatten(p_struct, p_leaves), _name(f))
    with ir.InsertionPoint(tr.block), user_location():
        zeros = [zeros_value(v.type) for v in captured]
        op = builders.jvp(fname, [l.value for l in p_leaves] + captured, tv + zeros,
                          out_types + out_types)
    res = [Tracer(r, tr) for r in op.results]
    n = len(out_types)
    return unflatten(out_struct, res[:n]), unflatten(out_struct, res[n:])
