"""``x.at[idx].add(v)`` / ``.set(v)`` / ``.get()``: functional updates (as JAX).

``x`` is not changed; the result is a new array. ``idx`` selects along the
first axis: an int, a slice, or an integer array (a Tracer, numpy array or
list; negative entries count from the end, traced ones are clamped as in
:mod:`ferrule.gather`) — or, with a tuple index, several axes at once: any
index ``x[idx]`` takes (ints, slices, ``...``, integer arrays on several
axes with numpy's advanced-indexing rules, numpy boolean masks, ``None``
as numpy's ``x[None, i] = v`` takes it: an axis of length 1 that ``v``
broadcasts to). A tuple index updates ``x.ravel()`` at the flat positions
of ``x[idx]``'s elements (:mod:`ferrule.flat_index`); a single index
updates whole rows.

``add`` is one ``ad.scatter_add`` of ``v`` into ``x`` (repeated indices
add up, as numpy's ``np.add.at``); its derivative rules are the op's
(linear in ``x`` and ``v``). ``set`` writes ``v`` where ``idx`` points and
keeps ``x`` elsewhere. With repeated indices JAX leaves the winner
unspecified; here an element set several times gets the **mean** of its
values, a deterministic choice that keeps ``set`` differentiable: it is
``where(count > 0, scatter_add(0, idx, v) / count, x)``.
"""

import numpy as _onp

from .core import asarray_traced, astype, broadcast_to, check_trace, constant, wrap
from .dialect import builders
from .dtypes import I64
from .elementwise import divide, greater, where, zeros, ones
from .errors import DTypeError, UnsupportedOperationError
from .flat_index import flat_positions
from .gather import _has_tracer, _index_array, _static_normalised, take
from .layout import reshape
from .narrow import is_float
from .tracing import Tracer, user_location, where_str


def _scatter_add(dest: Tracer, idx, updates: Tracer) -> Tracer:
    """``ad.scatter_add`` of ``updates`` into ``dest`` at ``idx`` along axis 0."""
    if not isinstance(idx, Tracer):
        idx = constant(_static_normalised(idx, dest.shape[0], 0), idx.shape, I64)
    tr = check_trace(dest, idx, updates)
    dest, idx, updates = asarray_traced(dest), asarray_traced(idx), asarray_traced(updates)
    with user_location():
        op = builders.scatter_add(dest.value, idx.value, updates.value, 0)
    return wrap(op.result, tr, dest.dtype)


class _Ref:
    """``x.at[idx]`` with one index along the first axis: updates rows."""

    def __init__(self, x, idx):
        self.x = asarray_traced(x)
        if self.x.ndim == 0:
            raise UnsupportedOperationError(f"{where_str()}: x.at[...] of a 0-d array")
        n = self.x.shape[0]
        self.scalar = isinstance(idx, (int, _onp.integer)) and not isinstance(idx, bool)
        if self.scalar:
            idx = _onp.array([int(idx)])
        elif isinstance(idx, slice):
            idx = _onp.arange(*idx.indices(n))
        self.idx = _index_array(idx)
        _check_float(self.x)

    def _rows_shape(self):
        """The shape of ``x[idx]``: what ``values`` broadcast to."""
        return tuple(self.idx.shape) + self.x.shape[1:]

    def _scatter(self, dest, updates):
        """``dest`` (zeros or ``x``) with ``updates`` (of ``_rows_shape``) added at ``idx``."""
        return _scatter_add(dest, self.idx, updates)

    def _values(self, v) -> Tracer:
        v = asarray_traced(v)
        if v.dtype != self.x.dtype:
            v = astype(v, self.x.dtype)
        if self.scalar:
            v = broadcast_to(v, self.x.shape[1:])
        return broadcast_to(v, self._rows_shape())

    def get(self):
        """``x[idx]``."""
        r = take(self.x, self.idx, axis=0)
        return reshape(r, self.x.shape[1:]) if self.scalar else r

    def add(self, values):
        """``x`` with ``values`` added at ``idx`` (repeated indices add up)."""
        return self._scatter(self.x, self._values(values))

    def set(self, values):
        """``x`` with ``values`` written at ``idx`` (an element written several
        times gets the mean of its values; see the module docstring)."""
        v = self._values(values)
        zero = zeros(self.x.shape, self.x.dtype)
        total = self._scatter(zero, v)
        count = self._scatter(zero, ones(self._rows_shape(), self.x.dtype))
        hit = greater(count, 0)
        return where(hit, divide(total, where(hit, count, 1)), self.x)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise UnsupportedOperationError(
            f"{where_str()}: x.at[...].{name} is not supported by ferrule (get, add and set are)")


class _FlatRef(_Ref):
    """``x.at[i, j, ...]`` (a tuple index, or a boolean mask): the elements
    of ``x[idx]`` as positions in ``x.ravel()`` (:func:`flat_positions`);
    updates are one scatter-add into the flattened ``x``."""

    def __init__(self, x, idx):
        self.x = asarray_traced(x)
        if self.x.ndim == 0:
            raise UnsupportedOperationError(f"{where_str()}: x.at[...] of a 0-d array")
        _check_float(self.x)
        self.scalar = False          # x[idx]'s shape is self.shape, whatever the index
        self.pos, self.shape = flat_positions(self.x, idx if isinstance(idx, tuple) else (idx,))

    def _rows_shape(self):
        return self.shape

    def _scatter(self, dest, updates):
        flat = _scatter_add(reshape(dest, (-1,)), _flat(self.pos), reshape(updates, (-1,)))
        return reshape(flat, self.x.shape)

    def get(self):
        """``x[idx]``."""
        return take(reshape(self.x, (-1,)), self.pos)


def _flat(pos):
    return reshape(pos, (-1,)) if isinstance(pos, Tracer) else _onp.ascontiguousarray(pos).ravel()


def _check_float(x):
    if not is_float(x.dtype):
        raise DTypeError(f"{where_str()}: x.at[...] updates float arrays; got {x.dtype}")


def _rows_index(idx) -> bool:
    """One index along the first axis (an int, slice, integer array): the
    row update of :class:`_Ref`; anything else goes through flat positions."""
    if isinstance(idx, tuple):
        if len(idx) != 1:
            return False
        idx = idx[0]
    if idx is None or idx is Ellipsis or isinstance(idx, (bool, _onp.bool_)):
        return False
    if isinstance(idx, (Tracer, _onp.ndarray)):
        return idx.dtype != _onp.bool_
    if isinstance(idx, list):
        return _onp.asarray(idx).dtype != _onp.bool_ if not _has_tracer(idx) else True
    return True


class _At:
    def __init__(self, x):
        self.x = x

    def __getitem__(self, idx):
        if _rows_index(idx):
            return _Ref(self.x, idx[0] if isinstance(idx, tuple) else idx)
        return _FlatRef(self.x, idx)


def at(x) -> _At:
    """The ``.at`` property of traced arrays."""
    return _At(x)
