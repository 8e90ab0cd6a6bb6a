"""``ferrule.pure_callback``: arbitrary Python (numpy, scipy) inside compiled code.

``pure_callback(fn, result_shape_dtypes, *args)`` — as ``jax.pure_callback``:
inside a trace it emits one ``ad.pure_callback`` op; the compiled CPU code
calls ``fn`` on numpy arrays without leaving the compiled function
(runtime/cpu/callbacks.py has the mechanism, its GIL handling and the cost).
``result_shape_dtypes`` describes the results: a :class:`ferrule.ShapeDtype`
or a pytree (tuple, list, dict...) of them, and the call returns arrays of
that structure. Outside a trace, ``fn`` simply runs.

A callback must be *pure*: the same arguments give the same results, with
no side effect the program relies on (an unused call may be dropped, two
equal calls merged). Its arguments are read-only numpy arrays valid during
the call only (copy one to keep it). It is not differentiable by itself:
``grad``/``jvp`` through it is an error naming it. To differentiate, wrap
the function that calls it in a ``@rules.primitive`` with an rrule or an
frule (docs/rules.md). Only the CPU target runs callbacks.
"""

from typing import Callable

import numpy as np
from mlir import ir

from .core import asarray_traced
from .dialect import builders
from .errors import DTypeError, TracingError
from .pytree import flatten, unflatten
from .runtime.cpu import callbacks
from .runtime.signature import TensorSpec
from .tracing import (Tracer, current_trace, mlir_element_type, user_location, where_str)

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _name(fn) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__


def _result_specs(fn, result_shape_dtypes):
    leaves, struct = flatten(result_shape_dtypes)
    specs = []
    for l in leaves:   # a ferrule.ShapeDtype, or anything with a shape and a dtype
        if not (hasattr(l, "shape") and hasattr(l, "dtype")):
            raise TracingError(f"{where_str()}: pure_callback {_name(fn)!r}: describe each "
                               f"result by a ferrule.ShapeDtype(shape, dtype); got "
                               f"{type(l).__name__}")
        dtype = np.dtype(l.dtype)
        if dtype not in _DTYPES:
            raise DTypeError(f"{where_str()}: pure_callback {_name(fn)!r}: results must be "
                             f"float32 or float64 arrays; got {dtype}")
        specs.append(TensorSpec(tuple(int(s) for s in l.shape), dtype))
    if not specs:
        raise TracingError(f"{where_str()}: pure_callback {_name(fn)!r} declares no result; "
                           f"a pure callback without results does nothing")
    return specs, struct


def pure_callback(fn: Callable, result_shape_dtypes, *args):
    """Call ``fn(*args)`` (numpy arrays in, arrays of ``result_shape_dtypes``
    out) from compiled code; see the module docstring."""
    if not callable(fn):
        raise TypeError(f"pure_callback: {fn!r} is not callable")
    specs, struct = _result_specs(fn, result_shape_dtypes)
    name = _name(fn)
    if current_trace() is None:
        return _run_now(fn, name, specs, struct, args)
    tr = current_trace()
    xs = []
    for k, a in enumerate(args):
        if isinstance(a, (list, tuple, dict)):
            raise TracingError(f"{where_str()}: pure_callback {name!r}: pass arrays as separate "
                               f"arguments, not a {type(a).__name__}")
        x = asarray_traced(a)
        if x.dtype not in _DTYPES:
            raise DTypeError(f"{where_str()}: pure_callback {name!r}: argument {k + 1} has "
                             f"dtype {x.dtype}; callbacks take float32 or float64 arrays")
        xs.append(x)
    number = callbacks.register(fn, [TensorSpec(tuple(x.shape), np.dtype(x.dtype)) for x in xs],
                                specs, name, where_str(),
                                call=lambda *a: flatten(fn(*a))[0])
    types = [ir.RankedTensorType.get(list(s.shape), mlir_element_type(s.dtype)) for s in specs]
    with ir.InsertionPoint(tr.block), user_location():
        op = builders.pure_callback(number, name, [x.value for x in xs], types)
    return unflatten(struct, [Tracer(r, tr) for r in op.results])


def _run_now(fn, name, specs, struct, args):
    """Outside a trace: run ``fn`` and check its results as compiled code would."""
    try:
        from .eager.tape import Var
    except ImportError:      # pragma: no cover
        Var = ()
    if any(isinstance(a, Var) for a in args):
        raise TracingError(f"{where_str()}: pure_callback {name!r} is not differentiable: "
                           f"ferrule.eager cannot see into host code. Wrap the function that "
                           f"calls it in a @rules.primitive with an rrule")
    arrays = [np.asarray(a) for a in args]
    out = callbacks.check_results(name, flatten(fn(*arrays))[0], specs)
    return unflatten(struct, out)


def callbacks_in(module_text: str, ctx: ir.Context):
    """``[(name, file:line)]`` of the ``ad.pure_callback`` ops in a module."""
    from .dialect.ir_utils import loc_where
    if '"ad.pure_callback"' not in module_text:
        return []
    found = []
    with ctx:
        module = ir.Module.parse(module_text)
        module.operation.walk(lambda o: (found.append(
            (ir.StringAttr(o.operation.attributes["name"]).value, loc_where(o.operation.location)))
            if o.operation.name == "ad.pure_callback" else None, ir.WalkResult.ADVANCE)[1])
    return found
