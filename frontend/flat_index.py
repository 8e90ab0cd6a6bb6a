"""numpy indexing as positions in the flattened array: what ``x.at[i, j]``
(a tuple index) updates.

``flat_positions(x, idx)`` gives, for any index ``x[idx]`` supports (ints,
slices, ``...``, ``None``, integer arrays on several axes, numpy boolean
masks), the linear position in ``x.ravel()`` of every element of
``x[idx]``, in ``x[idx]``'s shape. A scatter-add into ``x.ravel()`` at those positions is
then an update of ``x[idx]`` whatever the index's form, with numpy's
advanced-indexing rules (the arrays broadcast together; their dims replace
the indexed axes in place when those are adjacent, else come first;
``None`` adds a size-1 axis: :mod:`ferrule.newaxis`).
The positions are static (a numpy array) when the index is; traced
integer arrays make them traced, wrapped and clamped as the gathers'
(:mod:`ferrule.gather`).
"""

import numpy as _onp

from .core import astype, broadcast_to
from .dtypes import I64
from .elementwise import add, multiply
from .gather import _clamped, _static_normalised, index_lists_as_arrays, split_index
from .layout import reshape
from .newaxis import drop_newaxes
from .errors import ShapeError
from .tracing import Tracer, where_str


def _layout(shape, basic, arrays):
    """The shape of ``x[idx]`` and, per axis ``d`` of ``x``, the out dims
    its positions vary along (a slice): numpy's rule, the broadcast
    dims of the arrays in place of adjacent indexed axes, else first."""
    adv = sorted(arrays)
    try:
        bshape = tuple(_onp.broadcast_shapes(*[arrays[d].shape for d in adv]))
    except ValueError:
        raise ShapeError(f"{where_str()}: shape mismatch: indexing arrays could not be "
                         f"broadcast together with shapes "
                         f"{' '.join(str(arrays[d].shape) for d in adv)}") from None
    rest = [d for d in range(len(shape)) if d not in arrays]
    adjacent = not adv or adv == list(range(adv[0], adv[-1] + 1))
    p = sum(1 for d in rest if d < adv[0]) if adv and adjacent else 0   # first broadcast dim
    out, dims = [None] * (len(rest) + len(bshape)), {}
    out[p:p + len(bshape)] = bshape
    for d in adv:
        dims[d] = slice(p, p + len(bshape))
    for k, d in enumerate(rest):
        pos = k if k < p else k + len(bshape)
        dims[d] = slice(pos, pos + 1)
        out[pos] = len(range(*basic[d].indices(shape[d])))
    return tuple(out), bshape, dims


def flat_positions(x: Tracer, idx: tuple):
    """``(positions, shape)``: ``positions`` (an int64 numpy array or
    Tracer of ``shape``, the shape of ``x[idx]``) are the indices into
    ``x.ravel()`` of the elements ``x[idx]`` reads. Out-of-bounds static
    indices raise (numpy's ``IndexError``); traced ones are clamped."""
    idx, relayout = drop_newaxes(x.ndim, index_lists_as_arrays(idx))
    basic, arrays = split_index(x, idx)
    out_shape, bshape, dims = _layout(x.shape, basic, arrays)
    lin, stride = None, 1
    for d in reversed(range(x.ndim)):
        n = x.shape[d]
        grid = [1] * len(out_shape)
        if d in arrays:
            a = arrays[d]
            a = (_clamped(astype(a, I64), n) if isinstance(a, Tracer)
                 else _static_normalised(a, n, d))
            # numpy's broadcasting: the array's dims align with bshape's last ones
            grid[dims[d]] = (1,) * (len(bshape) - a.ndim) + tuple(a.shape)
        else:
            a = _onp.arange(*basic[d].indices(n))
            grid[dims[d]] = (len(a),)
        if isinstance(a, Tracer):
            term = reshape(a, tuple(grid))
            term = multiply(term, stride) if stride != 1 else term
        else:
            term = a.reshape(grid).astype(_onp.int64) * stride
        lin = term if lin is None else add(lin, term)
        stride *= n
    if lin is None:                          # a 0-d x: its one element
        lin = _onp.zeros((), _onp.int64)
    if isinstance(lin, Tracer):
        pos = relayout(broadcast_to(astype(lin, I64), out_shape))
    else:
        pos = relayout(_onp.broadcast_to(_onp.asarray(lin, _onp.int64), out_shape))
    return pos, tuple(pos.shape)
