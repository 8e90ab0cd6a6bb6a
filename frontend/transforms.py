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

from . import numpy as fnp
from .api import jit
from .dialect import builders
from .errors import DTypeError, ShapeError, TracingError
from .tracing import (FLOAT0, Tracer, current_trace, flatten, numpy_dtype, strong,
                      trace_into, typed_arg, unflatten, user_location, where_str)


def _traced_leaves(tree, what):
    """The array leaves of ``tree`` as Tracers. Integer and bool leaves are
    allowed (they are not differentiated: their cotangent is float0); a
    weakly typed float (a Python float argument) becomes float32."""
    leaves, struct = flatten(tree)
    return [strong(fnp.asarray_traced(l)) for l in leaves], struct


def _is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


def _float0_like(t: Tracer):
    """The cotangent (or tangent) of an integer or bool value: a float0
    array of its shape (JAX's symbolic zero; it holds no data)."""
    return np.zeros(t.shape, FLOAT0)


class _ZeroCotangent:
    """A float0 array given as a cotangent (a leaf while flattening)."""

    def __init__(self, shape):
        self.shape = tuple(shape)


def _float0_leaves(tree):
    """``tree`` with each float0 array replaced by a :class:`_ZeroCotangent`
    leaf (flatten drops float0 arrays, which hold no data)."""
    if isinstance(tree, np.ndarray) and tree.dtype == FLOAT0:
        return _ZeroCotangent(tree.shape)
    if isinstance(tree, (tuple, list)):
        return type(tree)(_float0_leaves(t) for t in tree)
    return tree


def _trace_callee(f, primal_tree, name):
    """Trace ``f(*primal_tree)`` into a private func of the current module.

    Returns ``(name, out_struct, out_types, captured, out_dtypes)``: ``captured`` are the
    current trace's values the function closed over, passed as extra primals
    (constants of the differentiation: their derivatives are dropped).
    """
    tr = current_trace()
    leaves, struct = flatten(primal_tree)
    types = unflatten(struct, [typed_arg(l) for l in leaves])
    res = trace_into(tr.module, f, tuple(types), name, private=True)
    fname, out_struct, out_types = res
    return fname, out_struct, out_types, [c.value for c in res.captures], list(res.out_dtypes)


def _emit_vjp(f, primals: Tuple, cotangent_fn, name):
    """Emit ``ad.vjp``; ``cotangent_fn(out_leaves_types) -> list of cotangent values``."""
    tr = current_trace()
    p_leaves, p_struct = _traced_leaves(primals, name)
    fname, out_struct, out_types, captured, out_dtypes = _trace_callee(
        f, unflatten(p_struct, p_leaves), f"{_name(f)}")
    cts = cotangent_fn(out_types, out_struct, out_dtypes)
    primals = [l.value for l in p_leaves] + captured
    with ir.InsertionPoint(tr.block), user_location():
        op = builders.vjp(fname, primals, cts, out_types + [v.type for v in primals])
    n = len(out_types)
    res = [Tracer(r, tr, d) for r, d in zip(op.results, out_dtypes)]
    # Cotangents of integer/bool primals are symbolic zeros: float0 arrays.
    in_cts = [Tracer(r, tr) if _is_float(p.dtype) else _float0_like(p)
              for r, p in zip(list(op.results)[n:n + len(p_leaves)], p_leaves)]
    return res, out_struct, in_cts, p_struct


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
        ct_leaves, _ = flatten(_float0_leaves(cts))

        def cot(out_types, out_struct, out_dtypes):
            if len(ct_leaves) != len(out_types):
                raise ShapeError(f"{where_str()}: pullback got {len(ct_leaves)} cotangents "
                                 f"for {len(out_types)} outputs")
            vals = []
            for k, (c, t) in enumerate(zip(ct_leaves, out_types)):
                dt = out_dtypes[k]
                shape = tuple(ir.RankedTensorType(t).shape)
                if not _is_float(dt) or isinstance(c, _ZeroCotangent):
                    got = "float0" if isinstance(c, _ZeroCotangent) else \
                        str(getattr(c, "dtype", type(c).__name__))
                    if _is_float(dt) or not isinstance(c, _ZeroCotangent):
                        raise DTypeError(
                            f"{where_str()}: pullback: the cotangent of output {k} "
                            f"({dt}{list(shape)}) must be "
                            + ("a float0 array (ferrule.float0: integer and bool outputs "
                               "are not differentiable)" if not _is_float(dt)
                               else f"a {dt} array") + f", got {got}")
                    if c.shape != shape:
                        raise ShapeError(f"{where_str()}: float0 cotangent of shape {c.shape} "
                                         f"for an output of shape {shape}")
                    vals.append(fnp.zeros_value(t))
                    continue
                ct = fnp.asarray_traced(c)
                if tuple(ct.shape) != tuple(ir.RankedTensorType(t).shape):
                    raise ShapeError(f"{where_str()}: cotangent of shape {ct.shape} for an "
                                     f"output of type {t}")
                vals.append(fnp.astype(ct, numpy_dtype(ir.RankedTensorType(t).element_type)).value)
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
            for leaf in flatten(args[k])[0]:
                dt = np.dtype(getattr(leaf, "dtype", np.float32))
                if isinstance(leaf, (bool, int)) and not isinstance(leaf, float):
                    dt = np.dtype(np.int64) if not isinstance(leaf, bool) else np.dtype(np.bool_)
                if not _is_float(dt):
                    raise DTypeError(
                        f"{where_str()}: grad of {_name(f)} with respect to argument {k}, "
                        f"which holds a {dt} array: grad needs float arguments (integers "
                        f"and bools are not differentiable). Leave it out of argnums, or use "
                        f"vjp, whose pullback gives float0 zeros for it")

        def cot(out_types, out_struct, out_dtypes):
            t0 = ir.RankedTensorType(out_types[0])
            if tuple(t0.shape) != ():
                raise ShapeError(
                    f"ferrule.grad: output must be a scalar; got shape {tuple(t0.shape)} "
                    f"from {_name(f)}() at {where_str()}. Use vjp for non-scalar outputs.")
            vals = [fnp.constant(1.0, (), numpy_dtype(t0.element_type)).value]
            # aux outputs: symbolic zero cotangents
            vals += [fnp.zeros_value(t) for t in out_types[1:]]
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
    t_leaves, t_struct = flatten(_float0_leaves(tuple(tangents)))
    if len(t_leaves) != len(p_leaves):
        raise ShapeError(f"{where_str()}: jvp got {len(t_leaves)} tangents for "
                         f"{len(p_leaves)} primals")
    tv = []
    for k, (p, t) in enumerate(zip(p_leaves, t_leaves)):
        if not _is_float(p.dtype) or isinstance(t, _ZeroCotangent):
            if _is_float(p.dtype) or not isinstance(t, _ZeroCotangent):
                raise DTypeError(
                    f"{where_str()}: jvp: the tangent of primal {k} ({p.dtype}{list(p.shape)}) "
                    f"must be " + ("a float0 array (ferrule.float0): integers and bools are "
                                   "not differentiable" if not _is_float(p.dtype)
                                   else f"a float array") + ", got "
                    + ("float0" if isinstance(t, _ZeroCotangent)
                       else str(getattr(t, "dtype", type(t).__name__))))
            if t.shape != p.shape:
                raise ShapeError(f"{where_str()}: float0 tangent of shape {t.shape} does not "
                                 f"match primal shape {p.shape}")
            tv.append(fnp.zeros_value(p.value.type))
            continue
        t = fnp.astype(fnp.asarray_traced(t), p.dtype)
        if t.shape != p.shape:
            raise ShapeError(f"{where_str()}: tangent shape {t.shape} does not match "
                             f"primal shape {p.shape}")
        tv.append(t.value)
    fname, out_struct, out_types, captured, out_dtypes = _trace_callee(
        f, unflatten(p_struct, p_leaves), _name(f))
    with ir.InsertionPoint(tr.block), user_location():
        zeros = [fnp.zeros_value(v.type) for v in captured]
        op = builders.jvp(fname, [l.value for l in p_leaves] + captured, tv + zeros,
                          out_types + out_types)
    res = [Tracer(r, tr, d) for r, d in zip(op.results, out_dtypes + out_dtypes)]
    n = len(out_types)
    # Tangents of integer/bool outputs: float0 arrays (symbolic zeros).
    touts = [t if _is_float(t.dtype) else _float0_like(t) for t in res[n:]]
    return unflatten(out_struct, res[:n]), unflatten(out_struct, touts)
