"""``ferrule.numpy``: the traced numpy-style op set.

Inside a trace (``jit``, ``grad``, ``vjp``, ``jvp``), each function emits MLIR
on tensors: elementwise ``arith``/``math`` ops, ``linalg`` for broadcasts,
transposes, reductions and matmul, ``tensor`` ops for reshapes and slices.
Outside a trace, with concrete arrays, each function is plain numpy.
Semantics (broadcasting, ``axis``/``keepdims``, dtype promotion with weakly
typed Python scalars) follow numpy 2, except that the default dtype is
float32 (as in JAX): constructors without ``dtype`` and ops whose operands
are only Python scalars and bools give float32, and Python int constants
become float32. Integer arrays (int32, int64, uint32) keep their dtype;
an integer array with a float gives the float's dtype (as JAX; see
:mod:`ferrule.dtypes` and docs/language-model-ops.md).

This module gathers the op modules (:mod:`ferrule.elementwise`,
:mod:`ferrule.layout`, :mod:`ferrule.indexing`, :mod:`ferrule.integers`,
:mod:`ferrule.gather`, and the structural ops of :mod:`ferrule.core`) and installs the :class:`~ferrule.tracing.Tracer`'s
operators and array methods: ``x + y`` on tracers is :func:`add`, as JAX's
op set installs the operators of its tracers. A new op goes into one of the
op modules and is re-exported here.
"""

import numpy as _onp

from .core import astype, broadcast_to, concatenate, stack
from .elementwise import (abs, absolute, add, arange, array, asarray, clip, cos, divide, equal,
                          exp, expm1, full, full_like, greater, greater_equal, less, less_equal,
                          log, log1p, maximum, minimum, multiply, negative, not_equal, ones,
                          ones_like, power, sin, sqrt, square, subtract, tanh, true_divide,
                          where, zeros, zeros_like)
from .gather import take, take_along_axis
from .indexing import getitem, split
from .integers import (bitwise_and, bitwise_not, bitwise_or, bitwise_xor, floor_divide, invert,
                       left_shift, mod, remainder, right_shift)
from .layout import (amax, amin, argmax, argmin, dot, matmul, max, mean, min, reshape, sum,
                     swapaxes, transpose)
from .tracing import Tracer

float32, float64, bool_ = _onp.float32, _onp.float64, _onp.bool_
int32, int64, uint32 = _onp.int32, _onp.int64, _onp.uint32
ndarray = _onp.ndarray
pi, e, inf, nan = _onp.pi, _onp.e, _onp.inf, _onp.nan

__all__ = [
    "float32", "float64", "bool_", "int32", "int64", "uint32", "ndarray", "pi", "e", "inf", "nan",
    "add", "subtract", "multiply", "divide", "true_divide", "maximum", "minimum",
    "negative", "exp", "log", "log1p", "expm1", "tanh", "sin", "cos", "sqrt", "abs",
    "absolute", "square", "power", "less", "less_equal", "greater", "greater_equal",
    "equal", "not_equal", "where", "astype", "zeros", "ones", "full", "zeros_like",
    "ones_like", "full_like", "asarray", "array", "broadcast_to", "reshape", "transpose",
    "swapaxes", "sum", "max", "amax", "mean", "matmul", "dot", "getitem", "concatenate",
    "stack", "split",
    # integers, gathers, argmax (docs/language-model-ops.md)
    "floor_divide", "remainder", "mod", "bitwise_and", "bitwise_or", "bitwise_xor", "invert",
    "bitwise_not", "left_shift", "right_shift", "arange", "argmax", "argmin", "min", "amin",
    "clip", "take", "take_along_axis",
]


# -- the Tracer's operators and methods ---------------------------------------------

def _method(fn):
    return lambda self, other: fn(self, other)


def _reflected(fn):
    return lambda self, other: fn(other, self)


_ARITHMETIC = {"add": add, "sub": subtract, "mul": multiply, "truediv": divide,
               "pow": power, "matmul": matmul,
               # integers (and bools, for & | ^)
               "floordiv": floor_divide, "mod": remainder, "and": bitwise_and,
               "or": bitwise_or, "xor": bitwise_xor, "lshift": left_shift,
               "rshift": right_shift}
_COMPARISONS = {"lt": less, "le": less_equal, "gt": greater, "ge": greater_equal,
                "eq": equal, "ne": not_equal}


def _shape_args(args):
    """``x.reshape(2, 3)`` and ``x.reshape((2, 3))`` alike."""
    return tuple(args[0]) if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    # np.exp(tracer) etc.: route plain-numpy ufuncs to ferrule.numpy.
    fn = globals().get(ufunc.__name__) if ufunc.__name__ in __all__ else None
    if method != "__call__" or fn is None or kwargs:
        return NotImplemented
    return fn(*inputs)


def _install_tracer_methods(cls) -> None:
    for name, fn in _ARITHMETIC.items():
        setattr(cls, f"__{name}__", _method(fn))
        setattr(cls, f"__r{name}__", _reflected(fn))
    for name, fn in _COMPARISONS.items():
        setattr(cls, f"__{name}__", _method(fn))
    cls.__neg__ = lambda self: negative(self)
    cls.__pos__ = lambda self: self
    cls.__abs__ = lambda self: abs(self)
    cls.__invert__ = lambda self: invert(self)
    cls.__getitem__ = lambda self, idx: getitem(self, idx)
    cls.__array_ufunc__ = _array_ufunc
    cls.T = property(lambda self: transpose(self))
    cls.reshape = lambda self, *shape: reshape(self, _shape_args(shape))
    cls.transpose = lambda self, *axes: transpose(self, _shape_args(axes) or None)
    cls.sum = lambda self, axis=None, keepdims=False: sum(self, axis, keepdims=keepdims)
    cls.mean = lambda self, axis=None, keepdims=False: mean(self, axis, keepdims=keepdims)
    cls.max = lambda self, axis=None, keepdims=False: max(self, axis, keepdims=keepdims)
    cls.min = lambda self, axis=None, keepdims=False: min(self, axis, keepdims=keepdims)
    cls.argmax = lambda self, axis=None, keepdims=False: argmax(self, axis, keepdims=keepdims)
    cls.argmin = lambda self, axis=None, keepdims=False: argmin(self, axis, keepdims=keepdims)
    cls.clip = lambda self, lo=None, hi=None: clip(self, lo, hi)
    cls.take = lambda self, indices, axis=None: take(self, indices, axis)
    cls.astype = lambda self, dtype: astype(self, dtype)


_install_tracer_methods(Tracer)
