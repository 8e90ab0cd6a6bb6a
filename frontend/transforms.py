"""``grad``, ``value_and_grad``, ``vjp``, ``jvp``: they trace, the passes differentiate.

Inside a trace, each transform traces the function into its own private
``func.func`` and emits one ``ad`` op (``ad.vjp`` / ``ad.jvp``) that refers to
it by symbol; the ``forward`` and ``reverse`` passes lower those ops. Called
with concrete arrays, a transform compiles itself with ``jit`` first, so
``grad(f)(x)`` and ``jit(grad(f))(x)`` are the same program — compiled once
per signature, as under ``jit``: the compiled transform is kept per function
and transform (:func:`compiled_once`), so calling ``grad(f)(x)`` again, even
through a new ``grad(f)``, traces nothing.
"""

import functools
import weakref
from typing import Callable, Sequence, Tuple, Union

import numpy as np
from mlir import ir

from .api import jit
from .core import asarray_traced, astype, constant, strong, trace_into, zeros_value
from .dialect import builders
from .errors import DTypeError, ShapeError, TracingError
from .pytree import FLOAT0, flatten, is_float0, unflatten
from .narrow import is_float
from .tracing import (Tracer, current_trace, numpy_dtype, typed_arg, user_location,
                      where_str)


def _traced_leaves(tree, what):
    """The array leaves of ``tree`` as Tracers. Integer and bool leaves are
    allowed (they are not differentiated: their cotangent is float0); a
    weakly typed float (a Python float argument) becomes float32."""
    leaves, struct = flatten(tree)
    return [strong(asarray_traced(l)) for l in leaves], struct


def _is_float(dtype) -> bool:
    return is_float(dtype)   # bfloat16 included


def _float0_like(t: Tracer):
    """The cotangent (or tangent) of an integer or bool value: a float0
    array of its shape (JAX's symbolic zero; it holds no data)."""
    return np.zeros(t.shape, FLOAT0)


def _trace_callee(f, primal_tree, name):
    """Trace ``f(*primal_tree)`` into a private func of the current module.

    Returns ``(name, out_struct, out_types, captured, out_dtypes)``:
    ``captured`` are the current trace's values the function closed over,
    passed as extra primals (constants of the differentiation: their
    derivatives are dropped).
    """
    tr = current_trace()
    leaves, struct = flatten(primal_tree)
    types = unflatten(struct, [typed_arg(l) for l in leaves])
    res = trace_into(tr.module, f, tuple(types), name, private=True)
    fname, out_struct, out_types = res
    return fname, out_struct, out_types, [c.value for c in res.captures], list(res.out_dtypes)


def _emit_vjp(f, primals: Tuple, cotangent_fn, name):
    """Emit ``ad.vjp``; ``cotangent_fn(out_types, out_struct, out_dtypes) ->
    list of cotangent values``."""
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
    # A cotangent has its primal's dtype (float16 for a float16 primal, as JAX).
    in_cts = [Tracer(r, tr, p.dtype) if _is_float(p.dtype) else _float0_like(p)
              for r, p in zip(list(op.results)[n:n + len(p_leaves)], p_leaves)]
    return res, out_struct, in_cts, p_struct


def _name(f):
    return getattr(f, "__name__", "fn").replace("<", "").replace(">", "")


# -- called with concrete arrays: compiled once per signature ---------------------

# function -> {transform key: Jitted}. Weak keys, and the Jitted reaches the
# function only through a weak reference (_weak_proxy), so the cache never
# keeps a user's function alive.
_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _weak_proxy(f):
    """Calls ``f`` through a weak reference; named as ``f`` (the traced
    function's name)."""
    ref = weakref.ref(f)

    def call(*args):
        return ref()(*args)
    call.__name__ = call.__qualname__ = getattr(f, "__name__", "fn")
    return call


def compiled_once(f, key: tuple, transform: Callable):
    """``jit(transform(f))``, made once per ``(f, key)``: a later call with the
    same function and transform reuses it (and its per-signature cache)."""
    try:
        per_f = _COMPILED.get(f)
        if per_f is None:
            per_f = _COMPILED[f] = {}
        proxy = _weak_proxy(f)
    except TypeError:   # not weakly referenceable or not hashable: compile afresh
        return jit(transform(f))
    jitted = per_f.get(key)
    if jitted is None:
        jitted = per_f[key] = jit(transform(proxy))
    return jitted


def _argnums_key(argnums):
    return argnums if isinstance(argnums, int) else tuple(argnums)


def _split_aux(out, what: str):
    """``(value, aux)`` from the output of a ``has_aux`` function."""
    if not isinstance(out, tuple) or len(out) != 2:
        raise TracingError(f"{where_str()}: has_aux=True needs f to return "
                           f"(value, aux) in {what}")
    return out


# -- the transforms ------------------------------------------------------------------

def vjp(f, *primals, has_aux=False):
    """``(outputs, pullback)``; ``pullback(cotangents)`` returns a tuple with one
    cotangent per primal (same structure as the primals). With ``has_aux``,
    ``f`` returns ``(outputs, aux)`` and ``vjp`` returns ``(outputs, pullback,
    aux)``: ``aux`` is not differentiated (as ``jax.vjp``)."""
    if current_trace() is None:
        outs = compiled_once(f, ("call",), lambda p: p)(*primals)

        def pullback_eager(cts):
            g = compiled_once(f, ("vjp", has_aux), lambda p: lambda ps, c: vjp(
                p, *ps, has_aux=has_aux)[1](c))
            return g(tuple(primals), cts)
        if has_aux:
            outs, aux = _split_aux(outs, "vjp")
            return outs, pullback_eager, aux
        return outs, pullback_eager
    outs = f(*primals)
    if has_aux:
        outs, aux = _split_aux(outs, "vjp")

        def value(*a):
            return f(*a)[0]
        value.__name__ = _name(f)
    else:
        value = f

    def pullback(cts):
        ct_leaves, _ = flatten(cts, is_leaf=is_float0)

        def cot(out_types, out_struct, out_dtypes):
            if len(ct_leaves) != len(out_types):
                raise ShapeError(f"{where_str()}: pullback got {len(ct_leaves)} cotangents "
                                 f"for {len(out_types)} outputs")
            vals = []
            for k, (c, t) in enumerate(zip(ct_leaves, out_types)):
                dt = out_dtypes[k]
                shape = tuple(ir.RankedTensorType(t).shape)
                if not _is_float(dt) or is_float0(c):
                    _check_float0(c, dt, shape, f"pullback: the cotangent of output {k}",
                                  "cotangent")
                    vals.append(zeros_value(t))
                    continue
                ct = asarray_traced(c)
                if tuple(ct.shape) != tuple(ir.RankedTensorType(t).shape):
                    raise ShapeError(f"{where_str()}: cotangent of shape {ct.shape} for an "
                                     f"output of type {t}")
                vals.append(astype(ct, numpy_dtype(ir.RankedTensorType(t).element_type)).value)
            return vals
        _, _, in_cts, p_struct = _emit_vjp(value, tuple(primals), cot, "vjp")
        return tuple(unflatten(p_struct, in_cts))
    return (outs, pullback, aux) if has_aux else (outs, pullback)


def check_argnums(f, args, nums, what: str) -> None:
    """Each of ``nums`` indexes ``args`` and holds only float arrays: the
    transform ``what`` (``grad``, ``jacfwd``, ...) differentiates with respect
    to them. Raises ``TracingError`` (out of range) or ``DTypeError``
    (integers and bools are not differentiable), naming the user's line."""
    for k in nums:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
            raise TracingError(f"{where_str()}: argnums must be an int or a tuple of ints; "
                               f"got {k!r}")
        if not -len(args) <= k < len(args):
            raise TracingError(f"{where_str()}: argnums {k} out of range for "
                               f"{len(args)} arguments")
        for leaf in flatten(args[k])[0]:
            dt = np.dtype(getattr(leaf, "dtype", np.float32))
            if isinstance(leaf, (bool, int)) and not isinstance(leaf, float):
                dt = np.dtype(np.int64) if not isinstance(leaf, bool) else np.dtype(np.bool_)
            if not _is_float(dt):
                raise DTypeError(
                    f"{where_str()}: {what} of {_name(f)} with respect to argument {k}, "
                    f"which holds {'an' if dt.name.startswith('int') else 'a'} {dt} array: "
                    f"{what} needs float arguments (integers "
                    f"and bools are not differentiable). Leave it out of argnums, or use "
                    f"vjp, whose pullback gives float0 zeros for it")


def value_and_grad(f, argnums: Union[int, Sequence[int]] = 0, has_aux=False):
    """``(f(*args), ∂f/∂args[argnums])`` for scalar-valued ``f``; with
    ``has_aux``, ``f`` returns ``(value, aux)`` and the first result is that
    pair."""
    multi = not isinstance(argnums, int)
    nums = tuple(argnums) if multi else (argnums,)

    @functools.wraps(f)
    def vg(*args):
        if current_trace() is None:
            return compiled_once(f, ("value_and_grad", _argnums_key(argnums), has_aux),
                             lambda p: value_and_grad(p, argnums, has_aux))(*args)
        check_argnums(f, args, nums, "grad")

        def cot(out_types, out_struct, out_dtypes):
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
            return _split_aux(out, "grad") if has_aux else out
        g.__name__ = _name(f)

        outs, out_struct, in_cts, p_struct = _emit_vjp(g, tuple(args), cot, "grad")
        grads = unflatten(p_struct, in_cts)
        picked = tuple(grads[k] for k in nums)
        return unflatten(out_struct, outs), (picked if multi else picked[0])
    return vg


def grad(f, argnums: Union[int, Sequence[int]] = 0, has_aux=False):
    """The gradient of scalar-valued ``f`` with respect to ``args[argnums]``
    (with ``has_aux``: ``(gradient, aux)``)."""
    vg = value_and_grad(f, argnums, has_aux)

    @functools.wraps(f)
    def g(*args):
        if current_trace() is None:
            return compiled_once(f, ("grad", _argnums_key(argnums), has_aux),
                             lambda p: grad(p, argnums, has_aux))(*args)
        (val, grads) = vg(*args)
        if has_aux:
            return grads, val[1]
        return grads
    return g


def jvp(f, primals: Tuple, tangents: Tuple):
    """``(outputs, output tangents)`` of ``f`` at ``primals`` along ``tangents``."""
    if current_trace() is None:
        return compiled_once(f, ("jvp",), lambda p: lambda ps, ts: jvp(p, ps, ts))(
            tuple(primals), tuple(tangents))
    tr = current_trace()
    p_leaves, p_struct = _traced_leaves(tuple(primals), "jvp")
    t_leaves, t_struct = flatten(tuple(tangents), is_leaf=is_float0)
    if len(t_leaves) != len(p_leaves):
        raise ShapeError(f"{where_str()}: jvp got {len(t_leaves)} tangents for "
                         f"{len(p_leaves)} primals")
    tv = []
    for k, (p, t) in enumerate(zip(p_leaves, t_leaves)):
        if not _is_float(p.dtype) or is_float0(t):
            _check_float0(t, p.dtype, p.shape, f"jvp: the tangent of primal {k}", "tangent")
            tv.append(zeros_value(p.value.type))
            continue
        t = astype(asarray_traced(t), p.dtype)
        if t.shape != p.shape:
            raise ShapeError(f"{where_str()}: tangent shape {t.shape} does not match "
                             f"primal shape {p.shape}")
        tv.append(t.value)
    fname, out_struct, out_types, captured, out_dtypes = _trace_callee(
        f, unflatten(p_struct, p_leaves), _name(f))
    with ir.InsertionPoint(tr.block), user_location():
        zeros = [zeros_value(v.type) for v in captured]
        op = builders.jvp(fname, [l.value for l in p_leaves] + captured, tv + zeros,
                          out_types + out_types)
    res = [Tracer(r, tr, d) for r, d in zip(op.results, out_dtypes + out_dtypes)]
    n = len(out_types)
    # Tangents of integer/bool outputs: float0 arrays (symbolic zeros).
    touts = [t if _is_float(t.dtype) else _float0_like(t) for t in res[n:]]
    return unflatten(out_struct, res[:n]), unflatten(out_struct, touts)


def _check_float0(c, dtype, shape, what: str, kind: str) -> None:
    """``c`` (the ``kind``, "cotangent" of an output or "tangent" of a
    primal, of a ``dtype`` value of ``shape``) must be a float0 array of that
    shape when ``dtype`` is an integer or bool, and not one for a float."""
    if _is_float(dtype) or not is_float0(c):
        got = "float0" if is_float0(c) else str(getattr(c, "dtype", type(c).__name__))
        if _is_float(dtype):
            need = f"a {dtype} array" if kind == "cotangent" else "a float array"
        elif kind == "cotangent":
            need = ("a float0 array (ferrule.float0: integer and bool outputs are not "
                    "differentiable)")
        else:
            need = "a float0 array (ferrule.float0): integers and bools are not differentiable"
        raise DTypeError(f"{where_str()}: {what} ({np.dtype(dtype)}{list(shape)}) must be "
                         f"{need}, got {got}")
    if tuple(c.shape) != tuple(shape):
        where_to = (f"for an output of shape {tuple(shape)}" if kind == "cotangent"
                    else f"does not match primal shape {tuple(shape)}")
        raise ShapeError(f"{where_str()}: float0 {kind} of shape {tuple(c.shape)} {where_to}")


def linearize(f, *primals):
    """``(f(*primals), f_jvp)`` with ``f_jvp(*tangents)`` the tangent map of
    ``f`` at ``primals`` (``jvp(f, primals, tangents)[1]``), as ``jax.linearize``.

    ``f_jvp`` is not a separately stored linear program: each call is one
    compiled ``ad.jvp`` (forward mode fuses primal and tangent code, so the
    primal is recomputed with the tangents, once per call; no residuals are
    kept between calls). Called outside ``jit``, ``f_jvp`` is compiled once
    per signature and the primals are copied (later changes to the caller's
    arrays do not change it); inside a traced function it emits ``ad.jvp``
    at each call."""
    if current_trace() is None:
        out = compiled_once(f, ("call",), lambda p: p)(*primals)
        leaves, struct = flatten(tuple(primals))
        fixed = unflatten(struct, [np.array(l) if isinstance(l, np.ndarray) else l
                                   for l in leaves])
        tangent_map = compiled_once(f, ("linearize",),
                                    lambda p: lambda ps, ts: jvp(p, ps, ts)[1])

        def f_jvp_eager(*tangents):
            return tangent_map(fixed, tuple(tangents))
        return out, f_jvp_eager
    out = f(*primals)

    def f_jvp(*tangents):
        return jvp(f, tuple(primals), tuple(tangents))[1]
    return out, f_jvp
