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
:mod:`ferrule.gather`, :mod:`ferrule.mathops`, :mod:`ferrule.reductions`,
:mod:`ferrule.shapes`, :mod:`ferrule.contractions`, and the structural ops of :mod:`ferrule.core`) and
installs the :class:`~ferrule.tracing.Tracer`'s
operators and array methods: ``x + y`` on tracers is :func:`add`, as JAX's
op set installs the operators of its tracers. A new op goes into one of the
op modules and is re-exported here.
"""

import inspect

import numpy as _onp

from .core import astype, broadcast_to, concatenate, stack
from .elementwise import (abs, absolute, add, arange, array, asarray, clip, cos, divide, equal,
                          exp, expm1, full, full_like, greater, greater_equal, less, less_equal,
                          log, log1p, maximum, minimum, multiply, negative, not_equal, ones,
                          ones_like, power, sin, sqrt, square, subtract, tanh, true_divide,
                          where, zeros, zeros_like)
from .gather import take, take_along_axis
from .at import at as _at
from .contractions import cross, einsum, inner, kron, outer, tensordot
from .indexing import getitem, split
from .sorting import argsort, sort
from .shapes import (atleast_1d, atleast_2d, atleast_3d, column_stack, diag, diagonal, dstack,
                     expand_dims, flip, hstack, moveaxis, ravel, repeat, roll, squeeze, tile,
                     trace, tril, triu, vstack, pad, r_, c_)
from .integers import (bitwise_and, bitwise_not, bitwise_or, bitwise_xor, floor_divide, invert,
                       left_shift, mod, remainder, right_shift)
from .mathops import (arccos, arccosh, arcsin, arcsinh, arctan, arctan2, arctanh, around, ceil,
                      cosh, deg2rad, degrees, exp2, floor, fmax, fmin, fmod, hypot, log2, log10,
                      logaddexp, logaddexp2, rad2deg, radians, reciprocal, rint, round, sign,
                      sinc, sinh, tan, trunc)
from .reductions import all, any, cumprod, cumsum, prod, std, var
from .layout import (amax, amin, argmax, argmin, dot, matmul, max, mean, min, reshape, sum,
                     swapaxes, transpose)
from .errors import UnsupportedAttributeError, UnsupportedOperationError
from .tracing import Tracer, where_str

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
    # contractions (ferrule.contractions)
    "tensordot", "inner", "outer", "kron", "cross", "einsum",
    # shape and construction (ferrule.shapes)
    "ravel", "squeeze", "expand_dims", "moveaxis", "atleast_1d", "atleast_2d", "atleast_3d",
    "vstack", "hstack", "dstack", "column_stack", "flip", "roll", "tile", "repeat", "tril",
    "triu", "diagonal", "trace", "diag", "pad", "r_", "c_",
    # sorting (ferrule.sorting)
    "sort", "argsort",
    # numpy's other float ufuncs (ferrule.mathops)
    "tan", "arcsin", "arccos", "arctan", "arctan2", "sinh", "cosh", "arcsinh", "arccosh",
    "arctanh", "exp2", "log2", "log10", "logaddexp", "logaddexp2", "hypot", "fmod", "fmax",
    "fmin", "floor", "ceil", "trunc", "rint", "round", "around", "sign", "sinc", "reciprocal",
    "deg2rad", "rad2deg", "radians", "degrees",
    # reductions (ferrule.reductions)
    "var", "std", "all", "any", "prod", "cumsum", "cumprod",
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


_SEE = ("ferrule's op set is listed in the README (docs/errors.md); compute it outside the "
        "jitted function, call it with ferrule.pure_callback, or write it from those ops")


def _array_ufunc(self, ufunc, method, *inputs, **kwargs):
    """``np.exp(tracer)`` etc.: a numpy ufunc that ``ferrule.numpy`` has is
    its ferrule op; any other ufunc, a ufunc method (``np.add.reduce``) or
    keyword (``out=``, ``where=``, ``dtype=``) is an
    :class:`UnsupportedOperationError` at the user's line."""
    name = ufunc.__name__
    fn = globals().get(name) if name in __all__ else None
    if fn is None:
        raise UnsupportedOperationError(f"{where_str()}: numpy.{name} on a traced array is not "
                                        f"implemented by ferrule; {_SEE}")
    if method != "__call__":
        raise UnsupportedOperationError(f"{where_str()}: numpy.{name}.{method} on a traced array "
                                        f"is not implemented by ferrule (numpy.{name} itself is); "
                                        f"{_SEE}")
    kwargs = {k: v for k, v in kwargs.items() if not (k == "out" and v in (None, (None,)))}
    if kwargs:
        raise UnsupportedOperationError(f"{where_str()}: numpy.{name} with keyword argument(s) "
                                        f"{', '.join(sorted(kwargs))} on a traced array is not "
                                        f"implemented by ferrule; {_SEE}")
    return fn(*inputs)


# numpy functions answered from a traced array's static shape.
_SHAPE_FUNCTIONS = {"shape": lambda a: a.shape, "ndim": lambda a: len(a.shape),
                    "size": lambda a, axis=None: a.size if axis is None else a.shape[axis]}


def _array_function(self, func, types, args, kwargs):
    """``np.concatenate([x, y])``, ``np.sum(x, axis=0)``... on traced arrays
    (numpy's ``__array_function__`` protocol): a numpy function that
    ``ferrule.numpy`` has, called with arguments that ferrule's takes, is
    the ferrule op; anything else is an :class:`UnsupportedOperationError`
    naming the function and the user's line (not a concretization error
    from inside numpy's own files)."""
    name, module = func.__name__, func.__module__
    if module == "numpy" and name in _SHAPE_FUNCTIONS and isinstance(args[0], Tracer):
        return _SHAPE_FUNCTIONS[name](*args, **kwargs)
    fn = globals().get(name) if module == "numpy" and name in __all__ else None
    if fn is None:
        raise UnsupportedOperationError(f"{where_str()}: {module}.{name} on a traced array is not "
                                        f"implemented by ferrule; {_SEE}")
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError as e:
        raise UnsupportedOperationError(
            f"{where_str()}: {module}.{name} called with arguments that ferrule.numpy.{name}"
            f"{inspect.signature(fn)} does not take ({e}); {_SEE}") from None
    return fn(*args, **kwargs)


def _tracer_getattr(self, name):
    # Only reached when normal lookup fails: an ndarray method ferrule lacks.
    if not name.startswith("_") and hasattr(_onp.ndarray, name):
        raise UnsupportedAttributeError(
            f"{where_str()}: the array method .{name}() (numpy.ndarray.{name}) is not "
            f"implemented for traced arrays by ferrule; {_SEE}")
    raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def __getattr__(name):
    """``ferrule.numpy.sort`` and other numpy names ferrule lacks: an
    :class:`UnsupportedAttributeError` saying so (an ``AttributeError``)."""
    if not name.startswith("_") and hasattr(_onp, name):
        raise UnsupportedAttributeError(
            f"{where_str()}: ferrule.numpy.{name} is not implemented (numpy.{name} is); {_SEE}")
    raise AttributeError(f"module 'ferrule.numpy' has no attribute {name!r}")


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
    cls.__array_function__ = _array_function
    cls.__getattr__ = _tracer_getattr
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
    cls.round = lambda self, decimals=0: around(self, decimals)
    cls.var = lambda self, axis=None, ddof=0, keepdims=False: var(self, axis, ddof, keepdims)
    cls.std = lambda self, axis=None, ddof=0, keepdims=False: std(self, axis, ddof, keepdims)
    cls.prod = lambda self, axis=None, keepdims=False: prod(self, axis, keepdims)
    cls.cumsum = lambda self, axis=None: cumsum(self, axis)
    cls.cumprod = lambda self, axis=None: cumprod(self, axis)
    cls.all = lambda self, axis=None, keepdims=False: all(self, axis, keepdims)
    cls.any = lambda self, axis=None, keepdims=False: any(self, axis, keepdims)
    cls.take = lambda self, indices, axis=None: take(self, indices, axis)
    cls.astype = lambda self, dtype: astype(self, dtype)
    cls.ravel = lambda self: ravel(self)
    cls.argsort = lambda self, axis=-1, kind=None, order=None: argsort(self, axis, kind, order)
    cls.at = property(_at)          # x.at[idx].add/set/get (functional, as JAX)
    cls.flatten = lambda self: ravel(self)
    cls.squeeze = lambda self, axis=None: squeeze(self, axis)
    cls.repeat = lambda self, repeats, axis=None: repeat(self, repeats, axis)
    cls.diagonal = lambda self, offset=0, axis1=0, axis2=1: diagonal(self, offset, axis1, axis2)
    cls.trace = lambda self, offset=0, axis1=0, axis2=1: trace(self, offset, axis1, axis2)


_install_tracer_methods(Tracer)
