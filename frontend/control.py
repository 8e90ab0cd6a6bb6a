"""``ferrule.scan``: a loop over a sequence, traced once, compiled once.

``scan(f, init, xs)`` runs ``carry, y = f(carry, x)`` for every slice ``x``
of ``xs`` along its leading axis and returns the final carry and the ``y``s
stacked along a new leading axis — JAX's ``lax.scan``. The step ``f`` is
traced once into its own function and the loop is one ``ad.scan`` op that
refers to it, so the IR (and compile time) does not grow with the number of
steps. The AD passes differentiate the op by rule; ``lower-scan`` turns it
into a loop.
"""

from .scan_trace import traced_scan
from .tracing import current_trace
from .transforms import compiled_once


def scan(f, init, xs=None, length=None, reverse=False, checkpoint=None):
    """Loop ``f`` over the leading axis of ``xs``, threading a carry.

    ``f(carry, x) -> (carry, y)``. ``init`` and the carry are arrays or
    tuples/lists of arrays (the carry keeps ``init``'s structure, shapes and
    dtypes); ``xs`` is an array, a tuple/list of arrays with one leading
    length, or ``None`` (then ``length`` gives the number of steps and ``f``
    gets ``x = None``); ``y`` may be an array, a tuple/list, or ``None``.
    Returns ``(final carry, ys)`` with each ``y`` stacked along a new leading
    axis. ``reverse=True`` runs from the last slice to the first (``ys[t]``
    is still step ``t``'s output), as ``jax.lax.scan``.

    Arrays of an enclosing traced function that ``f`` uses are passed to
    every step unchanged (and differentiated as such). Called outside a
    traced function, ``scan`` compiles and runs itself.

    ``checkpoint=k`` trades compute for memory in reverse mode: the steps
    run as segments of ``k``; only the carry entering each segment is
    stored, and a segment's steps are recomputed (storing their residuals
    for k steps only) when the backward sweep reaches it. Memory for
    residuals goes from ``length`` steps' worth to about ``length / k``
    carries plus ``k`` steps' worth; the forward work is done twice.
    """
    if current_trace() is None:
        return _compiled_scan(f, length, reverse, checkpoint)(init, xs)
    return traced_scan(f, init, xs, length, reverse, checkpoint)


def _compiled_scan(f, length, reverse, checkpoint=None):
    """``scan(f, ...)`` as a jitted function of ``(init, xs)``, made once per
    ``(f, length, reverse, checkpoint)`` so repeated calls reuse the
    compilation."""
    def transform(g):
        def run(init, xs):
            return scan(g, init, xs, length=length, reverse=reverse, checkpoint=checkpoint)
        run.__name__ = run.__qualname__ = g.__name__
        return run
    return compiled_once(f, ("scan", length, bool(reverse), checkpoint), transform)


__all__ = ["scan"]
