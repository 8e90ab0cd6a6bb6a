"""ferrule's dtypes and numpy's promotion among them.

ferrule computes in float32, float64, int32, int64, uint32 and bool (float16
and bfloat16 are stored narrow and computed in float32: :mod:`ferrule.narrow`). In the
IR the integers are signless ``i32``/``i64`` tensors (``uint32`` is an
``i32`` whose Tracer says uint32): the ops carry the sign (``arith.divsi`` or
``divui``, ``cmpi slt`` or ``ult``, ``shrsi`` or ``shrui``, ``sitofp`` or
``uitofp``).

* :func:`promoted_dtype`: the result dtype of an op (numpy 2's promotion,
  NEP 50, with Python scalars and Python float arguments of ``jit`` weakly
  typed; integers with a float give the float's dtype, as JAX);
* integer constants: :func:`canonical_int`, :func:`int_constant_array`,
  :func:`int_attr`;
* :func:`int_op`: the integer op computing float op ``name`` on integers.

:mod:`ferrule.core` re-exports :func:`promoted_dtype`; the integer ops
themselves are in :mod:`ferrule.integers`.
"""

import numpy as _onp
from mlir import ir

from .errors import DTypeError, UnsupportedOperationError
from .narrow import is_float
from .tracing import Tracer, where_str

F32, F64 = _onp.dtype(_onp.float32), _onp.dtype(_onp.float64)
I32, I64, U32 = _onp.dtype(_onp.int32), _onp.dtype(_onp.int64), _onp.dtype(_onp.uint32)
BOOL = _onp.dtype(_onp.bool_)
INT_DTYPES = (I32, I64, U32)


# -- integer constants -------------------------------------------------------------

def canonical_int(d) -> _onp.dtype:
    """The ferrule integer dtype holding numpy integer dtype ``d``."""
    d = _onp.dtype(d)
    if d in INT_DTYPES:
        return d
    if d.itemsize < 4:
        return I32
    if d == _onp.dtype(_onp.uint64):
        raise DTypeError(f"{where_str()}: uint64 arrays are not supported (ferrule's integer "
                         f"dtypes are int32, int64 and uint32)")
    return I64


def int_constant_array(arr: _onp.ndarray) -> _onp.ndarray:
    """A numpy constant in a dtype ferrule computes in."""
    if arr.dtype.kind in "iu":
        return arr.astype(canonical_int(arr.dtype))
    return arr


def int_attr(arr, shape, t: ir.RankedTensorType) -> ir.Attribute:
    """A DenseElementsAttr for integer constant ``arr`` of tensor type ``t``."""
    width = 64 if str(t.element_type) == "i64" else 32
    arr = _onp.asarray(arr)
    lo, hi = (-(1 << 63), (1 << 63) - 1) if width == 64 else (-(1 << 31), (1 << 32) - 1)
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        bad = int(arr.max()) if int(arr.max()) > hi else int(arr.min())
        raise DTypeError(f"{where_str()}: integer {bad} is out of bounds for {width}-bit "
                         f"integers")
    wrapped = arr.astype(_onp.int64)
    if width == 32:   # int32 and uint32 share the i32 bits
        wrapped = (wrapped & 0xFFFFFFFF).astype(_onp.uint32).view(_onp.int32)
    if wrapped.ndim == 0:
        return ir.DenseElementsAttr.get_splat(t, ir.IntegerAttr.get(t.element_type, int(wrapped)))
    full = _onp.ascontiguousarray(_onp.broadcast_to(wrapped, tuple(shape)))
    return ir.DenseElementsAttr.get(full, type=t)


# -- promotion -------------------------------------------------------------------------

def _int_promote(ints) -> _onp.dtype:
    ints = [canonical_int(d) for d in ints]
    if any(d == I64 for d in ints) or (U32 in ints and I32 in ints):
        return I64
    return U32 if all(d == U32 for d in ints) else I32


def promoted_dtype(*xs) -> _onp.dtype:
    """The result dtype of an op on ``xs``: numpy's (NEP 50) among arrays and
    numpy scalars, with Python scalars and weakly typed tracers (Python
    float arguments of jit) weak, and these ferrule choices: an op on bools
    and Python scalars only is float32, the default float (as JAX);
    integers with a float (array or Python float) give the float's dtype,
    float32 by default (as JAX); an op on weakly typed tracers and Python
    scalars only is float64 (as Python computes) and stays weak
    (:func:`all_weak`). The narrow floats follow JAX: float16 with float16
    (or integers, or Python scalars) is float16, likewise bfloat16; float16
    with bfloat16 is float32; either with float32 or float64 is that."""
    strong, weak_float, weak_tracer = [], False, False
    for x in xs:
        if isinstance(x, Tracer):
            if x.weak:
                weak_float = weak_tracer = True
            else:
                strong.append(x.dtype)
        elif isinstance(x, (_onp.ndarray, _onp.generic)):
            strong.append(_onp.dtype(x.dtype))
        elif isinstance(x, float):
            weak_float = True
    floats = [d for d in strong if is_float(d)]
    if floats:
        if any(d == F64 for d in floats):
            return F64
        if any(d == F32 for d in floats):
            return F32
        return floats[0] if all(d == floats[0] for d in floats) else F32
    ints = [d for d in strong if d.kind in "iu"]
    if ints:
        return F32 if weak_float else _int_promote(ints)
    if weak_tracer and not strong:
        return F64
    return F32


def all_weak(*xs) -> bool:
    """True when ``xs`` hold a weakly typed tracer and otherwise only Python
    scalars: the result of an op on them is weak too."""
    tracers = [x for x in xs if isinstance(x, Tracer)]
    return (bool(tracers) and all(t.weak for t in tracers)
            and not any(isinstance(x, (_onp.ndarray, _onp.generic)) for x in xs))


# -- float ops on integers ---------------------------------------------------------------

_INT_OPS = {"arith.addf": "arith.addi", "arith.subf": "arith.subi", "arith.mulf": "arith.muli",
            "arith.maximumf": ("arith.maxsi", "arith.maxui"),
            "arith.minimumf": ("arith.minsi", "arith.minui")}
# Float ops on integers: computed on the integers converted to float32.
_FLOAT_ON_INTS = ("arith.divf", "math.powf")


def int_op(name: str, dtype, attrs):
    """(op name, operand dtype, attrs) of float op ``name`` on integers."""
    if name in _FLOAT_ON_INTS:
        return name, F32, attrs
    mapped = _INT_OPS.get(name)
    if mapped is None:
        if name.split(".")[-1].endswith("i"):   # already an integer op (addi, absi, cmpi, ...)
            return name, dtype, attrs
        raise UnsupportedOperationError(f"{where_str()}: '{name}' is not defined on integer "
                                        f"arrays ({_onp.dtype(dtype)})")
    if isinstance(mapped, tuple):
        mapped = mapped[1] if _onp.dtype(dtype) == U32 else mapped[0]
    return mapped, dtype, attrs
