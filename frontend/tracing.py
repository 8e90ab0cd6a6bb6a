"""Tracing Python functions into MLIR ``func.func`` ops on tensors.

A :class:`Trace` owns an MLIR module and the function being built; while it
is active, array operations on :class:`Tracer` values emit ops at its
insertion point, each at the location of the user's source line. The tracer
records; it never differentiates (that is the passes' job).
"""

import os
import sys
import threading
from contextlib import contextmanager
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
from mlir import ir
from mlir.dialects import func as func_d

from .errors import (ConcretizationError, DTypeError, TracerBoolConversionError,
                     TracingError)

_FRONTEND_DIR = os.path.dirname(os.path.abspath(__file__))
_state = threading.local()

DTYPES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64",
          np.dtype(np.bool_): "i1"}


def mlir_element_type(dtype) -> ir.Type:
    name = DTYPES.get(np.dtype(dtype))
    if name is None:
        raise DTypeError(f"unsupported dtype {np.dtype(dtype)}; ferrule compiles "
                         f"float32 and float64 arrays")
    return {"f32": ir.F32Type.get, "f64": ir.F64Type.get,
            "i1": lambda: ir.IntegerType.get_signless(1)}[name]()


def numpy_dtype(t: ir.Type) -> np.dtype:
    s = str(t)
    return np.dtype({"f32": np.float32, "f64": np.float64, "i1": np.bool_}[s])


def user_frame():
    """The innermost stack frame outside the ferrule frontend package."""
    f = sys._getframe(1)
    while f is not None and os.path.abspath(f.f_code.co_filename).startswith(_FRONTEND_DIR + os.sep):
        f = f.f_back
    return f


def user_location() -> ir.Location:
    """An MLIR file location for the user's current source line."""
    f = user_frame()
    if f is None:
        return ir.Location.unknown()
    return ir.Location.file(f.f_code.co_filename, f.f_lineno, 1)


def where_str() -> str:
    f = user_frame()
    return f"{f.f_code.co_filename}:{f.f_lineno}" if f is not None else "<unknown>"


class Trace:
    """One function being traced: the module, the func op, its entry block."""

    def __init__(self, module: ir.Module, name: str, arg_types: Sequence[ir.Type],
                 private: bool = False):
        self.module = module
        self.name = name
        with ir.InsertionPoint(module.body):
            ftype = ir.FunctionType.get(list(arg_types), [])
            self.func = func_d.FuncOp(name, ftype)
            if private:
                self.func.attributes["sym_visibility"] = ir.StringAttr.get("private")
        self.block = self.func.add_entry_block()
        self.ip = ir.InsertionPoint(self.block)
        # Closure capture: arrays of enclosing traces used here become extra
        # trailing arguments; the op that refers to this function passes the
        # outer values for them (see TraceResult.captures).
        self.parent = current_trace()
        self._captured = {}
        self.captures: List["Tracer"] = []

    def encloses(self, other: "Trace") -> bool:
        """True when ``other`` is this trace or one it was started from."""
        t = self
        while t is not None:
            if t is other:
                return True
            t = t.parent
        return False

    def capture(self, x: "Tracer") -> "Tracer":
        """``x`` (from an enclosing trace) as a value of this trace."""
        if x.trace is self:
            return x
        outer = x if x.trace is self.parent else self.parent.capture(x)
        if outer.value not in self._captured:
            arg = self.block.add_argument(outer.value.type, ir.Location.unknown())
            self._captured[outer.value] = Tracer(arg, self)
            self.captures.append(outer)
        return self._captured[outer.value]

    def finish(self, results: Sequence[ir.Value], loc: ir.Location) -> None:
        with self.ip, loc:
            func_d.ReturnOp(list(results))
        ftype = ir.FunctionType.get([a.type for a in self.block.arguments],
                                    [r.type for r in results])
        self.func.attributes["function_type"] = ir.TypeAttr.get(ftype)


def current_trace() -> Optional[Trace]:
    stack = getattr(_state, "stack", None)
    return stack[-1] if stack else None


@contextmanager
def active(trace: Trace):
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    stack.append(trace)
    try:
        yield trace
    finally:
        stack.pop()


def fresh_name(module: ir.Module, base: str) -> str:
    """A symbol name not yet used in ``module``."""
    used = {ir.StringAttr(op.operation.attributes["sym_name"]).value
            for op in module.body.operations
            if "sym_name" in op.operation.attributes}
    base = "".join(c if c.isalnum() or c == "_" else "_" for c in base) or "fn"
    if base not in used:
        return base
    k = 1
    while f"{base}_{k}" in used:
        k += 1
    return f"{base}_{k}"


class Tracer:
    """A symbolic array inside a trace: shape and dtype known, values not.

    Supports numpy operators (``+ - * / ** @``, comparisons, indexing) and the
    methods ``reshape``, ``transpose``/``T``, ``sum``, ``mean``, ``max``,
    ``astype``. Converting it to a concrete value raises
    :class:`~ferrule.errors.ConcretizationError`.
    """

    __array_priority__ = 1000  # numpy defers to our reflected operators

    def __init__(self, value: ir.Value, trace: Trace):
        self.value = value
        self.trace = trace
        t = value.type
        if isinstance(t, ir.RankedTensorType):
            self.shape: Tuple[int, ...] = tuple(t.shape)
            self.dtype = numpy_dtype(t.element_type)
        else:
            raise TracingError(f"internal: tracer over non-tensor value {t}")

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape, dtype=np.int64)))
    T = property(lambda self: _np().transpose(self))

    def __repr__(self):
        return f"Tracer({self.dtype}{list(self.shape)})"

    # -- concretisation is an error -------------------------------------
    def __bool__(self):
        raise TracerBoolConversionError(
            f"{where_str()}: the truth value of a traced array is not known "
            f"while tracing (a data-dependent Python `if`/`while`/`and`?). "
            f"Use ferrule.numpy.where(cond, a, b) to choose between values.")

    def _concrete(self, what):
        raise ConcretizationError(
            f"{where_str()}: {what} needs a concrete value, but this array "
            f"{self.dtype}{list(self.shape)} is traced. Compute it outside the "
            f"jitted function, or mark the argument static.")

    def __float__(self):
        self._concrete("float()")

    def __int__(self):
        self._concrete("int()")

    def __index__(self):
        self._concrete("using an array as an index")

    def __array__(self, *a, **k):
        self._concrete("conversion to a numpy array")

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # -- operators ---------------------------------------------------------
    def __add__(self, o): return _np().add(self, o)
    def __radd__(self, o): return _np().add(o, self)
    def __sub__(self, o): return _np().subtract(self, o)
    def __rsub__(self, o): return _np().subtract(o, self)
    def __mul__(self, o): return _np().multiply(self, o)
    def __rmul__(self, o): return _np().multiply(o, self)
    def __truediv__(self, o): return _np().divide(self, o)
    def __rtruediv__(self, o): return _np().divide(o, self)
    def __pow__(self, o): return _np().power(self, o)
    def __rpow__(self, o): return _np().power(o, self)
    def __neg__(self): return _np().negative(self)
    def __pos__(self): return self
    def __abs__(self): return _np().abs(self)
    def __matmul__(self, o): return _np().matmul(self, o)
    def __rmatmul__(self, o): return _np().matmul(o, self)
    def __lt__(self, o): return _np().less(self, o)
    def __le__(self, o): return _np().less_equal(self, o)
    def __gt__(self, o): return _np().greater(self, o)
    def __ge__(self, o): return _np().greater_equal(self, o)
    def __eq__(self, o): return _np().equal(self, o)
    def __ne__(self, o): return _np().not_equal(self, o)
    __hash__ = object.__hash__

    def __getitem__(self, idx): return _np().getitem(self, idx)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _np().reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _np().transpose(self, axes or None)

    def sum(self, axis=None, keepdims=False): return _np().sum(self, axis, keepdims=keepdims)
    def mean(self, axis=None, keepdims=False): return _np().mean(self, axis, keepdims=keepdims)
    def max(self, axis=None, keepdims=False): return _np().max(self, axis, keepdims=keepdims)
    def astype(self, dtype): return _np().astype(self, dtype)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # np.exp(tracer) etc.: route plain-numpy ufuncs to ferrule.numpy.
        fn = getattr(_np(), ufunc.__name__, None)
        if method != "__call__" or fn is None or kwargs:
            return NotImplemented
        return fn(*inputs)


def _np():
    from . import numpy as fnp
    return fnp


# -- pytrees (frontend/pytree.py) ----------------------------------------------
from .pytree import flatten, unflatten  # noqa: E402,F401  (re-exported)


class TraceResult(tuple):
    """``(func_name, out_struct, out_types)``; ``.captures`` lists the arrays
    of enclosing traces the function closed over, which follow the declared
    arguments in its signature (the caller passes them)."""
    captures: List["Tracer"] = []


def trace_into(module: ir.Module, fn: Callable, arg_tree, name: str,
               private: bool = False) -> TraceResult:
    """Trace ``fn`` called on ``arg_tree`` into a new func in ``module``.

    ``arg_tree`` leaves are ``ir.Type`` (becoming func arguments) or Python
    values passed through unchanged (static). Returns a :class:`TraceResult`.
    """
    leaves, struct = flatten(arg_tree)
    arg_types = [l for l in leaves if isinstance(l, ir.Type)]
    name = fresh_name(module, name)
    tr = Trace(module, name, arg_types, private=private)
    with active(tr):
        it = iter(tr.block.arguments)
        call_leaves = [Tracer(next(it), tr) if isinstance(l, ir.Type) else l
                       for l in leaves]
        args = unflatten(struct, call_leaves)
        with ir.InsertionPoint(tr.block):
            out = fn(*args)
        out_leaves, out_struct = flatten(out)
        with tr.ip, user_location():
            results = [_np().asarray_traced(o, tr).value for o in out_leaves]
        tr.finish(results, ir.Location.unknown())
    res = TraceResult((name, out_struct, [r.type for r in results]))
    res.captures = list(tr.captures)
    return res
