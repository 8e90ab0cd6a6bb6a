"""Narrow floats: float16 and bfloat16, stored narrow, computed in float32.

A narrow array is narrow only where it is stored: the arguments and results
of a compiled function (its ABI takes and returns ``f16``/``bf16``
memrefs) and the value of ``x.astype(np.float16)``, which rounds. Inside a
trace a narrow array is a ``tensor<...xf32>`` whose :class:`~ferrule.tracing.Tracer`
says float16 or bfloat16 (as uint32 is an ``i32`` that says uint32): every
op computes in float32, which x86 CPUs have and which is exact enough that
one op rounded once to the narrow type gives numpy's answer. docs/dtypes.md
states the precision.

bfloat16 is ``ml_dtypes.bfloat16`` (the numpy dtype JAX uses). ferrule does
not depend on ``ml_dtypes``: a bfloat16 array can only come from a user who
imported it, so its dtype is recognised by name and ``ml_dtypes`` is
imported only to make one (:func:`bfloat16`).
"""

from typing import Optional

import numpy as np

F16 = np.dtype(np.float16)
F32 = np.dtype(np.float32)

# The element type of a narrow dtype at the ABI (its name in MLIR's syntax).
ABI_TYPE_NAMES = {"float16": "f16", "bfloat16": "bf16"}


def bfloat16() -> Optional[np.dtype]:
    """``ml_dtypes.bfloat16`` as a numpy dtype; None without ``ml_dtypes``."""
    try:
        import ml_dtypes
    except ImportError:
        return None
    return np.dtype(ml_dtypes.bfloat16)


def is_bfloat16(d) -> bool:
    """True for ``ml_dtypes.bfloat16`` (recognised without importing it)."""
    d = np.dtype(d)
    return d.kind == "V" and d.name == "bfloat16"


def is_narrow(d) -> bool:
    """True for float16 and bfloat16."""
    if d is None:
        return False
    d = np.dtype(d)
    return d == F16 or is_bfloat16(d)


def is_float(d) -> bool:
    """True for a floating dtype, bfloat16 included (numpy says its kind is
    'V', not 'f', since ml_dtypes defines it outside numpy)."""
    d = np.dtype(d)
    return d.kind == "f" or is_bfloat16(d)


def abi_type_name(d) -> str:
    """``"f16"``/``"bf16"``: the MLIR element type storing narrow dtype ``d``."""
    return ABI_TYPE_NAMES[np.dtype(d).name]
