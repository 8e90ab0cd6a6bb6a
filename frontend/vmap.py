"""``ferrule.vmap``: map a function over an axis of its arguments.

JAX's semantics: ``vmap(f, in_axes=0, out_axes=0)(*args)`` equals stacking
``f`` applied to each slice of the mapped arguments along ``out_axes``.
``in_axes`` is an int or None for every argument, or a tuple/list with one
int or None per positional argument (an int applies to every leaf of that
argument's pytree); ``out_axes`` an int, or one per output leaf.

How it is built: a ``ferrule.scan`` over the mapped axis whose step calls
``f`` on one slice (unmapped arguments are closed over). So it composes with
``jit``, ``grad``, ``vjp``, ``jvp`` and nests — scan's derivative passes
handle it — and the IR does not grow with the batch size. It is a **loop,
not a vectorisation**: unlike JAX's batching rules, ops are not rewritten to
act on the whole batch at once, so a matmul inside ``f`` stays one
matrix-vector product per slice. Write the batch dimension into ``f``
where that matters for speed.
"""

import functools

from .control import scan
from .core import asarray_traced
from .errors import ShapeError, TracingError
from .pytree import flatten, unflatten
from .shapes import moveaxis
from .tracing import where_str


def _axes_per_arg(in_axes, n: int):
    if in_axes is None or isinstance(in_axes, int):
        return [in_axes] * n
    if isinstance(in_axes, (tuple, list)):
        if len(in_axes) != n:
            raise ShapeError(f"{where_str()}: vmap in_axes has {len(in_axes)} entries for "
                             f"{n} positional arguments")
        for a in in_axes:
            if not (a is None or isinstance(a, int)):
                raise TracingError(f"{where_str()}: vmap in_axes entries must be ints or None "
                                   f"(per-leaf axes inside an argument are not supported), "
                                   f"got {a!r}")
        return list(in_axes)
    raise TracingError(f"{where_str()}: vmap in_axes must be an int, None, or a tuple of them; "
                       f"got {in_axes!r}")


def vmap(f, in_axes=0, out_axes=0):
    """``f`` mapped over axis ``in_axes`` of its arguments, results stacked
    along ``out_axes`` (see the module docstring: a scan, not a
    vectorisation)."""
    @functools.wraps(f)
    def mapped(*args):
        axes = _axes_per_arg(in_axes, len(args))
        leaves_of, size = [], None
        for k, (arg, ax) in enumerate(zip(args, axes)):
            leaves, struct = flatten(arg)
            if ax is None:
                leaves_of.append((leaves, struct, None))
                continue
            moved = []
            for leaf in leaves:
                leaf = asarray_traced(leaf) if not hasattr(leaf, "shape") else leaf
                nd = len(leaf.shape)
                if not -nd <= ax < nd:
                    raise ShapeError(f"{where_str()}: vmap in_axes={ax} for argument {k} of "
                                     f"{nd} dimensions")
                n = leaf.shape[ax]
                if size is not None and n != size:
                    raise ShapeError(f"{where_str()}: vmap got mapped axes of sizes {size} "
                                     f"and {n}")
                size = n
                moved.append(moveaxis(leaf, ax, 0))
            leaves_of.append((moved, struct, ax))
        if size is None:
            raise ShapeError(f"{where_str()}: vmap needs at least one mapped argument "
                             f"(all in_axes are None)")
        xs = tuple(tuple(leaves) for leaves, _, ax in leaves_of if ax is not None)

        def step(carry, x_slices):
            it = iter(x_slices)
            call = []
            for leaves, struct, ax in leaves_of:
                call.append(unflatten(struct, list(next(it)) if ax is not None else leaves))
            return carry, f(*call)
        _, ys = scan(step, (), xs, length=size)
        out_leaves, out_struct = flatten(ys)
        oaxes = ([out_axes] * len(out_leaves) if isinstance(out_axes, int)
                 else list(out_axes))
        if len(oaxes) != len(out_leaves):
            raise ShapeError(f"{where_str()}: vmap out_axes has {len(oaxes)} entries for "
                             f"{len(out_leaves)} outputs")
        return unflatten(out_struct, [moveaxis(y, 0, ax) if ax != 0 else y
                                      for y, ax in zip(out_leaves, oaxes)])
    return mapped
