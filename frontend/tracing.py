"""Tracing Python functions into MLIR ``func.func`` ops on tensors: the state.

A :class:`Trace` owns an MLIR module and the function being built; while it
is active, array operations on :class:`Tracer` values emit ops at its
insertion point, each at the location of the user's source line. The tracer
records; it never differentiates (that is the passes' job).

This module holds only the state (traces, tracers, source locations,
dtypes: the integer dtypes over MLIR's signless integers, uint32 included,
float16/bfloat16 over float32 (:mod:`ferrule.narrow`), and weakly typed
Python float arguments). It knows no array op: :mod:`ferrule.core` turns Python values into
traced arrays and functions into ``func.func`` (:func:`~ferrule.core.trace_into`),
and :mod:`ferrule.numpy`, the op set, installs the Tracer's operators and
array methods.
"""

import os
import sys
import threading
from contextlib import contextmanager
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mlir import ir
from mlir.dialects import func as func_d

from .errors import (ConcretizationError, DTypeError, TracerBoolConversionError,
                     TracingError, UnsupportedOperationError)
from .narrow import F32, abi_type_name, is_narrow
# FLOAT0 is JAX's float0: the dtype of the cotangent of an integer or bool
# value, a symbolic zero whose arrays hold no data. It is defined with the
# pytree nodes that give such arrays their meaning (no leaves).
from .pytree import FLOAT0  # noqa: F401

_FRONTEND_DIR = os.path.dirname(os.path.abspath(__file__))
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__))
# numpy's r_/c_ objects (np.lib's AxisConcatenator): their __getitem__ calls
# np.array on each item, which reaches Tracer.__array__ (no dispatch hook).
_AXIS_CONCATENATOR = next(c for c in type(np.r_).__mro__ if c.__name__ == "AxisConcatenator")
_state = threading.local()

# uint32 is a frontend notion: in the IR it is a signless i32 (MLIR's
# integer types carry no sign; the ops do), and Tracer.dtype says uint32.
DTYPES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64",
          np.dtype(np.bool_): "i1", np.dtype(np.int32): "i32",
          np.dtype(np.int64): "i64", np.dtype(np.uint32): "i32"}

DTYPE_NAMES = "float32, float64, float16, bfloat16, int32, int64, uint32 and bool"


def mlir_element_type(dtype) -> ir.Type:
    """The element type a value of ``dtype`` has inside a trace: float16
    and bfloat16 are computed in float32 (:mod:`ferrule.narrow`)."""
    if is_narrow(dtype):
        return ir.F32Type.get()
    name = DTYPES.get(np.dtype(dtype))
    if name is None:
        raise DTypeError(f"unsupported dtype {np.dtype(dtype)}; ferrule compiles "
                         f"{DTYPE_NAMES} arrays")
    return {"f32": ir.F32Type.get, "f64": ir.F64Type.get,
            "i1": lambda: ir.IntegerType.get_signless(1),
            "i32": lambda: ir.IntegerType.get_signless(32),
            "i64": lambda: ir.IntegerType.get_signless(64)}[name]()


def abi_element_type(dtype) -> ir.Type:
    """The element type that stores ``dtype`` at a compiled function's
    boundary: ``f16``/``bf16`` for the narrow floats, else
    :func:`mlir_element_type`."""
    if is_narrow(dtype):
        return ir.Type.parse(abi_type_name(dtype))
    return mlir_element_type(dtype)


def numpy_dtype(t: ir.Type) -> np.dtype:
    s = str(t)
    return np.dtype({"f32": np.float32, "f64": np.float64, "i1": np.bool_,
                     "i32": np.int32, "i64": np.int64, "ui32": np.uint32}[s])


class TypedArg:
    """A traced argument's type with the frontend's dtype (uint32 over an
    ``i32`` tensor) and weak typing (a Python float passed to ``jit``)."""

    def __init__(self, type: ir.Type, dtype, weak: bool = False):
        self.type, self.dtype, self.weak = type, np.dtype(dtype), weak


def typed_arg(t: "Tracer"):
    """The argument type of a function traced with ``t`` as its argument."""
    if t.dtype == np.uint32 or is_narrow(t.dtype):
        return TypedArg(t.value.type, t.dtype)
    return t.value.type


# Ops whose tensor result has the dtype of their first tensor operand (data
# movement): a uint32 operand makes a uint32 result.
_SAME_DTYPE_OPS = ("tensor.extract_slice", "tensor.collapse_shape", "tensor.expand_shape",
                   "linalg.generic", "ad.gather", "ad.stop_gradient")


def _inferred_unsigned(value: ir.Value, trace: "Trace") -> bool:
    if not trace.unsigned:
        return False
    if value in trace.unsigned:
        return True
    owner = value.owner
    if isinstance(owner, ir.Block):
        return False
    op = owner.operation if hasattr(owner, "operation") else owner
    if op.name == "tensor.insert_slice":
        return any(v in trace.unsigned for v in list(op.operands)[:2])
    if op.name == "arith.select":
        return any(v in trace.unsigned for v in list(op.operands)[1:3])
    if op.name in _SAME_DTYPE_OPS and len(op.operands):
        return op.operands[0] in trace.unsigned
    return False


def _inferred_narrow(value: ir.Value, trace: "Trace"):
    """The narrow dtype of an f32 ``value`` made without one being said: its
    own, or that of the first narrow operand of the op that made it (data
    movement, reductions, products: the ops that compute elementwise on
    promoted operands say their dtype, and so does ``astype``)."""
    if not trace.narrow:
        return None
    if value in trace.narrow:
        return trace.narrow[value]
    owner = value.owner
    if isinstance(owner, ir.Block):
        return None
    op = owner.operation if hasattr(owner, "operation") else owner
    for v in op.operands:
        if v in trace.narrow:
            return trace.narrow[v]
    return None


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


def _where_outside_numpy(f) -> str:
    """``file:line`` of the innermost frame from ``f`` outwards that is
    neither numpy's nor the ferrule frontend's (numpy's Python code called
    us: the user's line is further out)."""
    while f is not None and os.path.abspath(f.f_code.co_filename).startswith(
            (_NUMPY_DIR + os.sep, _FRONTEND_DIR + os.sep)):
        f = f.f_back
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
        self.unsigned = set()   # the i32 values of this trace that are uint32
        self.narrow = {}        # the f32 values of this trace that are float16/bfloat16
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
            self._captured[outer.value] = Tracer(arg, self, outer.dtype)
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

    Supports numpy operators (``+ - * / ** @``, comparisons, indexing, and
    on integers ``// % & | ^ ~ << >>``) and the methods ``reshape``,
    ``transpose``/``T``, ``sum``, ``mean``, ``max``, ``min``, ``argmax``,
    ``argmin``, ``clip``, ``take``, ``astype``: :mod:`ferrule.numpy` installs
    them (they are its functions).
    Converting it to a concrete value raises
    :class:`~ferrule.errors.ConcretizationError`.
    """

    __array_priority__ = 1000  # numpy defers to our reflected operators

    def __init__(self, value: ir.Value, trace: Trace, dtype=None, weak: bool = False):
        self.value = value
        self.trace = trace
        # weak: a Python float argument of jit, traced as a float64 0-d value
        # that promotes like a Python scalar (x_f32 * lr stays float32).
        self.weak = weak
        t = value.type
        if isinstance(t, ir.RankedTensorType):
            self.shape: Tuple[int, ...] = tuple(t.shape)
            self.dtype = numpy_dtype(t.element_type)
            if dtype is not None and np.dtype(dtype) == np.uint32 and self.dtype == np.int32:
                self.dtype = np.dtype(np.uint32)
            elif dtype is None and self.dtype == np.int32 and _inferred_unsigned(value, trace):
                self.dtype = np.dtype(np.uint32)
            if self.dtype == np.uint32:
                trace.unsigned.add(value)
            if self.dtype == F32:
                label = dtype if is_narrow(dtype) else None
                if dtype is None:
                    label = _inferred_narrow(value, trace)
                if label is not None:
                    self.dtype = np.dtype(label)
                    trace.narrow[value] = self.dtype
        else:
            raise TracingError(f"internal: tracer over non-tensor value {t}")

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape, dtype=np.int64)))
    __hash__ = object.__hash__   # kept although ferrule.numpy installs __eq__

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

    def __array__(self, dtype=None, copy=None):
        """numpy asks for a concrete array: ``np.asarray(x)``, and also
        ``np.int64(x)``/``np.float32(x)`` (numpy's scalar types convert
        through here, with ``dtype``; ``np.float64`` tries ``__float__``
        first and drops its error) and numpy's own ``np.r_[...]``/``np.c_``.
        None of these can return a Tracer (numpy requires an ndarray), so
        each is an error that names what to write instead."""
        caller = sys._getframe(1)          # np.array and the scalar types are C: no frame
        concat = caller.f_locals.get("self") if caller.f_code.co_name == "__getitem__" else None
        if isinstance(concat, _AXIS_CONCATENATOR):
            name = "c_" if isinstance(concat, type(np.c_)) else "r_"
            raise UnsupportedOperationError(
                f"{_where_outside_numpy(caller)}: numpy.{name}[...] of traced arrays is not "
                f"supported: numpy builds it with numpy.array, which needs concrete values "
                f"(numpy has no dispatch hook for {name}); use ferrule.numpy.{name}[...], the "
                f"same syntax for traced arrays")
        if dtype is not None:
            dt = np.dtype(dtype)
            kind = ("an integer or bool result is not differentiable: its cotangent is "
                    "ferrule.float0, a symbolic zero"
                    if dt.kind in "iub" else "a float result is differentiable")
            raise ConcretizationError(
                f"{where_str()}: numpy.{dt.name}(x) (or another conversion to a concrete numpy "
                f"{dt.name} value, such as numpy.asarray(x, dtype={dt.name})) needs a concrete "
                f"value, but this array {self.dtype}{list(self.shape)} is traced; numpy's "
                f"scalar types build concrete numpy values, never traced ones. Inside a "
                f"traced function cast with x.astype(numpy.{dt.name}) ({kind})")
        self._concrete("conversion to a numpy array")

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d array")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))  # ferrule.numpy's getitem


def check_trace(*xs) -> Optional[Trace]:
    """The current trace; a TracingError if a Tracer among ``xs`` belongs to
    another one (one that escaped, or an enclosing one not captured)."""
    tr = current_trace()
    for x in xs:
        if isinstance(x, Tracer) and x.trace is not tr:
            if tr is not None and tr.encloses(x.trace):
                continue  # a closure over an enclosing trace: captured on use
            if tr is None:
                raise TracingError(
                    f"{where_str()}: a traced array {x.dtype}{list(x.shape)} is used "
                    f"outside the function that traced it (it escaped through a "
                    f"global, an attribute or a closure); return it instead")
            raise TracingError(
                f"{where_str()}: a traced array {x.dtype}{list(x.shape)} from another "
                f"trace is used here: an enclosing function's array captured by a "
                f"closure (pass it to the differentiated function as an argument "
                f"instead), or one that escaped an earlier trace through a global")
    return tr
