"""``ferrule.checkpoint`` (alias ``remat``): recompute instead of storing.

``checkpoint(f)(*args)`` traces ``f`` as a one-step ``ad.scan`` marked
``remat = 1`` whose carries are ``f``'s array arguments (passed through
unchanged) and whose stacked output is ``f``'s result. The reverse pass's
rule for a remat scan (passes/support/scan_ad.py) stores only the carries
entering the step — the arguments — and its backward step recomputes
``f``'s forward before running its pullback. Without the mark, the same
step stores whatever its pullback reads (matmul results, inputs of
pointwise regions, ...). ``explain()`` reports the stored bytes either
way ("residuals per step ..."). Forward mode and plain evaluation are
unaffected (the loop runs once).

Arrays ``f`` closes over are passed to the step as constants: work that
depends on them alone is loop-invariant and is computed once outside the
step, as for any scan. Python numbers, strings and None among the
arguments stay static (closed over).
"""

import functools

import numpy as np

from .scan_trace import _scan
from .core import asarray_traced, strong
from .pytree import flatten, unflatten
from .tracing import Tracer, current_trace
from .transforms import _name, compiled_once


def _is_array(leaf) -> bool:
    return isinstance(leaf, (Tracer, np.ndarray, np.generic, float))


def checkpoint(f, *, prevent_cse: bool = True, static_argnums=()):
    """``f`` whose intermediate values are recomputed in reverse mode.

    The result computes the same values and derivatives as ``f``; under
    ``grad``/``vjp`` only ``f``'s array arguments are kept for the backward
    sweep, which runs ``f`` again (JAX's ``jax.checkpoint``: memory for
    compute). ``prevent_cse`` is accepted for JAX compatibility (the step is
    a function of its own, so nothing is merged across it anyway);
    ``static_argnums`` marks arguments that are not traced (Python numbers
    and strings already are not). Called outside a traced function it
    compiles and runs like ``jit(f)``.
    """
    static = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)

    @functools.wraps(f)
    def wrapped(*args):
        if current_trace() is None:
            return compiled_once(f, ("checkpoint", static),
                                 lambda p: checkpoint(p, static_argnums=static))(*args)
        leaves, struct = flatten(tuple(args))
        carried = _carried(args, static)
        arrays = [strong(asarray_traced(l)) for l, c in zip(leaves, carried) if c]

        def step(carry, _):
            it = iter(carry)
            call = unflatten(struct, [next(it) if c else l for l, c in zip(leaves, carried)])
            return carry, f(*call)
        step.__name__ = _name(f)
        carry, ys = _scan(step, tuple(arrays), None, 1, False, remat=True)
        if ys is None:
            return None
        y_leaves, y_struct = flatten(ys)
        return unflatten(y_struct, [y[0] for y in y_leaves])
    return wrapped


def _carried(args, static):
    """Per leaf of ``args``: whether it is an array passed through the step
    (else static: closed over)."""
    out = []
    for k, a in enumerate(args):
        leaves = flatten(a)[0]
        out += [(k not in static) and _is_array(l) for l in leaves]
    return out


remat = checkpoint

__all__ = ["checkpoint", "remat"]
