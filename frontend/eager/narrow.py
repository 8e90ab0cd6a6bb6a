"""float16 and bfloat16 on the eager tape: stored narrow, computed in float32,
as under ``jit`` (docs/dtypes.md; :mod:`ferrule.narrow`).

A narrow :class:`~ferrule.eager.tape.Var` holds a float32 ``value`` (the
narrow value extended exactly) and says its narrow dtype: ``var.dtype`` is
float16 or bfloat16, as a Tracer's is. numpy then computes every op in
float32 — not op by op in the narrow type, as numpy's own float16 does —
and nothing is rounded until it leaves the tape:

* an op's float32 result is narrow when its float operands (Vars, numpy
  arrays and numpy scalars; Python scalars are weak) all have one narrow
  dtype — JAX's promotion, as ``jit``'s: float16 with float32 is float32,
  float16 with bfloat16 is float32 — unless the op names its result's
  ``dtype`` (``astype``);
* ``x.astype(np.float16)`` rounds (later ops see the rounded value);
* the outputs ``vjp``/``value_and_grad`` return, and a gradient of a
  narrow input (a cotangent has its primal's dtype), are rounded once to
  the narrow dtype; cotangents flow through the tape in float32.
"""

import numpy as np

from ..narrow import F32, is_float, is_narrow


def widen(value):
    """``(value, narrow dtype or None)``: a narrow array as float32 (exact)
    and its dtype; anything else as it is, with None."""
    dt = getattr(value, "dtype", None)
    if dt is not None and is_narrow(dt):
        return np.asarray(value).astype(F32), np.dtype(dt)
    return value, None


def _float_dtypes(x, out):
    """The dtypes of the float arrays in ``x`` (a Var, array, or a list or
    tuple of them), Vars by their narrow dtype; Python scalars are weak."""
    if isinstance(x, (list, tuple)):
        for v in x:
            _float_dtypes(v, out)
    elif isinstance(x, (np.ndarray, np.generic)) or hasattr(x, "narrow"):
        if is_float(x.dtype):
            out.add(np.dtype(x.dtype))
    return out


def label(args, names_dtype=False):
    """The narrow dtype of an op's float32 results on ``args`` (the
    operands, possibly nested in lists): the one narrow dtype of all the
    float operands, else None; None too for an op given a ``dtype``
    (``names_dtype``), whose result's dtype is the one asked for."""
    if names_dtype:
        return None
    dts = _float_dtypes(list(args), set())
    if len(dts) == 1:
        (dt,) = dts
        return dt if is_narrow(dt) else None
    return None


def narrowed(ans, dt):
    """A plain (off-tape) float32 result of an op on narrow operands, stored
    as ``dt`` (``np.sign(x16)`` is float16, as under jit)."""
    if dt is None:
        return ans
    if isinstance(ans, (list, tuple)):
        return type(ans)(narrowed(a, dt) for a in ans)
    if isinstance(ans, (np.ndarray, np.generic)) and ans.dtype == F32:
        return ans.astype(dt)
    return ans


def stored(var):
    """What a Var's value is off the tape: rounded to its narrow dtype."""
    return var.value if var.narrow is None else np.asarray(var.value).astype(var.narrow)
